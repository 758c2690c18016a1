"""The lab itself: real sshd hosts with private /etc and directories, pins, admin, faults, teardown."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from provision.cli.lab import lab as lab_command
from provision.errors import InputError
from provision.lab import Lab

pytestmark = pytest.mark.integration

PRIVATE_DIRS = ("/etc", "/home", "/root", "/opt", "/usr/local", "/run", "/tmp", "/var/tmp", "/mnt/nfs")


def ssh(lab: Lab, host: str, command: str, *, user: str = "root", key: Path | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """OpenSSH to a lab host, trusting only the lab's pins."""
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={lab.known_hosts_path}", "-o", "IdentitiesOnly=yes",
         "-o", "IdentityAgent=none", "-o", "BatchMode=yes", "-i", str(key or lab.controller_key),
         "-p", str(lab.port(host)), f"{user}@127.0.0.1", command],
        input=stdin, capture_output=True, text=True, timeout=60, check=False)


def host_key(lab: Lab, host: str) -> str:
    return lab.host_path(host, "/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[1]


def running(pid: int) -> bool:
    """Whether pid is a live process (an unreaped zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def lab_processes(lab: Lab) -> list[int]:
    """Every process on the machine that lives inside one of the lab's hosts (its /etc is a host's)."""
    host_etcs = [os.stat(lab.host_path(host, "/etc")) for host in lab.hosts]
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                etc = os.stat(f"/proc/{entry}/root/etc")
            except OSError:
                continue
            if any(os.path.samestat(etc, host_etc) for host_etc in host_etcs):
                found.append(int(entry))
    return found


def test_every_host_answers_over_ssh_with_its_own_name(lab: Lab) -> None:
    assert lab.hosts == ["storage", "ws1", "ws2"]
    assert len({lab.port(host) for host in lab.hosts}) == 3
    for host in lab.hosts:
        done = ssh(lab, host, "hostname")
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{host}\n"


def test_inventory_and_pins_describe_the_lab(lab: Lab) -> None:
    inventory = yaml.safe_load(lab.inventory_path.read_text())
    assert list(inventory["all"]["children"]["storage"]["hosts"]) == ["storage"]
    assert list(inventory["all"]["children"]["clients"]["hosts"]) == ["ws1", "ws2"]
    assert inventory["all"]["vars"]["project"] == "demo"
    assert "/run/sshd.pid" in inventory["all"]["vars"]["sshd_reload_command"]
    pins = lab.known_hosts_path.read_text().splitlines()
    for group in ("storage", "clients"):
        for host, host_vars in inventory["all"]["children"][group]["hosts"].items():
            assert host_vars == {"ansible_host": "127.0.0.1", "ansible_port": lab.port(host),
                                 "ansible_user": "root",
                                 "ansible_ssh_private_key_file": str(lab.controller_key)}
            assert f"[127.0.0.1]:{lab.port(host)} ssh-ed25519 {host_key(lab, host)}" in pins
    assert len({host_key(lab, host) for host in lab.hosts}) == 3
    ansible_inventory = Path(sys.executable).parent / "ansible-inventory"
    listed = subprocess.run([str(ansible_inventory), "-i", str(lab.inventory_path), "--list"],
                            capture_output=True, text=True, check=True)
    document = json.loads(listed.stdout)
    assert document["storage"]["hosts"] == ["storage"]
    assert document["clients"]["hosts"] == ["ws1", "ws2"]
    assert document["_meta"]["hostvars"]["ws2"]["ansible_port"] == lab.port("ws2")


def test_etc_is_private_to_each_host(lab: Lab) -> None:
    user = f"t{uuid.uuid4().hex[:8]}"
    assert ssh(lab, "ws1", f"useradd {user} && id -u {user}").returncode == 0
    try:
        absent = ssh(lab, "ws2", f"id -u {user}")
        assert absent.returncode != 0
        assert "no such user" in absent.stderr
        with pytest.raises(KeyError):
            pwd.getpwnam(user)
    finally:
        ssh(lab, "ws1", f"userdel {user}")


def test_private_directories_are_separate_from_other_hosts_and_the_machine(lab: Lab) -> None:
    marker = f"lab-marker-{uuid.uuid4().hex}"
    paths = [f"{directory}/{marker}" for directory in PRIVATE_DIRS]
    try:
        assert ssh(lab, "ws1", "touch " + " ".join(paths)).returncode == 0
        seen_on_ws2 = ssh(lab, "ws2", "ls -d " + " ".join(paths))
        assert seen_on_ws2.stdout == ""
        assert not [path for path in paths if Path(path).exists()]
        assert ssh(lab, "storage", "ls -d " + " ".join(paths)).stdout == ""
    finally:
        ssh(lab, "ws1", "rm -f " + " ".join(paths))
    modes = ssh(lab, "ws2", "stat -c '%n %a %U' /tmp /var/tmp /root /run/sshd").stdout.splitlines()
    assert modes == ["/tmp 1777 root", "/var/tmp 1777 root", "/root 700 root", "/run/sshd 755 root"]


def test_shared_nfs_gives_clients_the_storage_export(make_lab) -> None:
    nfs_lab = make_lab(["storage", "ws1", "ws2"], shared_nfs=True)
    assert ssh(nfs_lab, "ws1", "echo from-ws1 > /mnt/nfs/note").returncode == 0
    for host in ("storage", "ws2"):
        assert ssh(nfs_lab, host, "cat /mnt/nfs/note").stdout == "from-ws1\n"
    assert nfs_lab.host_path("storage", "/mnt/nfs/note").read_text() == "from-ws1\n"
    assert ssh(nfs_lab, "ws2", "echo x > /tmp/only-ws2").returncode == 0
    assert ssh(nfs_lab, "ws1", "ls /tmp/only-ws2").returncode != 0


def test_admin_sudo_requires_its_password(lab: Lab) -> None:
    assert lab.admin_password_file.stat().st_mode & 0o777 == 0o600
    password = lab.admin_password_file.read_text().strip()
    for host in lab.hosts:
        without = ssh(lab, host, "sudo -n true", user=lab.admin_user, key=lab.admin_key)
        assert without.returncode != 0
        assert "password is required" in without.stderr
        right = ssh(lab, host, "sudo -S -p '' id -u", user=lab.admin_user, key=lab.admin_key,
                    stdin=password + "\n")
        assert right.returncode == 0, right.stderr
        assert right.stdout == "0\n"
    wrong = ssh(lab, "ws1", "sudo -S -p '' id -u", user=lab.admin_user, key=lab.admin_key,
                stdin="not-the-password\n")  # sudo pauses after a wrong password: one host is enough
    assert wrong.returncode != 0
    assert "incorrect password" in wrong.stderr


def test_password_login_is_refused(lab: Lab) -> None:
    refused = subprocess.run(
        ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={lab.known_hosts_path}", "-o", "PubkeyAuthentication=no",
         "-o", "BatchMode=yes", "-p", str(lab.port("storage")), f"{lab.admin_user}@127.0.0.1", "true"],
        capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 255
    assert "Permission denied (publickey)" in refused.stderr


def test_controller_dvc_runs_inside_hosts(lab: Lab) -> None:
    assert lab.warnings == [], "this venv cannot be shared with lab hosts"
    for host in lab.hosts:
        done = ssh(lab, host, "/opt/provision/dvc/bin/dvc --version", user=lab.admin_user, key=lab.admin_key)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("3.")


def test_exec_runs_inside_a_host(lab: Lab) -> None:
    done = lab.exec("ws2", ["sh", "-c", "hostname; cat"], input="through stdin\n")
    assert done.stdout == "ws2\nthrough stdin\n"


def test_reload_command_rereads_config_and_match_drop_ins_apply(make_lab) -> None:
    single = make_lab(["storage"])
    reload_command = yaml.safe_load(single.inventory_path.read_text())["all"]["vars"]["sshd_reload_command"]
    pid = single.pid("storage")
    drop_in = "printf 'Match User labadmin\\n    PasswordAuthentication yes\\n' > /etc/ssh/sshd_config.d/50-t.conf"
    assert ssh(single, "storage", drop_in).returncode == 0
    effective = ssh(single, "storage", "sshd -T -C user=labadmin,host=h,addr=127.0.0.1; "
                                       "sshd -T -C user=root,host=h,addr=127.0.0.1").stdout.splitlines()
    assert effective.count("passwordauthentication yes") == 1
    assert effective.count("passwordauthentication no") == 1
    assert f"port {single.port('storage')}" in effective
    reloaded = ssh(single, "storage", reload_command)
    assert reloaded.returncode == 0, reloaded.stderr
    deadline = time.monotonic() + 10
    while single.log_path("storage").read_text().count("Server listening") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Received SIGHUP; restarting." in single.log_path("storage").read_text()
    assert single.pid("storage") == pid
    assert ssh(single, "storage", "hostname").stdout == "storage\n"


def test_stop_and_start_keep_port_keys_and_files(make_lab) -> None:
    faulty = make_lab(["storage", "ws1"])
    port, key = faulty.port("ws1"), host_key(faulty, "ws1")
    assert ssh(faulty, "ws1", "echo kept > /root/note").returncode == 0
    faulty.stop("ws1")
    refused = ssh(faulty, "ws1", "true")
    assert refused.returncode == 255
    assert "Connection refused" in refused.stderr
    assert ssh(faulty, "storage", "hostname").stdout == "storage\n"
    assert {status.name: status.running for status in faulty.status()} == {"storage": True, "ws1": False}
    assert "ws1:" in faulty.inventory_path.read_text()
    faulty.start("ws1")
    assert (faulty.port("ws1"), host_key(faulty, "ws1")) == (port, key)
    assert ssh(faulty, "ws1", "hostname; cat /root/note").stdout == "ws1\nkept\n"


def test_rekey_changes_the_key_and_keeps_the_old_pins(make_lab) -> None:
    rekeyed = make_lab(["storage", "ws1"])
    old_key, pins = host_key(rekeyed, "ws1"), rekeyed.known_hosts_path.read_text()
    rekeyed.rekey("ws1")
    assert host_key(rekeyed, "ws1") != old_key
    assert rekeyed.known_hosts_path.read_text() == pins
    refused = ssh(rekeyed, "ws1", "hostname")
    assert refused.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stderr
    assert ssh(rekeyed, "storage", "hostname").returncode == 0


def test_down_stops_exactly_the_labs_processes(lab: Lab, make_lab) -> None:
    doomed = make_lab(["storage", "ws1"])
    session = subprocess.Popen([*doomed.ssh_command("ws1"), "sleep 600"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while len(lab_processes(doomed)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        listeners = [doomed.pid(host) for host in doomed.hosts]
        assert len(lab_processes(doomed)) > 2
        doomed.down()
        assert session.wait(timeout=10) == 255
    finally:
        session.kill()
    assert lab_processes(doomed) == []
    assert not [pid for pid in listeners if running(pid)]
    assert [status.running for status in doomed.status()] == [False, False]
    assert doomed.inventory_path.exists()
    assert all(status.running for status in lab.status())
    doomed.up(["storage", "ws1"])
    assert doomed.started == ["storage", "ws1"]
    assert ssh(doomed, "ws1", "hostname").stdout == "ws1\n"


def test_cli_status_and_up_on_a_running_lab(lab: Lab) -> None:
    runner = CliRunner()
    again = runner.invoke(lab_command, ["up", "--dir", str(lab.dir)])
    assert again.exit_code == 0, again.output
    assert f"the lab in {lab.dir} is already up" in again.output
    status = runner.invoke(lab_command, ["status", "--json", "--dir", str(lab.dir)])
    document = json.loads(status.output)
    assert [(host["name"], host["port"], host["running"]) for host in document["hosts"]] == [
        (host, lab.port(host), True) for host in lab.hosts]
    other = runner.invoke(lab_command, ["up", "--hosts", "a,b", "--dir", str(lab.dir)])
    assert isinstance(other.exception, InputError)


def test_lab_needs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(InputError, match="needs root"):
        Lab(tmp_path / "lab").up(["storage"])
    assert not (tmp_path / "lab").exists()


def fake_venv(root: Path) -> Path:
    """A virtualenv-shaped directory with a dvc, made from /usr/bin's Python."""
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "dvc").write_text("#!/bin/sh\n")
    (root / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return root


def test_share_dvc_refuses_a_venv_hosts_cannot_see(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "prefix", str(fake_venv(tmp_path / "venv")))
    with pytest.raises(InputError, match=r"is under /tmp, .*made with /usr/bin/python3 outside"):
        Lab(tmp_path / "lab").up(["storage"], share_dvc=True)
    assert not (tmp_path / "lab").exists()


def test_share_dvc_by_default_warns_and_skips(make_lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "prefix", str(fake_venv(tmp_path / "venv")))
    unshared = make_lab(["storage"])
    assert len(unshared.warnings) == 1
    assert "dvc not shared" in unshared.warnings[0]
    assert unshared.exec("storage", ["ls", "/opt"]).stdout == ""
