"""Engine logic with in-memory sessions: phases, check mode, failure isolation, statuses, JSON."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from provision.connection import CommandResult, UnreachableError
from provision.engine import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    NOT_PROVEN,
    Change,
    Command,
    Engine,
    HostContext,
    Phase,
    Planned,
    Play,
    Proof,
    RunOptions,
    Status,
    Task,
    exit_status,
)
from provision.errors import ProvisionError
from provision.facts import ControllerFact, Fact
from provision.host_lock import HostBusy, HostLocks
from provision.inventory import Host, load_inventory
from provision.remote import BatchOutput
from provision.report import QuietReporter, play_document


@dataclass(frozen=True)
class CommandFact(Fact):
    """The output of a test's read-only command, or None when it fails."""

    command: tuple[str, ...]
    privileged: bool = False

    @property
    def key(self) -> Hashable:
        return ("command", self.command)

    def argv(self) -> list[str]:
        return list(self.command)

    def parse(self, output: BatchOutput) -> str | None:
        return output.stdout if output.rc == 0 else None


class MemorySession:
    """A host whose 'state' is a dict; commands are answered by a local shell-free table."""

    def __init__(self, label: str, files: dict[str, str]) -> None:
        self.label = label
        self.files = files
        self.lines: list[str] = []
        self.privileged: list[bool] = []

    def run(self, argv: Sequence[str], *, privileged: bool = False,
            timeout: float | None = None) -> CommandResult:
        raise AssertionError("tasks in these tests use facts and apply callbacks only")

    def run_line(self, command: str, *, privileged: bool = False,
                 timeout: float | None = None) -> CommandResult:
        self.lines.append(command)
        self.privileged.append(privileged)
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
        return CommandResult((), done.returncode, done.stdout, done.stderr)

    def upload(self, data: bytes, path: str, mode: int = 0o600) -> None:
        raise AssertionError("not used")

    def close(self) -> None:
        """Nothing to close."""


class SetValue(Task):
    """Sets files[key] = value in the memory host; reads the current value through a real probe."""

    def __init__(self, files: dict[str, str], key: str, value: str) -> None:
        self.files, self.key, self.value = files, key, value
        self.name = f"set {key}"

    def facts(self) -> Sequence[Fact]:
        return (CommandFact(("printf", "%s", self.files.get(self.key, ""))),)

    def plan(self, ctx: HostContext) -> Change | None:
        current = ctx.fact(CommandFact(("printf", "%s", self.files.get(self.key, ""))))
        if current == self.value:
            return None

        def apply() -> None:
            self.files[self.key] = self.value

        return Change(f"set {self.key}", apply, f"-{current}\n+{self.value}\n")


class Fails(Task):
    name = "fails"

    def plan(self, ctx: HostContext) -> Change | None:
        raise ProvisionError("boom with s3cr3t-value inside")


class Exports(Task):
    name = "export"

    def plan(self, ctx: HostContext) -> Change | None:
        ctx.export("pubkey", f"key-of-{ctx.host.name}")
        return None


class CollectsExports(Task):
    name = "collect"

    def __init__(self, seen: list[dict[str, str]]) -> None:
        self.seen = seen

    def plan(self, ctx: HostContext) -> Change | None:
        self.seen.append(ctx.state.exports("pubkey"))
        return None


@pytest.fixture()
def inventory(tmp_path: Path):
    path = tmp_path / "site.yml"
    path.write_text(
        "all:\n  vars:\n    project: demo\n  children:\n    storage:\n      hosts:\n        st: {}\n"
        "    clients:\n      hosts:\n        a: {}\n        b: {}\n        c: {}\n"
    )
    return load_inventory(path)


def make_engine(inventory, options: RunOptions, sessions: dict[str, MemorySession], fail_connect=()):
    def factory(host: Host) -> MemorySession:
        if host.name in fail_connect:
            raise UnreachableError(f"{host.name}: connection refused")
        return sessions.setdefault(host.name, MemorySession(host.name, {}))

    return Engine(inventory, options, QuietReporter(), session_factory=factory)


def test_check_mode_plans_but_applies_nothing(inventory) -> None:
    files: dict[str, str] = {}
    engine = make_engine(inventory, RunOptions(check=True, diff=True), {})
    play = Play("t", [Phase("p", lambda s: inventory.clients, lambda h, s: [SetValue(files, h.name, "v")])])
    state = engine.run(play)
    assert files == {}
    assert all(r.status is Status.CHANGED for r in state.reports.values())
    assert state.reports["a"].tasks[0].msg.startswith("would set")
    assert state.reports["a"].tasks[0].diff == "-\n+v\n"


def test_second_run_reports_nothing_changed(inventory) -> None:
    files: dict[str, str] = {}
    play = Play("t", [Phase("p", lambda s: inventory.clients, lambda h, s: [SetValue(files, h.name, "v")])])
    first = make_engine(inventory, RunOptions(), {}).run(play)
    second = make_engine(inventory, RunOptions(), {}).run(play)
    assert sum(r.stats()["changed"] for r in first.reports.values()) == 3
    assert sum(r.stats()["changed"] for r in second.reports.values()) == 0
    assert exit_status(second) == EXIT_OK


def test_diff_only_with_diff_flag(inventory) -> None:
    play = Play("t", [Phase("p", lambda s: inventory.clients[:1], lambda h, s: [SetValue({}, "k", "v")])])
    state = make_engine(inventory, RunOptions(), {}).run(play)
    assert state.reports["a"].tasks[0].diff == ""


def test_failure_and_unreachable_are_isolated(inventory) -> None:
    files: dict[str, str] = {}

    def tasks(host: Host, state):
        tasks = [SetValue(files, host.name, "v")]
        return [Fails(), *tasks] if host.name == "b" else tasks

    play = Play("t", [Phase("p", lambda s: inventory.clients, tasks)])
    state = make_engine(inventory, RunOptions(), {}, fail_connect={"c"}).run(play)
    assert state.reports["a"].status is Status.CHANGED
    assert state.reports["b"].status is Status.FAILED
    assert [t.status for t in state.reports["b"].tasks] == [Status.FAILED, Status.SKIPPED]
    assert state.reports["c"].status is Status.UNREACHABLE
    assert files == {"a": "v"}
    assert exit_status(state) == EXIT_FAILED | EXIT_UNREACHABLE


def test_exports_reach_later_phase_and_broken_hosts_are_left_out(inventory) -> None:
    seen: list[dict[str, str]] = []
    ran: list[str] = []

    class Mark(Task):
        name = "mark"

        def plan(self, ctx: HostContext) -> Change | None:
            ran.append(ctx.host.name)
            return None

    play = Play("t", [
        Phase("keys", lambda s: inventory.clients, lambda h, s: [Fails()] if h.name == "b" else [Exports()]),
        Phase("storage", lambda s: [inventory.storage], lambda h, s: [CollectsExports(seen)]),
        Phase("after", lambda s: inventory.clients, lambda h, s: [Mark()], needs=lambda h: ["st"]),
    ])
    make_engine(inventory, RunOptions(), {}).run(play)
    assert seen == [{"a": "key-of-a", "c": "key-of-c"}]
    assert sorted(ran) == ["a", "c"]


def test_phase_facts_read_in_one_round_trip(inventory) -> None:
    sessions: dict[str, MemorySession] = {}
    files: dict[str, str] = {}
    play = Play("t", [Phase("p", lambda s: inventory.clients[:1],
                            lambda h, s: [SetValue(files, "x", "1"), SetValue(files, "y", "2")])])
    make_engine(inventory, RunOptions(check=True), sessions).run(play)
    assert len(sessions["a"].lines) == 1


def test_probes_batched_by_privilege(inventory) -> None:
    """An unprivileged probe never rides along in a privileged batch (it would run as root)."""
    sessions: dict[str, MemorySession] = {}

    class Probes(Task):
        name = "probes"

        def facts(self) -> Sequence[Fact]:
            return (CommandFact(("echo", "mine")), CommandFact(("echo", "root"), privileged=True),
                    CommandFact(("echo", "also mine")))

        def plan(self, ctx: HostContext) -> Change | None:
            return None

    play = Play("t", [Phase("p", lambda s: inventory.clients[:1], lambda h, s: [Probes()])])
    make_engine(inventory, RunOptions(check=True), sessions).run(play)
    session = sessions["a"]
    assert session.privileged == [False, True]
    assert "mine" in session.lines[0] and "also mine" in session.lines[0] and "root" not in session.lines[0]
    assert "root" in session.lines[1] and "mine" not in session.lines[1]


def test_forks_bound_parallelism(inventory) -> None:
    active, peak, lock = [0], [0], threading.Lock()
    gate = threading.Barrier(2, timeout=5)

    class Slow(Task):
        name = "slow"

        def plan(self, ctx: HostContext) -> Change | None:
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            with contextlib.suppress(threading.BrokenBarrierError):
                gate.wait()
            with lock:
                active[0] -= 1
            return None

    play = Play("t", [Phase("p", lambda s: list(inventory.hosts.values()), lambda h, s: [Slow()])])
    make_engine(inventory, RunOptions(forks=2), {}).run(play)
    assert peak[0] == 2


def test_json_document_schema_and_masking(inventory) -> None:
    from provision.secrets import REDACTOR

    REDACTOR.register("s3cr3t-value")
    play = Play("t", [Phase("p", lambda s: inventory.clients, lambda h, s: [Fails()])])
    state = make_engine(inventory, RunOptions(), {}).run(play)
    document = play_document("t", state, exit_status(state))
    text = json.dumps(document)
    assert "s3cr3t-value" not in text
    assert set(document) == {"command", "hosts", "stats", "exit_status"}
    task = document["hosts"]["a"]["tasks"][0]
    assert set(task) == {"name", "status", "changed", "msg", "diff"}
    assert document["hosts"]["a"]["status"] == "failed"
    assert set(document["stats"]["a"]) == {"ok", "changed", "failed", "skipped", "unreachable", "retries"}
    assert document["exit_status"] == EXIT_FAILED


# ------------------------------------------------------------------ queued commands, one round trip

class WriteFile(Task):
    """Writes a local file through a queued command; knows its content through a fact."""

    def __init__(self, path: Path, text: str, *, broken: bool = False) -> None:
        self.path, self.text, self.broken = path, text, broken
        self.name = f"write {path.name}"
        self.fact = CommandFact(("cat", "--", str(path)))

    def facts(self) -> Sequence[Fact]:
        return (self.fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        if ctx.fact(self.fact) == self.text:
            return None
        argv = ["sh", "-c", "echo no space left >&2; exit 3"] if self.broken else \
            ["sh", "-c", 'printf %s "$2" > "$1"', "write", str(self.path), self.text]
        return Change(f"write {self.path.name}", commands=[Command(argv, f"writing {self.path.name}",
                                                                   stale=[self.fact])])


class ReadFile(Task):
    """Notes a file's content as its fact says."""

    def __init__(self, path: Path) -> None:
        self.name = f"read {path.name}"
        self.fact = CommandFact(("cat", "--", str(path)))

    def plan(self, ctx: HostContext) -> Change | None:
        ctx.note(f"holds {ctx.fact(self.fact)!r}")
        return None


def _one_host(inventory, tasks, sessions):
    play = Play("t", [Phase("p", lambda s: [inventory.hosts["a"]], lambda h, s: tasks)])
    return make_engine(inventory, RunOptions(), sessions).run(play).reports["a"]


def test_queued_commands_of_a_phase_go_in_one_round_trip_with_a_result_per_task(inventory, tmp_path: Path) -> None:
    tasks = [WriteFile(tmp_path / name, f"text {name}") for name in ("x", "y", "z")]
    sessions: dict[str, MemorySession] = {}
    report = _one_host(inventory, tasks, sessions)
    assert [(t.name, t.status) for t in report.tasks] == [(f"write {n}", Status.CHANGED) for n in "xyz"]
    assert all((tmp_path / name).read_text() == f"text {name}" for name in "xyz")
    assert len(sessions["a"].lines) == 2  # the facts, then every change

    again: dict[str, MemorySession] = {}
    assert _one_host(inventory, tasks, again).stats()["changed"] == 0
    assert len(again["a"].lines) == 1


def test_a_failing_queued_command_fails_its_task_and_skips_the_rest(inventory, tmp_path: Path) -> None:
    tasks = [WriteFile(tmp_path / "x", "1"), WriteFile(tmp_path / "y", "2", broken=True),
             WriteFile(tmp_path / "z", "3")]
    report = _one_host(inventory, tasks, {})
    assert [t.status for t in report.tasks] == [Status.CHANGED, Status.FAILED, Status.SKIPPED]
    assert "writing y" in report.tasks[1].msg and "no space left" in report.tasks[1].msg
    assert (tmp_path / "x").read_text() == "1" and not (tmp_path / "z").exists()
    assert report.failed


def test_a_fact_a_queued_command_changes_is_read_after_it_ran(inventory, tmp_path: Path) -> None:
    path = tmp_path / "x"
    report = _one_host(inventory, [WriteFile(path, "new"), ReadFile(path), WriteFile(tmp_path / "y", "other")], {})
    assert [t.name for t in report.tasks] == ["write x", "read x", "write y"]
    assert report.tasks[1].msg == "holds 'new'"
    assert report.stats()["changed"] == 2


# ------------------------------------------------------------------ proofs

class ProveIt(Proof):
    """Shows something by doing it: `proven` records each time it ran; `refuse` fails it from the facts."""

    name = "prove it"

    def __init__(self, proven: list[str], *, outcome: str | Change = "it works", refuse: bool = False,
                 broken: bool = False) -> None:
        self.proven, self.outcome, self.refuse, self.broken = proven, outcome, refuse, broken

    def plan(self, ctx: HostContext) -> Planned:
        if self.refuse:
            raise ProvisionError("nothing to prove it with")
        return None

    def prove(self, ctx: HostContext) -> str | Change:
        self.proven.append(ctx.host.name)
        if self.broken:
            raise ProvisionError("storage refused the key")
        return self.outcome


def _proof_report(inventory, tasks, *, check: bool):
    play = Play("t", [Phase("p", lambda s: [inventory.hosts["a"]], lambda h, s: tasks)])
    return make_engine(inventory, RunOptions(check=check), {}).run(play).reports["a"]


def test_a_proof_is_not_run_under_check_and_says_so(inventory) -> None:
    proven: list[str] = []
    report = _proof_report(inventory, [ProveIt(proven)], check=True)
    assert proven == []
    assert [(t.name, t.status, t.msg) for t in report.tasks] == [("prove it", Status.OK, NOT_PROVEN)]


def test_a_proof_runs_outside_check_and_reports_what_it_showed(inventory) -> None:
    proven: list[str] = []
    report = _proof_report(inventory, [ProveIt(proven)], check=False)
    assert proven == ["a"]
    assert [(t.status, t.msg) for t in report.tasks] == [(Status.OK, "it works")]


def test_a_failed_proof_fails_its_host_in_either_mode(inventory) -> None:
    proven: list[str] = []
    files: dict[str, str] = {}
    report = _proof_report(inventory, [ProveIt(proven, broken=True), SetValue(files, "k", "v")], check=False)
    assert [t.status for t in report.tasks] == [Status.FAILED, Status.SKIPPED]
    assert report.tasks[0].msg == "storage refused the key" and report.failed and files == {}
    refused = _proof_report(inventory, [ProveIt(proven, refuse=True)], check=True)
    assert [(t.status, t.msg) for t in refused.tasks] == [(Status.FAILED, "nothing to prove it with")]
    assert proven == ["a"]


def test_a_proof_that_needs_a_change_is_reported_changed(inventory) -> None:
    applied: list[str] = []
    pull = Change("pull the data", lambda: applied.append("pull"))
    report = _proof_report(inventory, [ProveIt([], outcome=pull)], check=False)
    assert applied == ["pull"]
    assert [(t.status, t.msg) for t in report.tasks] == [(Status.CHANGED, "pull the data")]


# ------------------------------------------------------------------ several changes from one plan

class Steps(Task):
    """Plans one change per step, each with its own diff; `applied` records the order they ran in."""

    name = "steps"

    def __init__(self, applied: list[str], steps: Sequence[str]) -> None:
        self.applied, self.steps = applied, list(steps)

    def plan(self, ctx: HostContext) -> Planned:
        return [Change(step, lambda step=step: self.applied.append(step), f"+{step}\n") for step in self.steps]


def test_several_changes_of_one_plan_are_applied_in_order_as_one_result(inventory) -> None:
    applied: list[str] = []
    play = Play("t", [Phase("p", lambda s: [inventory.hosts["a"]], lambda h, s: [Steps(applied, ["one", "two"])])])
    report = make_engine(inventory, RunOptions(diff=True), {}).run(play).reports["a"]
    assert applied == ["one", "two"]
    assert [(t.name, t.status, t.msg, t.diff) for t in report.tasks] == [
        ("steps", Status.CHANGED, "one, two", "+one\n+two\n")]

    checked = make_engine(inventory, RunOptions(check=True, diff=True), {}).run(play).reports["a"]
    assert applied == ["one", "two"]
    assert [(t.status, t.msg, t.diff) for t in checked.tasks] == [(Status.CHANGED, "would one, two", "+one\n+two\n")]


def test_a_plan_of_no_changes_is_ok(inventory) -> None:
    report = _one_host(inventory, [Steps([], [])], {})
    assert [(t.status, t.msg) for t in report.tasks] == [(Status.OK, "")]


class WriteFiles(Task):
    """One queued command per file, as several changes of one plan."""

    name = "write files"

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def plan(self, ctx: HostContext) -> Planned:
        return [Change(f"write {path.name}", commands=[Command(["sh", "-c", 'printf x > "$1"', "write", str(path)],
                                                               f"writing {path.name}")]) for path in self.paths]


def test_the_commands_of_several_changes_are_queued_together(inventory, tmp_path: Path) -> None:
    sessions: dict[str, MemorySession] = {}
    tasks = [WriteFiles([tmp_path / "x", tmp_path / "y"]), WriteFile(tmp_path / "z", "z")]
    report = _one_host(inventory, tasks, sessions)
    assert [(t.name, t.status, t.msg) for t in report.tasks] == [("write files", Status.CHANGED, "write x, write y"),
                                                                 ("write z", Status.CHANGED, "write z")]
    assert [(tmp_path / name).read_text() for name in "xyz"] == ["x", "x", "z"]
    assert len(sessions["a"].lines) == 2  # the facts, then every change


# ------------------------------------------------------------------ fresh facts

class ReadsFresh(Task):
    """Notes a file's content from a fact the engine reads again after earlier changes."""

    def __init__(self, path: Path) -> None:
        self.name = f"fresh {path.name}"
        self.fact = CommandFact(("cat", "--", str(path)))

    def fresh_facts(self) -> Sequence[Fact]:
        return (self.fact,)

    def plan(self, ctx: HostContext) -> Planned:
        ctx.note(f"holds {ctx.fact(self.fact)!r}")
        return None


class Touch(Task):
    """Writes a file by a callable, which tells the engine nothing about the facts it makes stale."""

    def __init__(self, path: Path, text: str) -> None:
        self.name = f"touch {path.name}"
        self.path, self.text = path, text

    def plan(self, ctx: HostContext) -> Planned:
        return None if self.path.exists() else Change(f"touch {self.path.name}",
                                                      lambda: self.path.write_text(self.text))


def test_a_fresh_fact_is_read_again_after_an_earlier_change_only(inventory, tmp_path: Path) -> None:
    path = tmp_path / "x"
    tasks = [ReadsFresh(path), Touch(path, "new"), ReadsFresh(path)]
    checked: dict[str, MemorySession] = {}
    play = Play("t", [Phase("p", lambda s: [inventory.hosts["a"]], lambda h, s: tasks)])
    report = make_engine(inventory, RunOptions(check=True), checked).run(play).reports["a"]
    assert [t.msg for t in report.tasks] == ["holds None", "would touch x", "holds None"]
    assert len(checked["a"].lines) == 1  # under --check nothing changed: the first reading stands

    sessions: dict[str, MemorySession] = {}
    report = _one_host(inventory, tasks, sessions)
    assert [t.msg for t in report.tasks] == ["holds None", "touch x", "holds 'new'"]
    assert len(sessions["a"].lines) == 2  # the phase's facts, then the fresh one again after the change

    again: dict[str, MemorySession] = {}
    report = _one_host(inventory, tasks, again)
    assert [t.msg for t in report.tasks] == ["holds 'new'", "", "holds 'new'"]
    assert len(again["a"].lines) == 1


def test_a_play_that_changes_hosts_locks_them_first_and_a_host_it_could_not_lock_fails_alone(
        inventory, monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[str] = []
    asked: list[list[str]] = []

    def lock_hosts(hosts, connect, *, wait, forks, notice) -> HostLocks:
        asked.append(sorted(host.name for host in hosts))
        for host in hosts:
            connect(host)
        return HostLocks(held={name: lambda name=name: released.append(name) for name in ("a", "c")},
                         errors={"b": HostBusy("b", "pid 7 on laptop since noon", wait)})

    monkeypatch.setattr("provision.engine.lock_hosts", lock_hosts)
    files: dict[str, str] = {}
    play = Play("t", [Phase("p", lambda s: inventory.clients, lambda h, s: [SetValue(files, h.name, "v")])],
                locks_hosts=True)
    state = make_engine(inventory, RunOptions(check=True), {}).run(play)
    assert asked == [] and state.reports["b"].status is Status.CHANGED  # --check takes no lock

    state = make_engine(inventory, RunOptions(lock_wait=5), {}).run(play)
    assert asked == [["a", "b", "c"]]
    assert files == {"a": "v", "c": "v"}
    assert state.reports["b"].status is Status.FAILED
    assert "another provision run (pid 7 on laptop since noon) still works on this host after 5s" in \
        state.reports["b"].tasks[0].msg
    assert sorted(released) == ["a", "c"]


# ------------------------------------------------------------------ facts the controller reads itself

@dataclass(frozen=True)
class SshdAnswer(ControllerFact):
    """What the host's sshd says to a connection of the controller's own: `answers` pops one per reading."""

    answers: list[str]

    @property
    def key(self) -> Hashable:
        return ("sshd answer",)

    def read(self) -> str:
        return self.answers.pop(0)


class AsksSshd(Task):
    name = "ask sshd"

    def __init__(self, fact: SshdAnswer) -> None:
        self.fact = fact

    def facts(self) -> Sequence[Fact]:
        return (self.fact, CommandFact(("echo", "state")))

    def plan(self, ctx: HostContext) -> Planned:
        ctx.note(f"{ctx.fact(self.fact)} then {ctx.fact(self.fact)}")
        return None


def test_a_controller_fact_is_read_when_asked_each_time_and_never_sent_to_the_host(inventory) -> None:
    sessions: dict[str, MemorySession] = {}
    report = _one_host(inventory, [AsksSshd(SshdAnswer(["password", "publickey"]))], sessions)
    assert [(t.status, t.msg) for t in report.tasks] == [(Status.OK, "password then publickey")]
    assert len(sessions["a"].lines) == 1 and "sshd answer" not in sessions["a"].lines[0]  # the host fact only
