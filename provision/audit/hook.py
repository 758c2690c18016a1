"""The git pre-commit hook: `provision audit repo --staged` before every commit, after any hook already there.

A hook that is not ours is never overwritten: it is renamed to `pre-commit.chained` and the new hook
runs it first, so both keep working. Installing again rewrites only our own hook.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from provision.audit.repo import git_output, repository_root
from provision.errors import ProvisionError
from provision.remote import quote_argv
from provision.render import render

HOOK = "pre-commit"
CHAINED = "pre-commit.chained"
#: The line that tells our hook from others.
MARK = "# provision audit pre-commit hook"


def hook_script(chained: str | None) -> str:
    """Our hook, with this interpreter (the hook must not depend on PATH), optionally running `chained` first."""
    command = quote_argv([sys.executable, "-m", "provision", "audit", "repo", "--staged"])
    return render("audit/pre-commit.sh.j2", command=command, chained=chained)


def install_hook(path: Path) -> str:
    """Install (or refresh) the hook in the repository at `path`; says what it did."""
    root = repository_root(path)
    hooks = root / git_output(root, "rev-parse", "--git-path", "hooks").strip()
    hooks.mkdir(parents=True, exist_ok=True)
    hook, chained = hooks / HOOK, hooks / CHAINED
    current = hook.read_text(errors="replace") if hook.is_file() else None
    done = []
    if (current is not None or hook.is_symlink()) and (current is None or MARK not in current):
        if chained.exists() or chained.is_symlink():
            raise ProvisionError(f"{hook} is not provision's and {chained} exists already: merge them by hand, "
                                 "then install again")
        hook.rename(chained)
        done.append(f"kept the existing hook as {chained}, run first")
        current = None
    script = hook_script(CHAINED if chained.exists() or chained.is_symlink() else None)
    if current == script and os.access(hook, os.X_OK):
        return f"{hook}: already installed"
    staged = hooks / f".{HOOK}.provision-new"
    staged.write_text(script)
    staged.chmod(0o755)
    staged.replace(hook)
    return f"{hook}: installed" + "".join(f"; {step}" for step in done)
