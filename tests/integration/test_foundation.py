"""The foundation on real OpenSSH hosts: ping, host keys, check mode, become, JSON, exit statuses."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
import yaml

from provision.engine import Engine, Phase, Play, RunOptions, Status
from provision.inventory import load_inventory
from provision.report import QuietReporter
from provision.secrets.inventory import SecretLookupForInventory
from provision.tasks.files import EnsureFile
from tests.integration.clirunner import provision, provision_json
from tests.integration.helpers import admin_inventory, host_snapshot

pytestmark = pytest.mark.integration

def copy_inventory(lab, tmp_path: Path, *, pins: bool = True) -> Path:
    target = tmp_path / "site.yml"
    shutil.copy(lab.inventory_path, target)
    if pins:
        shutil.copy(lab.known_hosts_path, tmp_path / "site.known_hosts")
    return target


def test_ping_reports_every_host(lab, tmp_path: Path) -> None:
    status, document = provision_json("ping", "-i", str(lab.inventory_path), home=tmp_path)
    assert status == 0, document
    assert document["command"] == "ping"
    assert set(document["hosts"]) == {"storage", "ws1", "ws2"}
    for host, result in document["hosts"].items():
        assert result["status"] == "ok"
        message = result["tasks"][0]["msg"]
        assert f"hostname {host}" in message
        assert "git 2." in message
        assert "dvc 3." in message
        assert document["stats"][host] == {"ok": 1, "changed": 0, "failed": 0, "skipped": 0, "unreachable": 0,
                                          "retries": 0}
    assert document["exit_status"] == 0


def test_limit_selects_hosts(lab, tmp_path: Path) -> None:
    status, document = provision_json("ping", "-i", str(lab.inventory_path), "--limit", "clients:!ws2",
                                      home=tmp_path)
    assert status == 0
    assert set(document["hosts"]) == {"ws1"}


def test_lines_and_recap_for_people(lab, tmp_path: Path) -> None:
    done = provision("ping", "-i", str(lab.inventory_path), home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ok: storage host info" in done.stdout
    assert "recap" in done.stdout
    assert "\x1b[" not in done.stdout  # no colour when not a terminal


def test_stopped_host_is_unreachable_and_others_ok(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["storage", "ws1", "ws2"])
    lab.stop("ws1")
    status, document = provision_json("ping", "-i", str(lab.inventory_path), "--timeout", "5", home=tmp_path)
    assert status == 4
    assert document["hosts"]["ws1"]["status"] == "unreachable"
    assert document["hosts"]["storage"]["status"] == "ok"
    assert document["hosts"]["ws2"]["status"] == "ok"
    assert document["stats"]["ws1"]["unreachable"] == 1
    lab.start("ws1")
    status, _ = provision_json("ping", "-i", str(lab.inventory_path), home=tmp_path)
    assert status == 0


def test_rekeyed_host_is_refused_and_pins_unchanged(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["storage", "ws1"])
    pins_before = lab.known_hosts_path.read_bytes()
    lab.rekey("ws1")
    status, document = provision_json("ping", "-i", str(lab.inventory_path), home=tmp_path)
    assert status == 4
    message = document["hosts"]["ws1"]["tasks"][0]["msg"]
    assert "CHANGED" in message and message.count("SHA256:") == 2
    assert document["hosts"]["storage"]["status"] == "ok"
    attempts = (["ping", "--accept-new-hostkeys"], ["hostkeys", "scan"], ["hostkeys", "scan", "--accept-new-hostkeys"])
    for args in attempts:
        status, document = provision_json(*args, "-i", str(lab.inventory_path), home=tmp_path)
        assert status == 4, args
        assert document["hosts"]["ws1"]["status"] == "unreachable"
    assert lab.known_hosts_path.read_bytes() == pins_before
    forgot = provision("hostkeys", "forget", "-i", str(lab.inventory_path), "ws1", home=tmp_path)
    assert forgot.returncode == 0 and "forgot" in forgot.stdout
    status, _ = provision_json("hostkeys", "scan", "-i", str(lab.inventory_path), home=tmp_path)
    assert status == 0
    status, _ = provision_json("ping", "-i", str(lab.inventory_path), home=tmp_path)
    assert status == 0


def test_unknown_host_refused_then_pinned(lab, tmp_path: Path) -> None:
    inventory = copy_inventory(lab, tmp_path, pins=False)
    pins = tmp_path / "site.known_hosts"
    status, document = provision_json("ping", "-i", str(inventory), home=tmp_path)
    assert status == 4
    message = document["hosts"]["storage"]["tasks"][0]["msg"]
    assert "not pinned" in message and "hostkeys scan" in message and "--accept-new-hostkeys" in message

    done = provision("ping", "-i", str(inventory), "--accept-new-hostkeys", "--check", home=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "would pin" in done.stdout
    assert not pins.exists()

    done = provision("ping", "-i", str(inventory), "--accept-new-hostkeys", home=tmp_path)
    assert done.returncode == 0
    assert "pinned [127.0.0.1]:" in done.stdout
    assert pins.exists()
    status, _ = provision_json("ping", "-i", str(inventory), home=tmp_path)
    assert status == 0


def test_hostkeys_scan_shows_fingerprints_and_pins(lab, tmp_path: Path) -> None:
    inventory = copy_inventory(lab, tmp_path, pins=False)
    pins = tmp_path / "site.known_hosts"
    status, document = provision_json("hostkeys", "scan", "-i", str(inventory), "--check", home=tmp_path)
    assert status == 0
    assert not pins.exists()
    assert "would pin" in document["hosts"]["ws1"]["tasks"][0]["msg"]
    done = provision("hostkeys", "scan", "-i", str(inventory), "--limit", "ws1", home=tmp_path)
    assert done.returncode == 0
    assert done.stderr == ""  # a key type the host lacks is not an error worth a traceback
    expected = lab.exec("ws1", ["ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub"]).stdout.split()[1]
    assert expected in done.stdout
    assert f"[127.0.0.1]:{lab.port('ws1')} ssh-ed25519" in pins.read_text()
    status, document = provision_json("hostkeys", "scan", "-i", str(inventory), "--limit", "ws1", home=tmp_path)
    assert status == 0 and document["stats"]["ws1"]["changed"] == 0


def test_proxyjump_hops_are_verified(lab, tmp_path: Path) -> None:
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir()
    key = yaml.safe_load(lab.inventory_path.read_text())["all"]["children"]["storage"]["hosts"]["storage"][
        "ansible_ssh_private_key_file"]
    (ssh_dir / "config").write_text(
        f"Host jumpbox\n  HostName 127.0.0.1\n  Port {lab.port('storage')}\n  User root\n  IdentityFile {key}\n"
        f"Host ws1-behind\n  HostName 127.0.0.1\n  Port {lab.port('ws1')}\n  User root\n"
        f"  IdentityFile {key}\n  ProxyJump jumpbox\n"
    )
    inventory = tmp_path / "jump.yml"
    inventory.write_text("all:\n  vars:\n    project: demo\n  children:\n    storage:\n      hosts:\n"
                         "        ws1-behind: {}\n")
    shutil.copy(lab.known_hosts_path, tmp_path / "jump.known_hosts")
    status, document = provision_json("ping", "-i", str(inventory), home=tmp_path)
    assert status == 0, document
    assert "hostname ws1" in document["hosts"]["ws1-behind"]["tasks"][0]["msg"]
    # The jump host's pin is gone: the whole chain is refused.
    lines = (tmp_path / "jump.known_hosts").read_text().splitlines()
    storage_pin = f"[127.0.0.1]:{lab.port('storage')} "
    (tmp_path / "jump.known_hosts").write_text("\n".join(x for x in lines if not x.startswith(storage_pin)) + "\n")
    status, document = provision_json("ping", "-i", str(inventory), home=tmp_path)
    assert status == 4
    assert "not pinned" in document["hosts"]["ws1-behind"]["tasks"][0]["msg"]


def run_file_play(inventory_path: Path, *, check: bool, path: str, owner: str = "root", mode: int = 0o640):
    inventory = load_inventory(inventory_path)
    engine = Engine(inventory, RunOptions(check=check, diff=True), QuietReporter(),
                    secrets=SecretLookupForInventory(inventory))
    play = Play("write", [Phase("write", lambda state: list(inventory.hosts.values()),
                                lambda host, state: [EnsureFile(path, f"written for {host.name}\n", owner=owner,
                                                                group="root", mode=mode)])])
    return engine.run(play)


def test_check_changes_no_byte_then_apply_then_idempotent(lab) -> None:
    before = {h: host_snapshot(lab, h) for h in ("storage", "ws1", "ws2")}
    state = run_file_play(lab.inventory_path, check=True, path="/etc/provision-check-test")
    assert all(r.status is Status.CHANGED for r in state.reports.values())
    report = state.reports["ws1"].tasks[0]
    assert report.msg.startswith("would create /etc/provision-check-test")
    assert "+written for ws1" in report.diff
    assert {h: host_snapshot(lab, h) for h in before} == before

    state = run_file_play(lab.inventory_path, check=False, path="/etc/provision-check-test")
    assert all(r.status is Status.CHANGED for r in state.reports.values())
    stat = lab.exec("ws2", ["stat", "-c", "%U %G %a", "/etc/provision-check-test"]).stdout.split()
    assert stat == ["root", "root", "640"]
    assert lab.exec("ws2", ["cat", "/etc/provision-check-test"]).stdout == "written for ws2\n"
    assert not [n for n in lab.exec("ws2", ["ls", "-a", "/etc", "/tmp"]).stdout.split() if ".provision" in n]

    state = run_file_play(lab.inventory_path, check=False, path="/etc/provision-check-test")
    assert all(r.status is Status.OK for r in state.reports.values())
    for host in before:
        lab.exec(host, ["rm", "-f", "/etc/provision-check-test"])


def test_become_as_unprivileged_admin(lab, tmp_path: Path, vault_env: dict[str, str]) -> None:
    inventory = admin_inventory(lab, tmp_path, {"storage", "ws1", "ws2"})
    become_password = lab.admin_password_file.read_text().strip()
    done = provision("secrets", "set", "-i", str(inventory), "--scope", "all", "become_password",
                     home=tmp_path, env=vault_env, stdin=become_password + "\n")
    assert done.returncode == 0, done.stderr
    assert become_password not in done.stdout + done.stderr

    state = run_file_play(inventory, check=False, path="/etc/provision-become-test", mode=0o600)
    assert {h: r.status for h, r in state.reports.items()} == dict.fromkeys(("storage", "ws1", "ws2"),
                                                                            Status.CHANGED)
    stat = lab.exec("ws1", ["stat", "-c", "%U %G %a", "/etc/provision-become-test"]).stdout.split()
    assert stat == ["root", "root", "600"]
    state = run_file_play(inventory, check=False, path="/etc/provision-become-test", mode=0o600)
    assert all(r.status is Status.OK for r in state.reports.values())
    for host in ("storage", "ws1", "ws2"):
        lab.exec(host, ["rm", "-f", "/etc/provision-become-test"])


def test_become_without_password_fails_only_that_host(lab, tmp_path: Path, vault_env: dict[str, str]) -> None:
    inventory = admin_inventory(lab, tmp_path, {"ws1"})
    state = run_file_play(inventory, check=False, path="/etc/provision-nopw-test")
    assert state.reports["ws1"].status is Status.FAILED
    assert state.reports["ws2"].status is Status.CHANGED
    assert lab.exec("ws1", ["test", "-e", "/etc/provision-nopw-test"]).returncode == 1
    for host in ("storage", "ws2"):
        lab.exec(host, ["rm", "-f", "/etc/provision-nopw-test"])


def test_bad_inventory_exits_1_with_file_and_line(lab, tmp_path: Path) -> None:
    """ping reads dvc_venv (where it looks for dvc), so a bad one is refused before any host is contacted."""
    inventory = tmp_path / "bad.yml"
    inventory.write_text("all:\n  vars:\n    project: demo\n    dvc_venv: 'opt/dvc'\n  hosts:\n    h1: {}\n")
    done = provision("ping", "-i", str(inventory), home=tmp_path)
    assert done.returncode == 1
    assert f"{inventory}:4" in done.stderr and "dvc_venv" in done.stderr
    assert "Traceback" not in done.stderr
    done = provision("ping", "--forks", "0", "-i", str(inventory), home=tmp_path)
    assert done.returncode == 1


def test_hung_host_times_out_and_others_finish(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["storage", "ws1"])
    pid = lab.pid("ws1")
    os.kill(pid, signal.SIGSTOP)  # accepts TCP in the kernel backlog, never answers: a hung host
    try:
        status, document = provision_json("ping", "-i", str(lab.inventory_path), "--timeout", "3", home=tmp_path)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert status == 4
    assert document["hosts"]["ws1"]["status"] == "unreachable"
    assert document["hosts"]["storage"]["status"] == "ok"


def test_many_connections_to_one_sshd_with_low_maxstartups(lab, tmp_path: Path) -> None:
    """sshd drops connections beyond MaxStartups before authentication; the tool limits and retries."""
    lab.exec("ws2", ["sh", "-c", "echo 'MaxStartups 2:100:2' > /etc/ssh/sshd_config.d/maxstartups.conf"])
    lab.exec("ws2", ["sh", "-c", 'kill -HUP "$(cat /run/sshd.pid)"'])
    try:
        key = str(lab.controller_key)
        hosts = "".join(
            f"        alias{n}: {{ansible_host: 127.0.0.1, ansible_port: {lab.port('ws2')}, ansible_user: root, "
            f"ansible_ssh_private_key_file: '{key}'}}\n"
            for n in range(16)
        )
        inventory = tmp_path / "many.yml"
        inventory.write_text(f"all:\n  vars:\n    project: demo\n  children:\n    clients:\n      hosts:\n{hosts}"
                             f"    storage:\n      hosts:\n        st: {{ansible_host: 127.0.0.1}}\n")
        shutil.copy(lab.known_hosts_path, tmp_path / "many.known_hosts")
        status, document = provision_json("ping", "-i", str(inventory), "--forks", "16", "--limit", "clients",
                                          home=tmp_path)
        assert status == 0, {h: r["tasks"][0]["msg"] for h, r in document["hosts"].items() if r["status"] != "ok"}
        assert len(document["hosts"]) == 16
    finally:
        lab.exec("ws2", ["rm", "-f", "/etc/ssh/sshd_config.d/maxstartups.conf"])
        lab.exec("ws2", ["sh", "-c", 'kill -HUP "$(cat /run/sshd.pid)"'])


def replace_pin(pins: Path, port: int, key_type: str, new_line: str | None) -> None:
    """Swap (or drop) one host's pin of one key type in a pins file."""
    prefix = f"[127.0.0.1]:{port} {key_type} "
    lines = [line for line in pins.read_text().splitlines() if not line.startswith(prefix)]
    if new_line:
        lines.append(new_line)
    pins.write_text("\n".join(lines) + "\n")


def test_scan_refuses_a_changed_key_of_another_type_and_never_adds_types(lab, tmp_path: Path) -> None:
    import paramiko

    inventory = copy_inventory(lab, tmp_path)
    pins = tmp_path / "site.known_hosts"
    stranger = paramiko.ECDSAKey.generate()
    port = lab.port("ws1")
    replace_pin(pins, port, "ecdsa-sha2-nistp256", f"[127.0.0.1]:{port} {stranger.get_name()} {stranger.get_base64()}")
    before = pins.read_bytes()
    status, document = provision_json("hostkeys", "scan", "-i", str(inventory), "--limit", "ws1", home=tmp_path)
    assert status == 4
    assert "CHANGED" in document["hosts"]["ws1"]["tasks"][0]["msg"]
    assert pins.read_bytes() == before

    replace_pin(pins, port, "ecdsa-sha2-nistp256", None)  # only ed25519 pinned now
    before = pins.read_bytes()
    status, document = provision_json("hostkeys", "scan", "-i", str(inventory), "--limit", "ws1", home=tmp_path)
    assert status == 0
    assert "not pinned: ecdsa-sha2-nistp256" in document["hosts"]["ws1"]["tasks"][0]["msg"]
    assert pins.read_bytes() == before


def test_accept_new_still_checks_user_known_hosts(lab, tmp_path: Path) -> None:
    import paramiko

    inventory = copy_inventory(lab, tmp_path, pins=False)
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir()
    stranger = paramiko.Ed25519Key.from_private_key_file(str(lab.admin_key))  # any key that is not ws1's
    (ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{lab.port('ws1')} ssh-ed25519 {stranger.get_base64()}\n")
    status, document = provision_json("ping", "-i", str(inventory), "--accept-new-hostkeys", home=tmp_path)
    assert status == 4
    assert "CHANGED" in document["hosts"]["ws1"]["tasks"][0]["msg"]
    assert document["hosts"]["storage"]["status"] == "ok"
    assert f"[127.0.0.1]:{lab.port('ws1')}" not in (tmp_path / "site.known_hosts").read_text()


def test_local_connection(tmp_path: Path) -> None:
    inventory = tmp_path / "local.yml"
    inventory.write_text("all:\n  vars:\n    project: demo\n  children:\n    storage:\n      hosts:\n"
                         "        here: {ansible_connection: local}\n")
    status, document = provision_json("ping", "-i", str(inventory), home=tmp_path)
    assert status == 0, document
    assert "git 2." in document["hosts"]["here"]["tasks"][0]["msg"]
