"""SSH target resolution from ~/.ssh/config and inventory vars, and the per-target connection cap."""

from __future__ import annotations

import hashlib
import subprocess
import threading
from pathlib import Path

import paramiko
import pytest

from provision.connection import SEAL_BYTES, CommandResult, LocalSession, _lookup, _parse_jump, _TargetSlots


@pytest.mark.parametrize(("spec", "expected"), [
    ("bastion", (None, "bastion", None)),
    ("ops@bastion:2222", ("ops", "bastion", 2222)),
    ("[::1]:2200", (None, "::1", 2200)),
    ("ops@[fe80::1]", ("ops", "fe80::1", None)),
])
def test_parse_jump(spec: str, expected: tuple[str | None, str, int | None]) -> None:
    assert _parse_jump(spec) == expected


def config(text: str) -> paramiko.SSHConfig:
    return paramiko.SSHConfig.from_text(text)


def test_ssh_config_applies_and_inventory_vars_win(tmp_path: Path) -> None:
    cfg = config("Host nas\n  HostName 10.1.2.3\n  Port 2222\n  User backup\n  IdentityFile /keys/nas\n"
                 "  ProxyJump ops@bastion:2201,inner\nHost inner\n  HostName 10.9.9.9\n")
    target = _lookup(cfg, "nas", None, None, None)
    assert (target.hostname, target.port, target.user, target.key_files) == ("10.1.2.3", 2222, "backup", ("/keys/nas",))
    jump = target.jumps[0]
    assert (jump.hostname, jump.port, jump.user) == ("bastion", 2201, "ops")
    assert target.jumps[1].hostname == "10.9.9.9"
    explicit = _lookup(cfg, "nas", "root", 22, "/other/key")
    assert (explicit.user, explicit.port, explicit.key_files) == ("root", 22, ("/other/key",))


def test_proxyjump_loop_is_an_error() -> None:
    from provision.errors import ProvisionError

    with pytest.raises(ProvisionError, match="ProxyJump chain too long"):
        _lookup(config("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n"), "a", None, None, None)


def test_target_slots_cap_and_shed() -> None:
    slots = _TargetSlots(4)
    peak, active, lock = [0], [0], threading.Lock()
    barrier = threading.Barrier(4, timeout=5)

    def attempt() -> None:
        with slots:
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            barrier.wait()
            with lock:
                active[0] -= 1

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 4
    slots.shed()
    slots.shed()
    slots.shed()
    assert slots.limit == 1


def test_local_staging_directory_is_locked_while_its_session_lives() -> None:
    """The lock tells the next run's sweep that this directory is in use; closing removes it."""
    session = LocalSession(timeout=10)
    staged = Path(session.stage(b"user:password\n"))
    try:
        content = staged.read_bytes()
        assert content[:-SEAL_BYTES] == b"user:password\n" and len(content) == len(b"user:password\n") + SEAL_BYTES
        assert staged.name == hashlib.sha256(content).hexdigest()
        assert oct(staged.stat().st_mode & 0o777) == "0o600"
        taken = subprocess.run(["flock", "-n", str(staged.parent), "true"], check=False)
        assert taken.returncode == 1, "a live session's staging directory must be locked"
    finally:
        session.close()
    assert not staged.parent.exists()


GIT_ADVICE = ("fatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\n"
              "and the repository exists.\n")


@pytest.mark.parametrize("openssh", [
    "ssh: connect to host 127.0.0.1 port 2201: Connection refused",
    "Connection to 127.0.0.1 closed by remote host.",
    "Read from remote host 127.0.0.1: Connection reset by peer",
    "client_loop: send disconnect: Broken pipe",
    "Timeout, server 127.0.0.1 not responding.",
])
def test_openssh_s_reason_is_shown_above_git_s_advice(openssh: str) -> None:
    """Storage gone before or during a clone: OpenSSH's line (as its client prints it, CR included), not only
    git's advice, names the cause."""
    result = CommandResult(("git", "clone"), 128, "", f"{openssh}\r\n{GIT_ADVICE}")
    assert result.detail == f"{openssh} / and the repository exists."
