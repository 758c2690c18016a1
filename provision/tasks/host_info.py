"""Read-only report of what a host runs: OS, hostname, git and dvc versions, and a dvc that trusts any host key."""

from __future__ import annotations

from collections.abc import Sequence

from provision.engine import Change, HostContext, Task
from provision.facts import CommandFact, Fact
from provision.remote import script
from provision.tasks.packages import DvcFact, DvcState, unguarded_dvc_warning

_OS_NAME = '. /etc/os-release && printf "%s\\n" "$PRETTY_NAME"'


class ReportHostInfo(Task):
    """Reports OS, hostname, git and dvc versions ("missing" when absent), and warns when the dvc in use lacks
    provision's dvc-ssh guard; changes nothing."""

    name = "host info"

    def __init__(self, dvc_venv: str) -> None:
        self.dvc_venv = dvc_venv
        self._facts = {
            "os": CommandFact(tuple(script(_OS_NAME))),
            "hostname": CommandFact(("hostname",)),
            "git": CommandFact(("git", "--version")),
        }
        self._dvc_fact = DvcFact(dvc_venv, privileged=False)

    def facts(self) -> Sequence[Fact]:
        return (*self._facts.values(), self._dvc_fact)

    def plan(self, ctx: HostContext) -> Change | None:
        values = {}
        for label, fact in self._facts.items():
            output = ctx.fact(fact)
            values[label] = output.strip().removeprefix("git version ") if output else "missing"
        dvc = DvcState.parse(ctx.fact(self._dvc_fact) or "")
        version = dvc.path_version if dvc.path_dvc else dvc.venv_version  # dvc on PATH, else provision's own
        values["dvc"] = str(version) if version else "missing"
        ctx.note(", ".join(f"{label} {value}" for label, value in values.items()))
        warning = unguarded_dvc_warning(dvc, self.dvc_venv)
        if warning:
            ctx.note(f"warning: {warning}")
        ctx.export("host_info", values)
        return None
