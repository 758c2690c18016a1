"""How results look: one line per host and task as they finish, a recap table, or one JSON document.

Every string that leaves through here passes the process-wide redactor, so a secret that reached a
message, a diff or an exception is masked before anyone sees it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from provision.engine import PlayState, Status, TaskResult
from provision.secrets import REDACTOR

_STYLE = {
    Status.OK: "green",
    Status.CHANGED: "yellow",
    Status.FAILED: "red",
    Status.SKIPPED: "cyan",
    Status.UNREACHABLE: "magenta",
}


def console(stderr: bool = False) -> Console:
    """A console that colours only on a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    colour = "auto" if stream.isatty() else None
    return Console(file=stream, highlight=False, soft_wrap=True, color_system=colour)


class ConsoleReporter:
    """Live lines and the recap, for people."""

    def __init__(self, out: Console, *, verbose: bool = False) -> None:
        self.out = out
        self.verbose = verbose

    def task_done(self, host: str, result: TaskResult) -> None:
        if result.status is Status.OK and not self.verbose and not result.msg:
            self.out.print(f"[green]ok[/]: [bold]{escape(host)}[/] {escape(result.name)}")
            return
        style = _STYLE[result.status]
        message = f" - {escape(REDACTOR.mask(result.msg))}" if result.msg else ""
        self.out.print(f"[{style}]{result.status}[/]: [bold]{escape(host)}[/] {escape(result.name)}{message}")
        if result.diff:
            for line in REDACTOR.mask(result.diff).splitlines():
                colour = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
                self.out.print(f"    [{colour}]{escape(line)}[/]")

    def notice(self, message: str) -> None:
        self.out.print(escape(REDACTOR.mask(message)))

    def recap(self, state: PlayState) -> None:
        table = Table(title="recap", title_justify="left", show_edge=False)
        table.add_column("host")
        for column in ("ok", "changed", "failed", "skipped", "unreachable"):
            table.add_column(column, justify="right")
        for host, report in state.reports.items():
            stats = report.stats()
            table.add_row(f"[{_STYLE[report.status]}]{escape(host)}[/]", *(str(stats[k]) for k in stats))
        self.out.print(table)


class QuietReporter:
    """For --json: stdout holds only the document at the end; notices (pins) go to stderr."""

    def task_done(self, host: str, result: TaskResult) -> None:
        """Results are read from the play state at the end."""

    def notice(self, message: str) -> None:
        sys.stderr.write(REDACTOR.mask(message) + "\n")


def play_document(command: str, state: PlayState, exit_status: int) -> dict[str, Any]:
    """The --json document of DESIGN.md, secrets masked."""
    hosts = {
        host: {
            "status": str(report.status),
            "tasks": [
                {
                    "name": t.name,
                    "status": str(t.status),
                    "changed": t.changed,
                    "msg": REDACTOR.mask(t.msg),
                    "diff": REDACTOR.mask(t.diff),
                }
                for t in report.tasks
            ],
        }
        for host, report in state.reports.items()
    }
    stats = {host: report.stats() for host, report in state.reports.items()}
    return {"command": command, "hosts": hosts, "stats": stats, "exit_status": exit_status}


def print_json(document: Any) -> None:
    """One JSON document on stdout, nothing else."""
    sys.stdout.write(REDACTOR.mask(json.dumps(document, indent=2, sort_keys=False)) + "\n")
