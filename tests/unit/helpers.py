"""What several unit test modules share: a small inventory on disk, and a host context without a host."""

from __future__ import annotations

import contextlib
import io
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from provision.cli.main import main
from provision.engine import Engine, HostContext, PlayState, RunOptions, Task
from provision.facts import Fact
from provision.inventory import Host, Inventory
from provision.report import QuietReporter

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


class FakeContext(HostContext):
    """A real HostContext with the facts given up front by key, over an Engine whose one session is `session`.

    Derived from the engine's own context, so tasks see exactly what they see on a host; a fact not given
    is read through `session`, like any fact not gathered. `host` is a name, or an inventory Host when the
    task reads its settings; `secrets` answers `ctx.secret(key)`.
    """

    def __init__(self, host: str | Host, facts: dict[Any, Any] | None = None, *, check: bool = False,
                 diff: bool = False, state: PlayState | None = None, session: Any = None,
                 secrets: dict[str, str] | None = None) -> None:
        known = secrets or {}
        engine = Engine(Inventory(Path("fake.yml"), {}, {}), RunOptions(check=check, diff=diff), QuietReporter(),
                        secrets=lambda _host, key: known.get(key), session_factory=lambda _host: session)
        super().__init__(host if isinstance(host, Host) else Host(host, {}, []), engine, state or PlayState())
        self._facts.update(facts or {})

    @classmethod
    def answering(cls, task: Task, answer: Callable[[Fact], Any], *, host: str | Host = "ws1",
                  **options: Any) -> FakeContext:
        """A context that knows the task's own facts, each answered by `answer` (options as above)."""
        return cls(host, {fact.key: answer(fact) for fact in task.facts()}, **options)

    @property
    def exports(self) -> dict[str, Any]:
        """What the task exported to later phases."""
        return self.state.report(self.host.name).exports


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
