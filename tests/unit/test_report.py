"""Progress of long steps, for terminals and for logs."""

from __future__ import annotations

import io
import time

from rich.console import Console

from provision.engine import Status, TaskResult
from provision.report import ConsoleReporter, RunningTasks


def test_log_output_says_a_long_task_is_still_running() -> None:
    buffer = io.StringIO()
    out = Console(file=buffer, force_terminal=False, width=200)
    reporter = ConsoleReporter(out, running=RunningTasks(out, quiet_for=0.3, every=60))
    reporter.task_started("ws1", "pull data")
    reporter.task_started("ws2", "checkout")
    reporter.task_done("ws2", TaskResult("checkout", Status.OK))
    time.sleep(0.9)
    reporter.task_done("ws1", TaskResult("pull data", Status.CHANGED, "pulled 3 files, 12 kB"))
    reporter.running.close()
    text = buffer.getvalue()
    assert "still running: ws1 pull data" in text
    assert text.count("still running") == 1  # once after quiet_for, then only every 60 s
    assert "ws2 checkout (" not in text  # finished quickly: no progress line


def test_terminal_shows_a_live_footer_and_clears_it() -> None:
    buffer = io.StringIO()
    out = Console(file=buffer, force_terminal=True, width=120)
    running = RunningTasks(out, quiet_for=0.1)
    running.started("storage", "dvc")
    time.sleep(0.6)
    assert "storage dvc (" in buffer.getvalue()
    running.finished("storage", "dvc")
    running.close()
