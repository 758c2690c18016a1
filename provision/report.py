"""How results look: one line per host and task as they finish, a recap table, or one JSON document.

Every string that leaves through here passes the process-wide redactor, so a secret that reached a
message, a diff or an exception is masked before anyone sees it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from provision.audit.findings import Finding
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


class RunningTasks:
    """Tasks under way, so that long steps (pip install, clone, dvc pull) show they are alive.

    On a terminal a live footer lists them with their elapsed time; elsewhere (logs, CI) a line is
    printed for a task still running after `quiet_for` seconds, and again every `every` seconds.
    """

    def __init__(self, out: Console, *, quiet_for: float = 15.0, every: float = 60.0) -> None:
        self.out = out
        self.quiet_for = quiet_for
        self.every = every
        self._running: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._live: Live | None = None
        self._thread: threading.Thread | None = None

    def started(self, host: str, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._running[(host, name)] = [now, now + self.quiet_for]
            if self._thread is None:
                if self.out.is_terminal:
                    self._live = Live(Text(""), console=self.out, transient=True, refresh_per_second=4)
                    self._live.start()
                self._thread = threading.Thread(target=self._tick, name="provision-progress", daemon=True)
                self._thread.start()

    def finished(self, host: str, name: str) -> None:
        with self._lock:
            self._running.pop((host, name), None)

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            now = time.monotonic()
            with self._lock:
                running = sorted(self._running.items(), key=lambda item: item[1][0])
                due = [(key, times) for key, times in running if now >= times[1]]
                for _, times in due:
                    times[1] = now + self.every
            if self._live is not None:
                lines = [f"  … {host} {name} ({now - times[0]:.0f}s)" for (host, name), times in running]
                self._live.update(Text("\n".join(lines), style="dim"))
            else:
                for (host, name), times in due:
                    self.out.print(f"… still running: {escape(host)} {escape(name)} ({now - times[0]:.0f}s)")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._live is not None:
            self._live.stop()


class ConsoleReporter:
    """Live lines, progress of long steps, and the recap, for people."""

    def __init__(self, out: Console, *, verbose: bool = False, running: RunningTasks | None = None) -> None:
        self.out = out
        self.verbose = verbose
        self.running = running or RunningTasks(out)

    def task_started(self, host: str, name: str) -> None:
        self.running.started(host, name)

    def task_done(self, host: str, result: TaskResult) -> None:
        self.running.finished(host, result.name)
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
        self.running.close()
        table = Table(title="recap", title_justify="left", show_edge=False)
        table.add_column("host")
        columns = ("ok", "changed", "failed", "skipped", "unreachable", "retries")
        for column in columns:
            table.add_column(column, justify="right")
        for host, report in state.reports.items():
            stats = report.stats()
            table.add_row(f"[{_STYLE[report.status]}]{escape(host)}[/]", *(str(stats[k]) for k in columns))
        self.out.print(table)


class QuietReporter:
    """For --json: stdout holds only the document at the end; notices (pins) go to stderr."""

    def task_started(self, host: str, name: str) -> None:
        """Nothing is shown on the way."""

    def task_done(self, host: str, result: TaskResult) -> None:
        """Results are read from the play state at the end."""

    def notice(self, message: str) -> None:
        sys.stderr.write(REDACTOR.mask(message) + "\n")


def play_document(command: str, state: PlayState, exit_status: int) -> dict[str, Any]:
    """The --json document (README, "Commands"), secrets masked."""
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


def print_findings(out: Console, findings: Sequence[Finding], *, blocked: bool = False) -> None:
    """An audit's findings, one line each (values masked), then how many; `blocked` for the commit hook."""
    for finding in findings:
        out.print(finding.text(), markup=False)
    if not findings:
        out.print("no findings", markup=False)
        return
    refused = "commit refused: " if blocked else ""
    out.print(f"{refused}{len(findings)} finding{'s' if len(findings) != 1 else ''}", markup=False)


def print_json(document: Any) -> None:
    """One JSON document on stdout, nothing else."""
    sys.stdout.write(REDACTOR.mask(json.dumps(document, indent=2, sort_keys=False)) + "\n")
