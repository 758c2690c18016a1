"""Where a data operation runs: a checkout (local or on a host) and how its scripts reach it.

The scripts are constants under templates/data/ that start with prelude.sh; values reach them only as
positional arguments (provision.remote.script). A `Runner` runs such an argv where the checkout is: in a
subprocess here (LocalRunner) or over SSH (provision.plays.data).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

from provision.connection import CommandResult
from provision.errors import ProvisionError
from provision.paths import templates_dir
from provision.remote import script

#: Seconds a data script may run (dvc add/push/pull of large datasets).
DATA_TIMEOUT = 3600.0


class Runner(Protocol):
    """Runs an argv list where the checkout is."""

    label: str

    def run(self, argv: list[str], timeout: float) -> CommandResult: ...


@dataclass(frozen=True)
class Checkout:
    """A DVC checkout and how DVC runs in it.

    DVC's site cache is the one the checkout's config.local names. `data_umask`: the umask of
    DVC's writes where the cache is shared with a group (empty: the caller's umask); `identity`: committer
    name and email used only when git has none configured there.
    """

    repo: str
    dvc: str = "dvc"
    data_umask: str = ""
    identity: tuple[str, str] = ("provision", "provision@localhost")


@cache
def _script_text(name: str) -> str:
    folder = templates_dir() / "data"
    return (folder / "prelude.sh").read_text() + (folder / f"{name}.sh").read_text()


def data_script(checkout: Checkout, name: str, *args: str) -> list[str]:
    """The argv running templates/data/<name>.sh in `checkout` with `args`."""
    return script(_script_text(name), checkout.repo, checkout.dvc, checkout.data_umask, *args,
                  name=f"provision-data-{name}")


def run_data_script(runner: Runner, checkout: Checkout, name: str, *args: str, what: str,
                    timeout: float = DATA_TIMEOUT) -> str:
    """A script's stdout; ProvisionError naming the host and what failed (its last stderr lines)."""
    result = runner.run(data_script(checkout, name, *args), timeout)
    if not result.ok:
        raise ProvisionError(f"{runner.label}: {what} failed in {checkout.repo}: {result.detail}")
    return result.stdout


def local_dvc() -> str:
    """The dvc beside this Python (same virtualenv), else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    if beside.exists():
        return str(beside)
    return shutil.which("dvc") or "dvc"


def local_checkout(path: str) -> Checkout:
    """The checkout that holds `path` (the top of its git work tree)."""
    done = subprocess.run(["git", "-C", path, "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise ProvisionError(f"{path} is not inside a git checkout")
    return Checkout(done.stdout.strip(), local_dvc())


class LocalRunner:
    """Runs scripts on this machine, as the current user."""

    label = "localhost"

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise ProvisionError(f"localhost: {argv[-1] if argv else 'a command'} ran longer than {timeout:g}s") \
                from None
        return CommandResult(tuple(argv), done.returncode, done.stdout, done.stderr)
