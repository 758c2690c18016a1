"""Attacks on the controller's side, performed on real lab hosts, and shown to fail.

sudo's prompt printed by a command, a symlinked key.pub to a root-only file, a staged file left by a
killed run, a host trusted only in ~/.ssh/known_hosts offering another key, a line break smuggled
into storage_address through an IPv6 scope id.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest

from provision.connection import HostKeyOptions, open_session
from provision.inventory import load_inventory
from provision.remote import script
from tests.integration.clirunner import provision, provision_json
from tests.integration.helpers import admin_inventory, run, sh, task

pytestmark = pytest.mark.integration

#: $1 a file: find sudo's -p prompt among this process's ancestors, print it on stdout and stderr (as
#: a password prompt), then save whatever arrives on stdin into the file.
STEAL_PASSWORD = r"""
pid=$$ prompt=
while [ "$pid" -gt 1 ] && [ -z "$prompt" ]; do
  prompt=$(tr '\0' '\n' < "/proc/$pid/cmdline" | sed -n '/^-p$/{n;p;q;}')
  pid=$(cut -d' ' -f4 < "/proc/$pid/stat")
done
[ -n "$prompt" ] || exit 7
printf '%s' "$prompt"
printf '%s' "$prompt" >&2
timeout 5 head -n 1 > "$1" || true
"""

SECRET_TEXT = "ROOT-ONLY-SECRET-do-not-echo"


def test_a_command_printing_sudos_prompt_never_receives_the_password(lab, tmp_path: Path) -> None:
    """Even where sudo keeps a global ticket (so it would not ask again), the password goes only to sudo."""
    inventory = load_inventory(admin_inventory(lab, tmp_path, {"ws1"}))
    password = lab.admin_password_file.read_text().strip()
    sudoers = "/etc/sudoers.d/zz-global-ticket"
    run(lab, "ws1", ["sh", "-c", 'printf "Defaults:labadmin timestamp_type=global\\n" > "$1"; chmod 0440 "$1"',
                     "sh", sudoers])
    try:
        session = open_session(inventory.hosts["ws1"], HostKeyOptions(inventory.known_hosts_path), timeout=30,
                               become_password=password)
        try:
            assert session.run(["true"], privileged=True).ok
            result = session.run(script(STEAL_PASSWORD, "/root/stolen"), privileged=True)
        finally:
            session.close()
        stolen = sh(lab, "ws1", ["cat", "/root/stolen"])
    finally:
        lab.exec("ws1", ["rm", "-f", sudoers, "/root/stolen", "/var/run/sudo/ts/labadmin"])
    assert result.ok, result
    assert result.stdout.startswith("[provision sudo "), "the command saw sudo's prompt and printed it"
    assert stolen == ""
    assert password not in result.stdout + result.stderr


def test_unprivileged_probe_of_a_symlinked_key_pub_is_not_read_as_root(lab, tmp_path: Path,
                                                                        vault_env: dict[str, str]) -> None:
    inventory = admin_inventory(lab, tmp_path, {"ws1"})
    become_password = lab.admin_password_file.read_text().strip()
    done = provision("secrets", "set", "-i", str(inventory), "--scope", "ws1", "become_password",
                     home=tmp_path, env=vault_env, stdin=become_password + "\n")
    assert done.returncode == 0, done.stderr
    key = "/home/labadmin/.ssh/id_ed25519_demo"
    run(lab, "ws1", ["sh", "-c", 'umask 077; printf "%s %s\\n" "$1" "$1" > /root/secret.txt', "sh", SECRET_TEXT])
    run(lab, "ws1", ["su", "-s", "/bin/sh", "-c",
                     f"ssh-keygen -q -t ed25519 -N '' -f {key} && ln -sf /root/secret.txt {key}.pub", "labadmin"])
    try:
        status, document = provision_json("onboard", "-i", str(inventory), "ws1", "--check", home=tmp_path,
                                          env=vault_env)
    finally:
        lab.exec("ws1", ["rm", "-f", "/root/secret.txt", key, f"{key}.pub"])
    text = str(document)
    assert SECRET_TEXT not in text
    client_key = task(document, "ws1", "client key")
    assert client_key["status"] == "failed" and "public key" in client_key["msg"]
    assert status & 2


KEEP_STAGED = """
import sys, time
from pathlib import Path
from provision.connection import HostKeyOptions, open_session
from provision.inventory import load_inventory
inventory = load_inventory(Path(sys.argv[1]))
session = open_session(inventory.hosts["ws1"], HostKeyOptions(inventory.known_hosts_path), timeout=30)
print(session.stage(b"storage:not-really-a-password\\n"), flush=True)
time.sleep(600)
"""


def _staging_run(lab) -> tuple[subprocess.Popen[str], str]:
    """A run holding a staged file on ws1 (a child process), and its staging directory."""
    child = subprocess.Popen([sys.executable, "-c", KEEP_STAGED, str(lab.inventory_path)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None
    staged = child.stdout.readline().strip()
    assert staged.startswith("/tmp/.provision-stage."), staged
    directory = staged.rsplit("/", 1)[0]
    run(lab, "ws1", ["touch", "-d", "-5 minutes", directory])  # older than a run takes to lock its own
    return child, directory


def test_a_killed_runs_staging_directory_is_removed_by_the_next_run(lab, tmp_path: Path) -> None:
    killed, stale = _staging_run(lab)
    alive, live = _staging_run(lab)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        exists = lambda path: lab.exec("ws1", ["test", "-d", path]).returncode == 0  # noqa: E731
        assert exists(stale), "the killed run left its staged file behind"

        checked = provision("ping", "-i", str(lab.inventory_path), "--limit", "ws1", "--check", home=tmp_path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"ws1: would remove staging directory {stale} left by an interrupted run" in checked.stdout
        assert exists(stale)

        done = provision("ping", "-i", str(lab.inventory_path), "--limit", "ws1", home=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"ws1: removed staging directory {stale} left by an interrupted run" in done.stdout
        assert live not in done.stdout
        assert not exists(stale)
        assert exists(live), "a live run's staging directory is locked and stays"
    finally:
        for child in (killed, alive):
            child.kill()
            child.wait(timeout=30)
    lab.exec("ws1", ["rm", "-rf", "--", live])


def test_scan_refuses_a_host_whose_key_differs_from_users_known_hosts(lab, tmp_path: Path) -> None:
    inventory = tmp_path / "site.yml"
    shutil.copy(lab.inventory_path, inventory)
    pins = tmp_path / "site.known_hosts"
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir()
    stranger = paramiko.Ed25519Key.from_private_key_file(str(lab.admin_key))  # any key that is not ws1's
    name = f"[127.0.0.1]:{lab.port('ws1')}"
    (ssh_dir / "known_hosts").write_text(f"{name} ssh-ed25519 {stranger.get_base64()}\n")
    for extra in ([], ["--accept-new-hostkeys"]):
        status, document = provision_json("hostkeys", "scan", "-i", str(inventory), "--limit", "ws1", *extra,
                                          home=tmp_path)
        assert status == 4, document
        message = document["hosts"]["ws1"]["tasks"][0]["msg"]
        assert "CHANGED" in message and message.count("SHA256:") == 2
        assert not pins.exists() or name not in pins.read_text()

    ws1_line = next(line for line in lab.known_hosts_path.read_text().splitlines()
                    if line.startswith(f"{name} ssh-ed25519 "))
    (ssh_dir / "known_hosts").write_text(ws1_line + "\n")
    status, document = provision_json("hostkeys", "scan", "-i", str(inventory), "--limit", "ws1", home=tmp_path)
    assert status == 0, document
    assert "verified against" in document["hosts"]["ws1"]["tasks"][0]["msg"]


def test_line_break_in_an_ipv6_scope_id_is_refused_before_any_host(lab, tmp_path: Path) -> None:
    """`fe80::1%lo<newline><known_hosts line>` would pin an attacker's key on clients and reach .dvc/config."""
    inventory = tmp_path / "site.yml"
    attacker = "AAAAC3NzaC1lZDI1NTE5AAAAIAttackerKeyAttackerKeyAttackerKey0"  # no '/': ipaddress takes it
    text = lab.inventory_path.read_text().replace(
        "  vars:\n", f"  vars:\n    storage_address: \"fe80::1%lo\\n[127.0.0.1]:22 ssh-ed25519 {attacker}\"\n", 1)
    inventory.write_text(text)
    shutil.copy(lab.known_hosts_path, tmp_path / "site.known_hosts")
    known_hosts_before = lab.exec("ws1", ["cat", "/root/.ssh/known_hosts"]).stdout
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "storage_address" in row)
    for command in (["onboard"], ["bootstrap", "--check"]):
        done = provision(*command, "-i", str(inventory), home=tmp_path)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"{inventory}:{line}: storage_address: " in done.stderr
        assert "scope id" in done.stderr and "Traceback" not in done.stderr
    assert lab.exec("ws1", ["cat", "/root/.ssh/known_hosts"]).stdout == known_hosts_before
