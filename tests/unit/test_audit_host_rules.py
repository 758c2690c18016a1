"""The host rules of `provision audit hosts` (pure: facts in, findings out), and its one round trip per host."""

from __future__ import annotations

import subprocess
from pathlib import Path

from provision.audit.hosts import (
    directory_finding,
    drop_in_findings,
    group_writable_finding,
    key_line_findings,
    site_cache_finding,
)
from provision.connection import open_session
from provision.engine import Engine, RunOptions
from provision.facts import FileState
from provision.inventory import Host, load_inventory
from provision.plays.audit import audit_hosts_play, host_findings
from provision.report import QuietReporter
from provision.tasks.authorized_keys import GIT, SFTP, key_line
from tests.unit.helpers import write_inventory

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8UoQD7CQXPa6WZQKq7xJn03aThFlp/MY/unOaKFawL"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMd1RpfT6mkg3Zxcv3SXptQ0rkuTaNhk7cH8WDqv3Ddh"
KEY_C = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB5Jq2hXoWcQmA7KdzqUuGbV0tXkX0gQJm8N6bY3pTfL"


def clients(tmp_path: Path) -> dict[str, Host]:
    inventory = write_inventory(tmp_path, {"hosts": {"ws1": {}, "ws2": {"access": "read"}}})
    return {host.name: host for host in load_inventory(inventory).clients}


def rules(findings: list) -> list[tuple[str, int | None]]:
    return [(f.rule, f.line) for f in findings]


def test_onboards_own_lines_pass_and_every_other_kind_of_line_is_named(tmp_path: Path) -> None:
    known = clients(tmp_path)
    content = "\n".join([
        "# comment", "",
        key_line(SFTP, KEY_A, "provision:site:ws1"),
        key_line(SFTP, KEY_B, "provision:site:ws2", read_only=True),
        key_line(SFTP, KEY_C, "provision:other:ws1"),  # another inventory's: theirs to judge
        f'command="internal-sftp" {KEY_A} provision:site:ws1',  # no restrict
        key_line(SFTP, KEY_A, "provision:site:ws2"),  # ws2 is read-only: wants -R; and a duplicate key
        f"{KEY_B} someone@laptop",
        key_line(SFTP, KEY_A, "provision:site:gone"),
    ]) + "\n"
    findings = key_line_findings("nas", "/home/dvc/.ssh/authorized_keys", content.encode(), SFTP, known, "site")
    assert rules(findings) == [("key-line-options", 6), ("key-line-options", 7), ("key-line-unmarked", 8),
                               ("key-line-stale", 9)]
    assert 'restrict,command="internal-sftp -R"' in findings[1].message
    assert findings[3].fix.endswith("`provision offboard gone`")
    assert all(f.host == "nas" for f in findings)


def test_a_second_line_with_the_same_key_is_a_duplicate(tmp_path: Path) -> None:
    line = key_line(GIT, KEY_A, "provision:site:ws1")
    findings = key_line_findings("nas", "keys", f"{line}\n{line}\n".encode(), GIT, clients(tmp_path), "site")
    assert rules(findings) == [("key-line-duplicate", 2)]


def test_directories_and_repositories() -> None:
    right = FileState(True, "dvc", "dvc", 0o2775, "directory")
    assert directory_finding("nas", "/d", right, "dvc", "dvc", 0o2775) is None
    lost_setgid = directory_finding("nas", "/d", FileState(True, "dvc", "dvc", 0o775, "directory"), "dvc", "dvc",
                                    0o2775)
    assert lost_setgid is not None and "0775 (want dvc:dvc 2775)" in lost_setgid.message
    closed = FileState(True, "git", "dvc", 0o700, "directory")
    assert group_writable_finding("nas", "/r", closed, None, ["/r/data.dvc"]) is None
    open_repo = FileState(True, "git", "dvc", 0o2750, "directory")
    finding = group_writable_finding("nas", "/r", open_repo, 0o2750, ["/r/data.dvc", "/r/.gitignore"])
    assert finding is not None and finding.message == ("2 paths inside writable by group or others, "
                                                       "e.g. /r/data.dvc")


def test_drop_ins_must_be_exactly_bootstraps() -> None:
    wanted = {"/etc/ssh/sshd_config.d/10-provision-dvc-password.conf": "Match User dvc\n"}
    assert drop_in_findings("nas", wanted, dict(wanted), sshd_valid=True) == []
    old = "/etc/ssh/sshd_config.d/20-provision-old.conf"
    findings = drop_in_findings("nas", wanted, {old: None}, False)
    assert [(f.rule, f.path, f.message) for f in findings] == [
        ("sshd-drop-in", old, "a provision drop-in bootstrap would not write"),
        ("sshd-drop-in", "/etc/ssh/sshd_config.d/10-provision-dvc-password.conf", "missing"),
        ("sshd-config", "/etc/ssh/sshd_config", "`sshd -t` refuses the configuration"),
    ]


def test_site_cache_must_be_the_users_alone() -> None:
    assert site_cache_finding("ws1", "c", "/home/a/.cache/dvc", FileState(True, "a", "a", 0o700, "directory"),
                              "a") is None
    shared = site_cache_finding("ws1", "c", "/var/tmp/dvc", FileState(True, "root", "root", 0o777, "directory"), "a")
    assert shared is not None and shared.fix == "`provision onboard ws1`"


def test_one_round_trip_per_host(tmp_path: Path) -> None:
    """Every fact of a host is read in one command; nothing else runs there."""
    key = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    local = {"ansible_connection": "local", "ansible_host": "127.0.0.9"}
    inventory_path = write_inventory(tmp_path, {"hosts": {"ws1": dict(local)}}, storage=dict(local),
                                     nfs_root=str(tmp_path / "nfs"), workdir=str(tmp_path / "work"))
    (tmp_path / "site.known_hosts").write_text("127.0.0.9 " + " ".join(Path(f"{key}.pub").read_text().split()[:2]))
    inventory = load_inventory(inventory_path)
    calls: dict[str, list[str]] = {}

    class Counting:
        def __init__(self, host: Host) -> None:
            self.inner = open_session(host, engine.keys, timeout=30)
            self.name = host.name

        def run_line(self, command: str, **kwargs: object) -> object:
            calls.setdefault(self.name, []).append(command)
            return self.inner.run_line(command, **kwargs)  # type: ignore[arg-type]

        def close(self) -> None:
            self.inner.close()

    engine = Engine(inventory, RunOptions(check=True), QuietReporter(), session_factory=Counting)  # type: ignore[arg-type]
    state = engine.run(audit_hosts_play(inventory, list(inventory.hosts.values())))
    assert not any(report.failed for report in state.reports.values()), state.reports
    assert {host: len(commands) for host, commands in calls.items()} == {"nas": 1, "ws1": 1}
    found = {(f.host, f.rule) for f in host_findings(state)}
    assert ("ws1", "config-local") in found and ("nas", "directory-mode") in found
