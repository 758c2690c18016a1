"""Per-host locks: the lock command run for real on this machine (a local session, HOME in a temp dir), and
the order in which a run takes several hosts' locks (with a scripted lock)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from provision import host_lock
from provision.connection import LocalSession
from provision.errors import ProvisionError
from provision.host_lock import HostBusy, lock_host, lock_hosts


def take(wait: float = 0, run: str = "pid 1 on laptop since noon",
         on_wait: Callable[[str], None] = lambda holder: None) -> Callable[[], None]:
    return lock_host(LocalSession(timeout=10), wait=wait, run=run, on_wait=on_wait, on_removed=lambda path: None)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    monkeypatch.setenv("HOME", str(home))
    return home


def test_a_second_run_finds_the_host_busy_and_names_the_first(home: Path) -> None:
    release = take(run="pid 4242 on laptop-a since 07:00")
    assert (home / ".provision").stat().st_mode & 0o777 == 0o700
    assert (home / ".provision" / "lock").stat().st_mode & 0o777 == 0o600
    with pytest.raises(HostBusy, match=r"another provision run \(pid 4242 on laptop-a since 07:00\)") as busy:
        take(run="pid 7 on laptop-b since 07:01")
    assert busy.value.holder == "pid 4242 on laptop-a since 07:00"
    release()
    take(run="pid 7 on laptop-b since 07:01")()


def test_a_waiting_run_says_who_it_waits_for_and_gets_the_lock_once_released(home: Path) -> None:
    release = take(run="pid 1 on a since t")
    waiting = threading.Event()
    seen: list[str] = []
    outcome: list[object] = []

    def second() -> None:
        def on_wait(holder: str) -> None:
            seen.append(holder)
            waiting.set()

        try:
            outcome.append(take(wait=60, run="pid 2 on b since t", on_wait=on_wait))
        except ProvisionError as error:
            outcome.append(error)

    thread = threading.Thread(target=second)
    thread.start()
    assert waiting.wait(30)
    release()
    thread.join(60)
    assert seen == ["pid 1 on a since t"]
    assert callable(outcome[0]), outcome
    outcome[0]()  # type: ignore[operator]
    assert (home / ".provision" / "holder").read_text().endswith(" pid 2 on b since t\n")


def test_a_holder_line_cannot_forge_output(home: Path) -> None:
    release = take(run="pid 1 on a\x1b[2J\u202e since t")
    with pytest.raises(HostBusy) as busy:
        take()
    release()
    assert busy.value.holder == "pid 1 on a\\x1b[2J\\u202e since t"


@pytest.mark.parametrize("damage", ["link", "lock link", "lock fifo", "lock of another account", "home writable",
                                    "directory writable", "foreign owner"])
def test_a_lock_directory_another_account_could_change_is_refused(home: Path, tmp_path: Path, damage: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    directory = home / ".provision"
    if damage == "link":
        directory.symlink_to(elsewhere)
    else:
        directory.mkdir(mode=0o700)
    if damage == "lock link":
        (directory / "lock").symlink_to(elsewhere / "target")
    if damage == "lock fifo":
        os.mkfifo(directory / "lock")
    if damage == "lock of another account":
        (directory / "lock").touch(mode=0o600)
        os.chown(directory / "lock", 65534, 65534)
    if damage == "home writable":
        home.chmod(0o777)
    if damage == "directory writable":
        directory.chmod(0o770)
    if damage == "foreign owner":
        os.chown(directory, 65534, 65534)
    with pytest.raises(ProvisionError, match=r"refusing to lock in .*/home/\.provision: it must be a directory"):
        take()
    assert list(elsewhere.iterdir()) == []


def test_a_lock_left_readable_by_others_is_made_private_before_it_is_taken(home: Path) -> None:
    directory = home / ".provision"
    directory.mkdir(mode=0o755)
    (directory / "lock").touch(mode=0o644)
    take()()
    assert directory.stat().st_mode & 0o777 == 0o700
    assert (directory / "lock").stat().st_mode & 0o777 == 0o600


def test_a_holder_file_that_is_a_link_or_a_fifo_neither_redirects_nor_hangs_a_run(home: Path, tmp_path: Path) -> None:
    release = take(run="pid 1 on a since t")
    holder = home / ".provision" / "holder"
    holder.unlink()
    os.mkfifo(holder)
    with pytest.raises(HostBusy) as busy:
        take()
    assert busy.value.holder == "unknown run"
    release()
    target = tmp_path / "target"
    target.write_text("kept\n")
    holder.unlink()
    holder.symlink_to(target)
    take(run="pid 2 on b since t")()
    assert target.read_text() == "kept\n"
    assert not holder.is_symlink() and holder.read_text().endswith(" pid 2 on b since t\n")


def test_hosts_of_one_run_that_share_a_home_share_its_lock_and_do_not_wait_for_each_other(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_lock, "lock_order", lambda host: host.name)
    hosts = [SimpleNamespace(name=name) for name in ("ws1", "ws2")]  # one home on NFS, as both see it
    locks = lock_hosts(hosts, lambda host: LocalSession(timeout=10), wait=1, forks=2,  # type: ignore[arg-type]
                       notice=lambda line: None)
    try:
        assert sorted(locks.held) == ["ws1", "ws2"] and not locks.errors
        with pytest.raises(HostBusy):
            take()
    finally:
        locks.release()
    take()()


class ScriptedLocks:
    """Locks held by another run (`busy`) until the run under test waits for one; records the events."""

    def __init__(self, busy: set[str], *, gives_up: bool = False) -> None:
        self.busy = busy
        self.gives_up = gives_up
        self.held: set[str] = set()
        self.events: list[str] = []

    def lock_host(self, session: SimpleNamespace, *, wait: float, run: str, on_wait: Callable[[str], None],
                  on_removed: Callable[[str], None], run_id: str) -> Callable[[], None]:
        name = session.name
        if name in self.busy:
            if not wait:
                raise HostBusy(name, "pid 9 on other since t", 0)
            on_wait("pid 9 on other since t")
            self.events.append(f"wait {name} holding {sorted(self.held)}")
            if self.gives_up:
                raise HostBusy(name, "pid 9 on other since t", wait)
            self.busy.discard(name)
        self.held.add(name)
        self.events.append(f"lock {name}")

        def release() -> None:
            self.held.discard(name)
            self.events.append(f"release {name}")

        return release


def run_lock_hosts(monkeypatch: pytest.MonkeyPatch, scripted: ScriptedLocks, wait: float = 60
                   ) -> tuple[host_lock.HostLocks, list[str]]:
    monkeypatch.setattr(host_lock, "lock_host", scripted.lock_host)
    monkeypatch.setattr(host_lock, "lock_order", lambda host: host.name)
    notices: list[str] = []
    hosts = [SimpleNamespace(name=name) for name in ("c", "a", "b")]
    locks = lock_hosts(hosts, lambda host: host, wait=wait, forks=1, notice=notices.append)  # type: ignore[arg-type]
    return locks, notices


def test_a_run_waits_for_a_busy_host_holding_no_later_one(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted = ScriptedLocks({"b"})
    locks, notices = run_lock_hosts(monkeypatch, scripted)
    assert "wait b holding ['a']" in scripted.events
    assert scripted.events.index("release c") < scripted.events.index("wait b holding ['a']")
    assert sorted(locks.held) == ["a", "b", "c"] and not locks.errors
    assert notices == ["b: waiting for another provision run (pid 9 on other since t) to finish, up to 60s"]
    locks.release()
    assert scripted.held == set()


def test_a_host_still_busy_after_the_wait_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted = ScriptedLocks({"b"}, gives_up=True)
    locks, _ = run_lock_hosts(monkeypatch, scripted, wait=0)
    assert sorted(locks.held) == ["a", "c"]
    assert list(locks.errors) == ["b"] and "still works on this host" in str(locks.errors["b"])
