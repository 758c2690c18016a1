"""Attacks from the review of the per-host locks and of the password login as a session, on lab hosts:

- another local account holds the connecting admin's lock when `~/.provision` was left open to it (a
  directory and lock file the admin had made with a loose umask): the run now makes both private first;
- a process of the connecting user kills the command that holds the run's lock while the SSH connection
  stays up: the run stops before its next command instead of going on unlocked;
- a process of the connecting user makes `~/.provision/holder` a FIFO: a waiting run is not hung by it;
- two clients share the connecting user's home over NFS: one run locks both without waiting for itself
  (it used to wait --lock-wait seconds for its own lock, then fail the second client);
- a Fabric config file of the controller's user (`~/.fabric.yml`) asks for a PTY and more key files:
  sessions ignore it (under a PTY, sudo's password would be echoed into the command's output).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from provision.connection import HostKeyOptions, Session, UnreachableError, open_session
from provision.host_lock import HostBusy, lock_host, lock_hosts
from provision.inventory import load_inventory
from provision.lab import Lab
from tests.integration.helpers import admin_inventory, own_lab, require_lab, sh

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with own_lab(tmp_path_factory, "lock-attacks", ["ws1"]) as (lab, _):
        yield lab


def admin_session(lab: Lab, tmp_path: Path) -> Session:
    """A session to ws1 as the unprivileged admin, with sudo through its password."""
    inventory = load_inventory(admin_inventory(lab, tmp_path, {"ws1"}))
    return open_session(inventory.hosts["ws1"], HostKeyOptions(inventory.known_hosts_path), timeout=30,
                        become_password=lab.admin_password_file.read_text().strip())


def root_session(lab: Lab) -> Session:
    inventory = load_inventory(lab.inventory_path)
    return open_session(inventory.hosts["ws1"], HostKeyOptions(inventory.known_hosts_path), timeout=30)


def take(session: Session, run: str = "pid 1 on laptop since noon") -> object:
    return lock_host(session, wait=0, run=run, on_wait=lambda holder: None, on_removed=lambda path: None)


def test_another_account_cannot_hold_a_lock_the_admin_left_open(lab: Lab, tmp_path: Path) -> None:
    admin = lab.admin_user
    home = f"/home/{admin}"
    assert sh(lab, "ws1", ["stat", "-c", "%a", home]).strip() in {"700", "750", "755"}
    sh(lab, "ws1", ["chmod", "0755", home])
    sh(lab, "ws1", ["rm", "-rf", f"{home}/.provision"])
    sh(lab, "ws1", ["su", "-s", "/bin/sh", "-c", 'umask 022; mkdir "$1/.provision" && : > "$1/.provision/lock"',
                    admin, "sh", home])
    session = admin_session(lab, tmp_path)
    try:
        take(session)()
    finally:
        session.close()
    held = lab.exec("ws1", ["su", "-s", "/bin/sh", "-c", 'exec flock -n "$1" true', "nobody", "sh",
                            f"{home}/.provision/lock"])
    assert held.returncode != 0, "another account could still take the admin's provision lock"
    assert sh(lab, "ws1", ["stat", "-c", "%a", f"{home}/.provision", f"{home}/.provision/lock"]) == "700\n600\n"


# Kills the process that holds $1 open on fd 9 (the host lock's holder), found by device and inode so that
# other labs' holders of a lock of the same name are left alone.
KILL_LOCK_HOLDER = r"""
lock=$(stat -c %d:%i -- "$1")
for fd in /proc/[0-9]*/fd/9; do
  [ "$(stat -L -c %d:%i -- "$fd" 2>/dev/null)" = "$lock" ] || continue
  pid=${fd#/proc/}; pid=${pid%%/*}
  kill "$pid" && echo "$pid"
done
"""


def test_a_run_stops_when_the_command_holding_its_lock_is_killed(lab: Lab) -> None:
    session = root_session(lab)
    try:
        release = take(session)
        assert session.run(["true"]).ok
        killed = sh(lab, "ws1", ["sh", "-c", KILL_LOCK_HOLDER, "sh", "/root/.provision/lock"])
        assert killed.split(), "no process held the run's lock"
        deadline = time.monotonic() + 30
        with pytest.raises(UnreachableError, match=r"holding this run's lock on the host .* ended before the run"):
            while time.monotonic() < deadline:
                session.run(["true"])
                time.sleep(0.2)
        release()
        again = root_session(lab)
        take(again)()
        again.close()
    finally:
        session.close()


def test_a_fifo_as_holder_does_not_hang_a_waiting_run(lab: Lab) -> None:
    first = root_session(lab)
    second = root_session(lab)
    try:
        release = take(first, run="pid 1 on a since t")
        sh(lab, "ws1", ["sh", "-c", 'rm -f "$1" && mkfifo "$1"', "sh", "/root/.provision/holder"])
        with pytest.raises(HostBusy) as busy:
            take(second, run="pid 2 on b since t")
        assert busy.value.holder == "unknown run"
        release()
        take(second, run="pid 3 on c since t")()
        assert sh(lab, "ws1", ["cat", "/root/.provision/holder"]).endswith(" pid 3 on c since t\n")
    finally:
        first.close()
        second.close()


def test_a_users_fabric_config_changes_nothing_in_a_session(lab: Lab, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    controller_home = tmp_path / "controller-home"
    controller_home.mkdir()
    (controller_home / ".fabric.yml").write_text(
        "run:\n  pty: true\n  echo: true\nconnect_kwargs:\n  key_filename: [/nonexistent/key]\n"
        "authentication:\n  strategy_class: not.a.class\n")
    monkeypatch.setenv("HOME", str(controller_home))
    session = admin_session(lab, tmp_path)
    password = lab.admin_password_file.read_text().strip()
    try:
        assert not session.run(["tty", "-s"]).ok, "the session ran its command under a PTY"
        whoami = session.run(["id", "-u"], privileged=True)
        assert whoami.stdout == "0\n", whoami
        failed = session.run(["sh", "-c", "cat; exit 3"], privileged=True)
        assert password not in failed.stdout + failed.stderr
    finally:
        session.close()


SHARED_USER, SHARED_HOME = "shared", "/mnt/nfs/home/shared"


def test_clients_sharing_a_home_over_nfs_are_locked_by_one_run_without_waiting_for_itself(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    require_lab()
    lab = Lab(tmp_path_factory.mktemp("shared-home-lab"))
    try:
        lab.up(["storage", "ws1", "ws2"], shared_nfs=True)  # the clients' /mnt/nfs is storage's export
        sh(lab, "storage", ["mkdir", "-p", "-m", "0755", "/mnt/nfs/home"])
        for client in ("ws1", "ws2"):
            sh(lab, client, ["/usr/sbin/useradd", "--uid", "2345", "--user-group", "--no-create-home",
                             "--home-dir", SHARED_HOME, "--shell", "/bin/sh", "--password", "*", SHARED_USER])
        sh(lab, "ws1", ["sh", "-c", 'mkdir -p -m 0700 "$1/.ssh" && cat > "$1/.ssh/authorized_keys" '
                        '&& chown -R 2345:2345 "$1" && chmod 0755 "$1"', "sh", SHARED_HOME],
           input=Path(f"{lab.admin_key}.pub").read_text())
        data = yaml.safe_load(lab.inventory_path.read_text())
        for group in data["all"]["children"].values():
            for host_vars in group["hosts"].values():
                host_vars.update({"ansible_user": SHARED_USER, "ansible_ssh_private_key_file": str(lab.admin_key)})
        inventory_path = tmp_path / "shared.yml"
        inventory_path.write_text(yaml.safe_dump(data))
        (tmp_path / "shared.known_hosts").write_bytes(lab.known_hosts_path.read_bytes())
        inventory = load_inventory(inventory_path)
        keys = HostKeyOptions(inventory.known_hosts_path)
        sessions: list[Session] = []

        def connect(host: object) -> Session:
            sessions.append(open_session(host, keys, timeout=30))  # type: ignore[arg-type]
            return sessions[-1]

        clients = [inventory.hosts["ws1"], inventory.hosts["ws2"]]
        locks = lock_hosts(clients, connect, wait=5, forks=2, notice=lambda line: None)
        try:
            assert sorted(locks.held) == ["ws1", "ws2"], locks.errors
            with pytest.raises(HostBusy):  # another run still finds both busy
                take(connect(clients[1]))
        finally:
            locks.release()
            for session in sessions:
                session.close()
    finally:
        if lab.exists:
            lab.down()
