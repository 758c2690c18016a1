"""`provision audit`: committed credentials and unsafe setups, found in repositories and on hosts.

`findings` is the one shape every rule reports in; `rules` holds the content rules (DVC-aware ones and
detect-secrets); `repo` feeds them a work tree, the staged index or a whole history; `hook` installs
the pre-commit hook; `hosts` judges what `provision.tasks.audit` reads on storage and clients.
"""
