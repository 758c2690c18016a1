"""The engine: runs plays (phases of tasks over hosts), honours check mode, and reports.

A play is a sequence of phases; each phase runs its hosts in parallel up to `forks`, and each host
runs its tasks in order. A task only *plans*: it reads facts and returns the change it would make
(or None). The engine applies a change unless `--check`, so no task can forget check mode. A failing
or unreachable host never stops the others; hosts that failed are left out of later phases.

A change made of argv-only commands (`Change.commands`) is queued rather than run at once: the queue
goes to the host as one remote command (provision.remote.ChangeBatch) when the phase's host is done,
when a task reads a fact a queued command makes stale, or when anything else needs the session. Each
queued task still gets its own result, in task order.

A task's plan may be several changes: the engine applies them in order and reports one result (their
summaries and diffs joined). A `Proof` is a task that shows something works by doing it: the engine
never runs it under --check and reports it uniformly there.
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from provision.admission import StorageAdmission
from provision.connection import (
    CommandResult,
    HostKeyOptions,
    Session,
    UnreachableError,
    open_session,
    remove_stale_staging,
)
from provision.errors import ProvisionError, command_error
from provision.facts import ControllerFact, Fact
from provision.host_lock import DEFAULT_LOCK_WAIT, HostLocks, lock_hosts
from provision.inventory import Host, Inventory
from provision.remote import BatchOutput, ChangeBatch, ProbeBatch
from provision.remote import as_user as as_account

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_FAILED = 2
EXIT_UNREACHABLE = 4
EXIT_FINDINGS = 8
EXIT_INTERRUPTED = 130


class Status(StrEnum):
    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Command:
    """A change that is one argv list: the engine may send it to the host together with its neighbours.

    `what` names it in an error; `stale` are the facts it changes (re-read when asked for after it ran);
    `done` sees its output (e.g. to add a note).
    """

    argv: Sequence[str]
    what: str
    privileged: bool = True
    stale: Sequence[Fact] = ()
    done: Callable[[CommandResult], None] | None = None


@dataclass(frozen=True)
class Change:
    """What a task would change: a one-line summary, a diff, and how to apply it: a callable, or commands
    (of one privilege level) that the engine may send together with other tasks' commands."""

    summary: str
    apply: Callable[[], None] | None = None
    diff: str = ""
    commands: Sequence[Command] = ()

    def __post_init__(self) -> None:
        if len({command.privileged for command in self.commands}) > 1:
            raise ValueError("a change's commands must share one privilege level")


#: What a plan returns: no change, one, or several applied in order and reported as one result.
Planned = Change | Sequence[Change] | None
#: How the engine reports a proof under --check.
NOT_PROVEN = "not proven under --check"


def changes_of(planned: Planned) -> list[Change]:
    """A plan's changes as a list ([] when the host is as wanted)."""
    if planned is None:
        return []
    return [planned] if isinstance(planned, Change) else list(planned)


def joined_summary(changes: Sequence[Change]) -> str:
    """What several changes of one plan do, as their task's result says it."""
    return ", ".join(change.summary for change in changes)


class Task(ABC):
    """One idempotent step on one kind of resource."""

    name: str = ""

    def facts(self) -> Sequence[Fact]:
        """Facts to read before planning, gathered with the rest of the phase's."""
        return ()

    def fresh_facts(self) -> Sequence[Fact]:
        """Facts read again before planning when an earlier task of the phase changed the host after they
        were read (for state those tasks change without knowing this fact, e.g. an account they create)."""
        return ()

    @abstractmethod
    def plan(self, ctx: HostContext) -> Planned:
        """The changes needed, none when the host is already as wanted.

        A pure function of the facts: it never changes the host or runs anything that does.
        """


class Proof(Task):
    """Shows that something works by doing it (a login to storage, `dvc status -c`), which may write state.

    `plan()` (run in every mode) may refuse from the facts or return changes the proof needs first;
    under --check the engine reports those and NOT_PROVEN and never calls `prove()`. Otherwise it applies
    them, then `prove()` runs: it returns what it showed (the result's note) or, when showing it takes a
    change (a `dvc pull` that fetches proves DVC access), that change, which the engine applies. A proof
    that fails raises.
    """

    def plan(self, ctx: HostContext) -> Planned:
        return None

    @abstractmethod
    def prove(self, ctx: HostContext) -> str | Change:
        """Show it; what was shown, or the change that shows it."""


class SkipHost(ProvisionError):
    """Raised by a task to skip the rest of its host's phase without failing it."""


class QueuedChangeFailed(SkipHost):
    """A queued command of an earlier task failed when the queue ran: the task that needed it is skipped."""


@dataclass
class TaskResult:
    name: str
    status: Status
    msg: str = ""
    diff: str = ""

    @property
    def changed(self) -> bool:
        return self.status is Status.CHANGED


@dataclass
class HostReport:
    """Everything that happened on one host during a play."""

    tasks: list[TaskResult] = field(default_factory=list)
    unreachable: bool = False
    failed: bool = False
    exports: dict[str, Any] = field(default_factory=dict)
    #: Client steps tried again because storage shed their connection before authentication.
    retries: int = 0

    @property
    def status(self) -> Status:
        if self.unreachable:
            return Status.UNREACHABLE
        if self.failed:
            return Status.FAILED
        if any(t.changed for t in self.tasks):
            return Status.CHANGED
        if self.tasks and all(t.status is Status.SKIPPED for t in self.tasks):
            return Status.SKIPPED
        return Status.OK

    def stats(self) -> dict[str, int]:
        """Ansible's recap counters (`ok` counts changed tasks too), and retries of storage steps."""
        count = {s: sum(1 for t in self.tasks if t.status is s) for s in Status}
        return {
            "ok": count[Status.OK] + count[Status.CHANGED],
            "changed": count[Status.CHANGED],
            "failed": count[Status.FAILED],
            "skipped": count[Status.SKIPPED],
            "unreachable": 1 if self.unreachable else 0,
            "retries": self.retries,
        }


class Reporter(Protocol):
    """Receives results as they happen (see provision.report)."""

    def task_started(self, host: str, name: str) -> None: ...

    def task_done(self, host: str, result: TaskResult) -> None: ...

    def notice(self, message: str) -> None: ...


@dataclass
class RunOptions:
    check: bool = False
    diff: bool = False
    forks: int = 10
    timeout: float = 30.0
    accept_new_hostkeys: bool = False
    #: Seconds to wait for another run's lock on a host (provision.host_lock).
    lock_wait: float = DEFAULT_LOCK_WAIT


@dataclass
class PlayState:
    """Results so far, shared between phases: clients' exports reach the storage phase as data."""

    reports: dict[str, HostReport] = field(default_factory=dict)

    def report(self, host: str) -> HostReport:
        return self.reports.setdefault(host, HostReport())

    def exports(self, key: str) -> dict[str, Any]:
        """`key` as exported by every host that exported it."""
        return {h: r.exports[key] for h, r in self.reports.items() if key in r.exports}

    def broken(self, host: str) -> bool:
        report = self.reports.get(host)
        return bool(report and (report.failed or report.unreachable))


@dataclass
class Phase:
    """Tasks for a set of hosts; `needs` names hosts that must not have failed before it runs."""

    name: str
    hosts: Callable[[PlayState], Sequence[Host]]
    tasks: Callable[[Host, PlayState], Sequence[Task]]
    needs: Callable[[Host], Iterable[str]] = lambda host: ()


@dataclass
class Play:
    """Phases run in order; a play that changes hosts (`locks_hosts`) first locks every host it works on
    (provision.host_lock), except under --check."""

    command: str
    phases: list[Phase]
    locks_hosts: bool = False

    def hosts(self) -> list[Host]:
        """Every host a phase works on (as the phases choose them before anything ran)."""
        start = PlayState()
        return list({host.name: host for phase in self.phases for host in phase.hosts(start)}.values())


SecretLookup = Callable[[Host, str], "str | None"]


class HostContext:
    """What a task sees of its host: facts, read-only commands, the session for applying."""

    def __init__(self, host: Host, engine: Engine, state: PlayState) -> None:
        self.host = host
        self.check = engine.options.check
        self.diff = engine.options.diff
        self.state = state
        self._engine = engine
        self._facts: dict[Hashable, Any] = {}
        #: How many tasks had changed the host when each fact was read (see Task.fresh_facts).
        self._read_after: dict[Hashable, int] = {}
        self.notes: list[str] = []
        #: Tasks of this phase that changed the host so far (facts gathered before them may be stale).
        self.changed_tasks: list[str] = []
        #: Results in task order that wait for queued commands to run, with the commands of each.
        self._waiting: list[tuple[TaskResult, tuple[Command, ...]]] = []
        self._finished: list[TaskResult] = []

    @property
    def session(self) -> Session:
        """The host's session; queued commands run first, since whatever comes next may rely on them."""
        self.flush()
        return self._engine.session(self.host)

    def run(self, argv: Sequence[str], what: str, *, privileged: bool = False, as_user: str | None = None,
            timeout: float | None = None) -> CommandResult:
        """Run a command now (after anything queued); a failure raises an error naming `what` and why.

        The one way a task runs a command itself: as the connecting user, with privilege, or `as_user`
        (a service account, reached from root).
        """
        if as_user is not None:
            argv, privileged, what = as_account(as_user, argv), True, f"{what} (as {as_user})"
        result = self.session.run(argv, privileged=privileged, timeout=timeout)
        if not result.ok:
            raise command_error(what, result)
        return result

    def queue(self, result: TaskResult, commands: Sequence[Command] = ()) -> None:
        """A task's result, reported once the queue ran: its commands' outcome decides it (none: as it is)."""
        self._waiting.append((result, tuple(commands)))

    @property
    def queued(self) -> bool:
        return any(commands for _, commands in self._waiting)

    def _stale_keys(self) -> set[Hashable]:
        return {fact.key for _, commands in self._waiting for command in commands for fact in command.stale}

    def flush(self) -> None:
        """Run the queued commands, one remote command per run of equal privilege; results go to `finished`.

        Raises QueuedChangeFailed when one failed (the caller's task is skipped, the host stops).
        """
        waiting, self._waiting = self._waiting, []
        failed: str | None = None
        while waiting and failed is None:
            privileged = next((commands[0].privileged for _, commands in waiting if commands), False)
            run: list[tuple[TaskResult, tuple[Command, ...]]] = []
            while waiting and all(command.privileged is privileged for command in waiting[0][1]):
                run.append(waiting.pop(0))
            failed = self._run_queued(run, privileged)
        for result, _ in waiting:
            self._finished.append(TaskResult(result.name, Status.SKIPPED, f"skipped after {failed} failed"))
        if failed is not None:
            raise QueuedChangeFailed(f"skipped after {failed} failed")

    def _run_queued(self, run: Sequence[tuple[TaskResult, tuple[Command, ...]]], privileged: bool) -> str | None:
        """One batch; the name of the task whose command failed (or that lost the host), or None."""
        argvs = [command.argv for _, commands in run for command in commands]
        if not argvs:
            self._finished += [result for result, _ in run]
            return None
        batch = ChangeBatch(argvs)
        lost: TaskResult | None = None
        outcomes: list[BatchOutput] = []
        try:
            output = self._engine.session(self.host).run_line(batch.command(), privileged=privileged)
            outcomes = batch.parse(output.stdout)
        except UnreachableError as error:
            lost = TaskResult("", Status.UNREACHABLE, str(error))
        except (ProvisionError, ValueError) as error:
            lost = TaskResult("", Status.FAILED, str(error))
        failed: str | None = None
        ran = iter(outcomes)
        for result, commands in run:
            if failed is not None:
                self._finished.append(TaskResult(result.name, Status.SKIPPED, f"skipped after {failed} failed"))
            elif lost is not None and commands:
                failed = result.name
                self._finished.append(TaskResult(result.name, lost.status, lost.msg))
            else:
                failed = self._commands_done(result, commands, [next(ran, None) for _ in commands])
        return failed

    def _commands_done(self, result: TaskResult, commands: Sequence[Command],
                       outcomes: Sequence[BatchOutput | None]) -> str | None:
        """Finish a queued task from its commands' outcomes; its name when one failed."""
        running_task_notes, self.notes = self.notes, []
        try:
            for command, outcome in zip(commands, outcomes, strict=True):
                done = CommandResult(tuple(command.argv), 255 if outcome is None else outcome.rc,
                                     "" if outcome is None else outcome.stdout,
                                     "no result: the batch stopped early" if outcome is None else outcome.stdout)
                if not done.ok:
                    self._finished.append(TaskResult(result.name, Status.FAILED,
                                                     str(command_error(command.what, done))))
                    return result.name
                self._command_ran(command, done)
            self._finished.append(TaskResult(result.name, result.status, "; ".join([result.msg, *self.notes]),
                                             result.diff))
            return None
        finally:
            self.notes = running_task_notes

    def _command_ran(self, command: Command, result: CommandResult) -> None:
        for fact in command.stale:
            self.forget(fact)
        if command.done is not None:
            command.done(result)

    def apply_now(self, change: Change) -> None:
        """Apply a change at once: its callable, then its commands one by one."""
        if change.apply is not None:
            change.apply()
        for command in change.commands:
            self._command_ran(command, self.run(command.argv, command.what, privileged=command.privileged))

    def refresh(self, facts: Iterable[Fact], fresh: Iterable[Fact] = ()) -> None:
        """Before a task plans: its facts that queued commands change are read after they ran, `fresh` ones
        again when a task changed the host after they were read, and every fact of it not known (any
        more) is read in one batch."""
        changed = len(self.changed_tasks)
        fresh = list(fresh)
        for fact in fresh:
            if self._read_after.get(fact.key, changed) < changed:
                self.forget(fact)
        facts = [*facts, *fresh]
        stale = self._stale_keys()
        if any(fact.key in stale for fact in facts):
            self.flush()
        self.gather(facts)

    def take_finished(self) -> list[TaskResult]:
        """Results the queue has decided since the last call, in task order."""
        finished, self._finished = self._finished, []
        return finished

    def gather(self, facts: Iterable[Fact]) -> None:
        """Read every fact not yet known: one remote command per privilege level (two at most).

        Probes are batched by privilege so that an unprivileged probe (e.g. of a file the connecting
        user controls) never runs as root because a privileged one shares its round trip.
        """
        wanted: dict[Hashable, Fact] = {}
        for fact in facts:
            if fact.key not in self._facts and not isinstance(fact, ControllerFact):
                wanted.setdefault(fact.key, fact)
        for privileged in (False, True):
            level = [fact for fact in wanted.values() if fact.privileged is privileged]
            if level:
                self._gather_batch(level, privileged=privileged)

    def _gather_batch(self, facts: Sequence[Fact], *, privileged: bool) -> None:
        batch = ProbeBatch([f.argv() for f in facts])
        result = self.session.run_line(batch.command(), privileged=privileged)
        if result.rc != 0:
            raise command_error("reading host state", result)
        for fact, output in zip(facts, batch.parse(result.stdout), strict=True):
            self._facts[fact.key] = fact.parse(output)
            self._read_after[fact.key] = len(self.changed_tasks)

    def fact(self, fact: Fact) -> Any:
        """A fact's value (read now if the phase did not gather it, or if a queued command changes it)."""
        if isinstance(fact, ControllerFact):
            return fact.read()
        if fact.key in self._stale_keys():
            self.flush()
        if fact.key not in self._facts:
            self.gather([fact])
        return self._facts[fact.key]

    def forget(self, fact: Fact) -> None:
        """Drop a cached fact after a change made it stale."""
        self._facts.pop(fact.key, None)

    def note(self, message: str) -> None:
        """Information to show with the task's result (versions found, what was proven)."""
        self.notes.append(message)

    def export(self, key: str, value: Any) -> None:
        """Hand data to later phases."""
        self.state.report(self.host.name).exports[key] = value

    def secret(self, key: str) -> str | None:
        return self._engine.secret(self.host, key)

    def storage_run(self, argv: Sequence[str], *, timeout: float | None = None) -> CommandResult:
        """Run argv on this client as the connecting user when it connects to storage itself.

        It holds one of the run's slots for storage (`storage_connections`), so a fleet never floods
        sshd's MaxStartups; a connection storage shed before authentication is retried (counted in
        the recap), an authentication or host-key failure is not.
        """
        settings = self.host.settings
        report = self.state.report(self.host.name)

        def count_retry() -> None:
            report.retries += 1

        return self._engine.admission.run(
            self.session, argv, address=settings.storage_address, port=settings.storage_port,
            limit=settings.storage_connections, timeout=timeout, on_retry=count_retry)

    def storage_step(self, argv: Sequence[str], what: str, *, timeout: float | None = None) -> CommandResult:
        """`storage_run`, where a failure raises an error naming `what`."""
        result = self.storage_run(argv, timeout=timeout)
        if not result.ok:
            raise command_error(what, result)
        return result


class Engine:
    """Runs plays over an inventory and reports each task as it finishes."""

    def __init__(self, inventory: Inventory, options: RunOptions, reporter: Reporter,
                 secrets: SecretLookup | None = None,
                 session_factory: Callable[[Host], Session] | None = None) -> None:
        self.inventory = inventory
        self.options = options
        self.reporter = reporter
        self.keys = HostKeyOptions(inventory.known_hosts_path, accept_new=options.accept_new_hostkeys,
                                   check=options.check)
        self._secrets = secrets
        self._session_factory = session_factory or self._open_session
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._host_locks = HostLocks()
        #: Sessions are opened by taking the hosts' locks, which sweeps stale staging directories too.
        self._locking = False
        self.admission = StorageAdmission()

    def secret(self, host: Host, key: str) -> str | None:
        return self._secrets(host, key) if self._secrets else None

    def _open_session(self, host: Host) -> Session:
        """Connect, then clear staging directories that runs which died on this host left behind (taking
        the host's lock does that too)."""
        become_password = self.secret(host, "become_password") if host.become else None
        session = open_session(host, self.keys, timeout=self.options.timeout, become_password=become_password)
        if self._locking:
            return session
        verb = "would remove" if self.options.check else "removed"
        for directory in remove_stale_staging(session, check=self.options.check):
            self.reporter.notice(f"{host.name}: {verb} staging directory {directory} left by an interrupted run")
        return session

    def session(self, host: Host) -> Session:
        """The host's session, opened once per play; the reason when it could not be locked (or reached)."""
        failed = self._host_locks.errors.get(host.name)
        if failed is not None:
            raise failed
        with self._lock:
            existing = self._sessions.get(host.name)
        if existing is not None:
            return existing
        session = self._session_factory(host)
        with self._lock:
            self._sessions[host.name] = session
        return session

    def run(self, play: Play) -> PlayState:
        state = PlayState()
        try:
            if play.locks_hosts and not self.options.check:
                self._lock_hosts(play.hosts())
            for phase in play.phases:
                self._run_phase(phase, state)
        finally:
            self._close_sessions()
        for line in self.keys.newly_pinned:
            self.reporter.notice(line)
        return state

    def _lock_hosts(self, hosts: Sequence[Host]) -> None:
        """Connect to every host of the play and take its lock (see provision.host_lock)."""
        self._locking = True
        self._host_locks = lock_hosts(hosts, self.session, wait=self.options.lock_wait, forks=self.options.forks,
                                      notice=self.reporter.notice)

    def _close_sessions(self) -> None:
        self._host_locks.release()
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            try:
                session.close()
            except Exception:  # closing is best effort; results are already known
                continue

    def _run_phase(self, phase: Phase, state: PlayState) -> None:
        hosts = [h for h in phase.hosts(state) if not state.broken(h.name)]
        for host in hosts:
            state.report(host.name)
        if not hosts:
            return
        pool = ThreadPoolExecutor(max_workers=max(1, self.options.forks), thread_name_prefix="provision")
        try:
            for future in [pool.submit(self._run_host, phase, host, state) for host in hosts]:
                future.result()
        except KeyboardInterrupt:
            # Stop queued hosts; closing the sessions ends the commands running on the others.
            pool.shutdown(wait=False, cancel_futures=True)
            self._close_sessions()
            raise
        pool.shutdown()

    def _record(self, host: Host, state: PlayState, result: TaskResult) -> None:
        report = state.report(host.name)
        report.tasks.append(result)
        if result.status is Status.FAILED:
            report.failed = True
        if result.status is Status.UNREACHABLE:
            report.unreachable = True
        self.reporter.task_done(host.name, result)

    def _run_host(self, phase: Phase, host: Host, state: PlayState) -> None:
        broken = [name for name in phase.needs(host) if state.broken(name)]
        if broken:
            self._record(host, state, TaskResult(phase.name, Status.SKIPPED,
                                                 f"skipped: {', '.join(broken)} failed earlier"))
            return
        ctx = HostContext(host, self, state)
        try:
            tasks = list(phase.tasks(host, state))
            ctx.gather(f for task in tasks for f in task.facts())
        except UnreachableError as error:
            self._record(host, state, TaskResult(phase.name, Status.UNREACHABLE, str(error)))
            return
        except ProvisionError as error:
            self._record(host, state, TaskResult(phase.name, Status.FAILED, str(error)))
            return
        except Exception as error:  # a host that answers nonsense must not take the others down
            self._record(host, state, TaskResult(phase.name, Status.FAILED,
                                                 f"internal error: {type(error).__name__}: {error}"))
            return
        for index, task in enumerate(tasks):
            result = self._run_task(task, ctx)
            if result is None:  # queued: decided when the queue runs
                continue
            stopped = result.status in (Status.FAILED, Status.UNREACHABLE)
            if ctx.queued and not stopped:
                ctx.queue(result)
                continue
            stopped = self._flush(host, state, ctx) or stopped
            self._record(host, state, result)
            if stopped:
                for rest in tasks[index + 1 :]:
                    self._record(host, state, TaskResult(rest.name, Status.SKIPPED,
                                                         f"skipped after {task.name} {result.status}"))
                return
        self._flush(host, state, ctx)

    def _flush(self, host: Host, state: PlayState, ctx: HostContext) -> bool:
        """Run what the host has queued and record the results it decided; True when one failed."""
        with contextlib.suppress(QueuedChangeFailed):  # its results say which task failed
            ctx.flush()
        finished = ctx.take_finished()
        for result in finished:
            self._record(host, state, result)
        return any(result.status in (Status.FAILED, Status.UNREACHABLE) for result in finished)

    def _run_task(self, task: Task, ctx: HostContext) -> TaskResult | None:
        """The task's result, or None when its changes are queued (see HostContext.flush)."""
        ctx.notes = []
        self.reporter.task_started(ctx.host.name, task.name)
        try:
            ctx.refresh(task.facts(), task.fresh_facts())
            changes = changes_of(task.plan(ctx))
            if ctx.check:
                if isinstance(task, Proof):
                    ctx.note(NOT_PROVEN)
                return _task_result(task, ctx, changes)
            if changes:
                ctx.changed_tasks.append(task.name)
            commands = _queueable(changes)
            if commands and not isinstance(task, Proof):
                ctx.queue(_task_result(task, ctx, changes), commands)
                return None
            for change in changes:
                ctx.apply_now(change)
            if isinstance(task, Proof):
                shown = task.prove(ctx)
                if isinstance(shown, Change):
                    if not changes:
                        ctx.changed_tasks.append(task.name)
                    ctx.apply_now(shown)
                    changes.append(shown)
                else:
                    ctx.note(shown)
            return _task_result(task, ctx, changes)
        except SkipHost as skip:
            return TaskResult(task.name, Status.SKIPPED, str(skip))
        except UnreachableError as error:
            return TaskResult(task.name, Status.UNREACHABLE, str(error))
        except ProvisionError as error:
            return TaskResult(task.name, Status.FAILED, str(error))
        except Exception as error:  # a bug in one task must not take other hosts down
            return TaskResult(task.name, Status.FAILED, f"internal error: {type(error).__name__}: {error}")


def _queueable(changes: Sequence[Change]) -> list[Command]:
    """The changes' commands when they are all commands of one privilege level (queued together), else []."""
    if any(change.apply is not None or not change.commands for change in changes):
        return []
    commands = [command for change in changes for command in change.commands]
    return commands if len({command.privileged for command in commands}) == 1 else []


def _task_result(task: Task, ctx: HostContext, changes: Sequence[Change]) -> TaskResult:
    """One result for a task's changes: summaries joined (`would ...` under --check), notes, diffs joined."""
    if not changes:
        return TaskResult(task.name, Status.OK, "; ".join(ctx.notes))
    summary = joined_summary(changes)
    diff = "".join(change.diff for change in changes) if ctx.diff else ""
    return TaskResult(task.name, Status.CHANGED, "; ".join([f"would {summary}" if ctx.check else summary,
                                                             *ctx.notes]), diff)


def exit_status(state: PlayState) -> int:
    """The exit status bit mask (README, "Exit status"): 2 a host failed, 4 a host unreachable or refused."""
    status = EXIT_OK
    for report in state.reports.values():
        if report.failed:
            status |= EXIT_FAILED
        if report.unreachable:
            status |= EXIT_UNREACHABLE
    return status
