"""The client's checkout of `git_remote` in `workdir`, cloned as the connecting user with its own key.

The clone records `core.sshCommand` (only the client key, host key checked against the client's
known_hosts), so `git pull` and `git push` typed by hand later use the same key and pins. An existing
checkout is never touched beyond that setting: its origin is checked and local changes are reported,
never clobbered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from provision.engine import Change, HostContext, Task
from provision.errors import ProvisionError
from provision.facts import Fact, FileFact
from provision.inventory import Settings
from provision.remote import BatchOutput, quote_argv, script
from provision.tasks.client_key import ClientInfo
from provision.tasks.storage_host_key import client_ssh_options

#: Clone and dvc pull move data: they get this long, whatever --timeout says about other commands.
LONG_STEP_TIMEOUT = 6 * 3600.0
#: Exported (True) when this run cloned the checkout: the clone proved git access with the client key.
CLONED_EXPORT = "cloned"

# $1 workdir. Prints "absent", "symbolic-link", "not-a-directory", "empty", "not-a-checkout", or "checkout"
# followed by origin's URL, core.sshCommand and the number of changed paths (optional index locks not taken).
_CHECKOUT_STATE = r"""
w=$1
if [ -L "$w" ]; then echo symbolic-link; exit 0; fi
if [ ! -e "$w" ]; then echo absent; exit 0; fi
if [ ! -d "$w" ]; then echo not-a-directory; exit 0; fi
top=$(git -C "$w" rev-parse --show-toplevel 2>/dev/null) || top=
if [ -z "$top" ] || [ "$top" != "$(cd -- "$w" && pwd -P)" ]; then
  if [ -z "$(ls -A -- "$w")" ]; then echo empty; else echo not-a-checkout; fi
  exit 0
fi
echo checkout
git -C "$w" config --get remote.origin.url || echo
git -C "$w" config --get core.sshCommand || echo
git -C "$w" --no-optional-locks status --porcelain | wc -l
"""


def git_url(settings: Settings) -> str:
    """What clients clone: `ssh://git_user@storage:port/path` for a bare repository on storage."""
    if not settings.git_remote_is_path:
        return settings.git_remote
    return f"ssh://{settings.git_user}@{settings.storage_url_host}:{settings.storage_port}{settings.git_remote}"


def git_ssh_command(info: ClientInfo) -> str:
    """`core.sshCommand`: a shell command line for git, so it is quoted where argv become shell text."""
    return quote_argv(["ssh", *client_ssh_options(info)])


@dataclass(frozen=True)
class CheckoutState:
    kind: str
    origin: str = ""
    ssh_command: str = ""
    changed_paths: int = 0


@dataclass(frozen=True)
class CheckoutFact(Fact):
    """What is at the workdir, read as the connecting user."""

    workdir: str

    @property
    def key(self) -> tuple[str, str]:
        return ("checkout", self.workdir)

    def argv(self) -> list[str]:
        return script(_CHECKOUT_STATE, self.workdir)

    def parse(self, output: BatchOutput) -> CheckoutState:
        lines = output.stdout.split("\n")
        if lines[0] != "checkout" or len(lines) < 4:
            return CheckoutState(lines[0] or "unreadable")
        count = lines[3].strip()
        return CheckoutState("checkout", lines[1], lines[2], int(count) if count.isdigit() else 0)


def checkout_file_facts(workdir: str) -> list[FileFact]:
    """Facts about files inside the checkout that a clone makes stale."""
    return [FileFact(f"{workdir}/.dvc", privileged=False), FileFact(f"{workdir}/.dvc/config.local", privileged=False)]


class Checkout(Task):
    """`git_remote` cloned into `workdir`; an existing checkout left as it is."""

    name = "checkout"

    def __init__(self, info: ClientInfo, settings: Settings) -> None:
        self.info = info
        self.url = git_url(settings)
        self.ssh_command = git_ssh_command(info) if settings.git_remote_is_path else None
        self.fact = CheckoutFact(info.workdir)

    def facts(self) -> Sequence[Fact]:
        return (self.fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        state: CheckoutState = ctx.fact(self.fact)
        workdir = self.info.workdir
        if state.kind in ("absent", "empty"):
            return Change(f"clone {self.url} into {workdir}", lambda: self._clone(ctx))
        if state.kind == "symbolic-link":
            raise ProvisionError(f"{workdir} on {self.info.name} is a symbolic link, which provision never follows: "
                                 "set workdir to the directory it points to, or make it a directory")
        if state.kind != "checkout":
            raise ProvisionError(f"{workdir} on {self.info.name} exists and is not a checkout "
                                 f"({state.kind}); left as it is: move it away or set workdir")
        if state.origin != self.url:
            raise ProvisionError(f"{workdir} on {self.info.name} is a checkout of {state.origin or 'no origin'}, "
                                 f"not {self.url}; left as it is: fix its origin or set workdir")
        if state.changed_paths:
            ctx.note(f"{state.changed_paths} locally changed path(s) in {workdir} left as they are")
        if self.ssh_command is None or state.ssh_command == self.ssh_command:
            ctx.note(f"existing checkout {workdir}")
            return None

        def apply() -> None:
            ctx.run(["git", "-C", workdir, "config", "core.sshCommand", self.ssh_command or ""],
                    f"setting core.sshCommand on {self.info.name}")
            ctx.forget(self.fact)

        return Change(f"set core.sshCommand (client key, pinned host key) in {workdir}", apply)

    def _clone(self, ctx: HostContext) -> None:
        argv = ["git", "clone", "--quiet"]
        if self.ssh_command is not None:
            argv += ["-c", f"core.sshCommand={self.ssh_command}"]
        ctx.storage_step([*argv, "--", self.url, self.info.workdir], f"git clone {self.url} on {self.info.name}",
                         timeout=LONG_STEP_TIMEOUT)
        ctx.export(CLONED_EXPORT, True)
        ctx.forget(self.fact)
        for fact in checkout_file_facts(self.info.workdir):
            ctx.forget(fact)
