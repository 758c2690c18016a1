"""Read-only report of what a host runs: OS, hostname, git and dvc versions, and a dvc that trusts any host key."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from provision.engine import Change, HostContext, Task
from provision.facts import Fact, KeyValues
from provision.remote import BatchOutput, script
from provision.tasks.packages import DvcFact, DvcState, GitFact, GitState, unguarded_dvc_warning

# "os PRETTY_NAME" from /etc/os-release and "hostname NAME", each when the host tells.
_SYSTEM_PROBE = """
if os=$(. /etc/os-release 2>/dev/null && printf '%s' "$PRETTY_NAME"); then printf 'os %s\\n' "$os"; fi
if name=$(hostname 2>/dev/null); then printf 'hostname %s\\n' "$name"; fi
"""


@dataclass(frozen=True)
class SystemInfo:
    """The host's OS and hostname ("" when it does not say)."""

    os: str = ""
    hostname: str = ""


@dataclass(frozen=True)
class SystemFact(Fact):
    """The host's OS name and hostname."""

    @property
    def key(self) -> Hashable:
        return ("system",)

    def argv(self) -> list[str]:
        return script(_SYSTEM_PROBE)

    def parse(self, output: BatchOutput) -> SystemInfo:
        values = KeyValues.parse(output.stdout if output.rc == 0 else "")
        return SystemInfo(values.get("os"), values.get("hostname"))


class ReportHostInfo(Task):
    """Reports OS, hostname, git and dvc versions ("missing" when absent), and warns when the dvc in use lacks
    provision's dvc-ssh guard; changes nothing."""

    name = "host info"

    def __init__(self, dvc_venv: str) -> None:
        self.dvc_venv = dvc_venv
        self._system_fact = SystemFact()
        self._git_fact = GitFact()
        self._dvc_fact = DvcFact(dvc_venv, privileged=False)

    def facts(self) -> Sequence[Fact]:
        return (self._system_fact, self._git_fact, self._dvc_fact)

    def plan(self, ctx: HostContext) -> Change | None:
        system: SystemInfo = ctx.fact(self._system_fact)
        git: GitState = ctx.fact(self._git_fact)
        dvc: DvcState = ctx.fact(self._dvc_fact)
        version = dvc.path_version if dvc.path_dvc else dvc.venv_version  # dvc on PATH, else provision's own
        values = {"os": system.os, "hostname": system.hostname, "git": git.version,
                  "dvc": str(version) if version else ""}
        values = {label: value or "missing" for label, value in values.items()}
        ctx.note(", ".join(f"{label} {value}" for label, value in values.items()))
        warning = unguarded_dvc_warning(dvc, self.dvc_venv)
        if warning:
            ctx.note(f"warning: {warning}")
        ctx.export("host_info", values)
        return None
