"""`provision bootstrap`: parse, build the play, run it."""

from __future__ import annotations

import click

from provision.cli.common import PlayArgs, play_options, run_play
from provision.errors import InputError
from provision.plays.bootstrap import bootstrap_play, check_data_path, check_tag, password_login
from provision.secrets.inventory import SecretLookupForInventory


@click.command()
@play_options
@click.option("--data", metavar="PATH", help="Dataset inside server_repo to `dvc add`, push and commit.")
@click.option("--tag", metavar="TAG", help="Annotated git tag for that dataset (needs --data), e.g. v1.0.")
def bootstrap(play_args: PlayArgs, data: str | None, tag: str | None) -> None:
    """Set up the storage host: group, accounts, NFS dirs, bare repo, server repo, DVC config.

    Ensures git and dvc (dvc installed into dvc_venv when missing or outside dvc_version), the
    storage group, the SFTP-only DVC account, confined by an sshd Match block to a chroot that shows
    it the DVC remote directory alone, and the git-shell account (root-owned ~/.ssh) whose keys reach
    git_remote alone, the DVC remote directory on the export, the bare repository, and the
    server-side repository with a committed .dvc/config (SSH remote URL, no credentials) and a local
    config.local pointing at the remote directory. With --data, adds a first dataset and tags it once
    the data push succeeded. While a client has `auth: password`, storage_user also gets the stored
    storage_password (generated when absent) and password login in its Match block, SFTP only.

    \b
    Example:
      provision bootstrap -i site.yml --check --diff
      provision bootstrap -i site.yml --data data --tag v1.0
    """
    if tag and not data:
        raise click.UsageError("--tag needs --data: it tags the commit that adds the dataset")
    dataset = check_data_path(data) if data else None
    tag_name = check_tag(tag) if tag else None
    loaded = play_args.load()
    storage = loaded.storage
    if storage.name not in {host.name for host in loaded.select(play_args.limit)}:
        raise InputError(f"bootstrap works on the storage host {storage.name}, which --limit leaves out",
                         key="--limit")
    loaded.check_targets([storage])
    secrets = SecretLookupForInventory(loaded)
    password = password_login(loaded, secrets, play_args.timeout)
    play = bootstrap_play(storage, dataset, tag_name, password=password)
    run_play(play_args, loaded, lambda engine: play, secrets=secrets)
