"""What several unit test modules share: a small inventory on disk, and a host context without a host."""

from __future__ import annotations

import contextlib
import io
import socket
import sys
import threading
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from provision.cli.main import main
from provision.engine import HostContext, PlayState
from provision.errors import command_error

#: Python's default: what a user's process has (hypothesis raises the limit in its tests).
PYTHON_RECURSION_LIMIT = 1000


def write_inventory(tmp_path: Path, clients: dict[str, Any], *, storage: dict[str, Any] | None = None,
                    **variables: Any) -> Path:
    """tmp_path/site.yml: project demo (and `variables`) for all, storage host `nas`, and the `clients` group.

    `clients` is the group's body: {"hosts": {...}}, or {"children": {...}} for clients in subgroups.
    """
    data = {"all": {"vars": {"project": "demo", **variables},
                    "children": {"storage": {"hosts": {"nas": storage or {"ansible_host": "10.0.0.5"}}},
                                 "clients": clients}}}
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump(data))
    return path


class FakeContext:
    """The slice of HostContext that tasks use, with the facts given up front by key."""

    def __init__(self, host: str, facts: dict[Any, Any] | None = None, *, check: bool = False,
                 state: PlayState | None = None, session: Any = None) -> None:
        self.host = type("HostName", (), {"name": host})()
        self.facts = facts or {}
        self.check = check
        self.state = state or PlayState()
        self.session = session
        self.notes: list[str] = []
        self.changed_tasks: list[str] = []

    def fact(self, fact: Any) -> Any:
        return self.facts[fact.key]

    def forget(self, fact: Any) -> None:
        self.facts.pop(fact.key, None)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def export(self, key: str, value: Any) -> None:
        self.state.report(self.host.name).exports[key] = value

    def apply_now(self, change: Any) -> None:
        HostContext.apply_now(self, change)  # type: ignore[arg-type]

    def run(self, argv: Any, what: str, **options: Any) -> Any:
        return HostContext.run(self, argv, what, **options)  # type: ignore[arg-type]

    def storage_run(self, argv: Any, *, timeout: float | None = None) -> Any:
        """Straight to the session: admission and retries are the engine's (tested in test_admission)."""
        return self.session.run(argv, timeout=timeout)

    def storage_step(self, argv: Any, what: str, *, timeout: float | None = None) -> Any:
        result = self.storage_run(argv, timeout=timeout)
        if not result.ok:
            raise command_error(what, result)
        return result

def run_cli(*args: str) -> tuple[int, str]:
    """`provision ARGS` through main() in this process: (exit status, stderr)."""
    stderr, stdout = io.StringIO(), io.StringIO()
    recursion_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(PYTHON_RECURSION_LIMIT)
    with mock.patch.object(sys, "argv", ["provision", *args]), contextlib.redirect_stderr(stderr), \
            contextlib.redirect_stdout(stdout):
        try:
            main()
        except SystemExit as done:
            return int(done.code or 0), stderr.getvalue()
        finally:
            sys.setrecursionlimit(recursion_limit)
    raise AssertionError("main() did not exit")


class Listener:
    """A TCP port on 127.0.0.1 that accepts and counts connections (and never answers)."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self._held:
            connection.close()
