"""Validation per command and per targeted host, through the real command line.

An inventory written for other playbooks loads for `inventory list/graph`, and a play only checks the
vars it uses for the hosts it works on. Every refusal here exits 1 before any host is contacted: the
hosts' addresses do not exist, so a play that went ahead would report them unreachable (exit 4) instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

OTHER_PLAYBOOKS = """\
all:
  vars:
    projects: [a]
    dc_env: dev
    db_password: !vault |
      $ANSIBLE_VAULT;1.1;AES256
      6231
  children:
    storage:
      hosts:
        nas:
          ansible_host: 192.0.2.10
    clients:
      hosts:
        ws1:
          ansible_host: 192.0.2.11
        "příbor":
          ansible_host: 192.0.2.12
        user@h1:
    routers:
      vars:
        ansible_connection: ansible.netcommon.network_cli
      hosts:
        r1:
    vaulted:
      hosts:
        v1:
          ansible_host: 192.0.2.13
          ansible_become_password: !vault |
            $ANSIBLE_VAULT;1.1;AES256
            6232
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PROVISION_")}
    return subprocess.run([sys.executable, "-m", "provision", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.yml"
    path.write_text(OTHER_PLAYBOOKS)
    return path


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line (warnings about the inventory come before it)."""
    errors = [line for line in done.stderr.splitlines() if not line.startswith("[")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def line_of(path: Path, needle: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_inventory_commands_need_no_project_vars(site: Path) -> None:
    listed = run("inventory", "list", "-i", str(site), "--json")
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    assert document["_meta"]["hostvars"]["r1"]["ansible_connection"] == "ansible.netcommon.network_cli"
    vault = {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n6231\n"}
    assert document["_meta"]["hostvars"]["ws1"]["db_password"] == vault
    assert f"[WARNING]: {site}:3: 'projects' is not a provision var but resembles 'project'" in listed.stderr
    assert run("inventory", "graph", "-i", str(site)).returncode == 0
    text = run("inventory", "list", "-i", str(site), "--limit", "ws1")
    assert text.returncode == 0
    assert "ws1 (clients)" in text.stdout and "project: required" in text.stdout


def test_a_limit_that_selects_nothing_warns_for_listing_and_refuses_a_play(site: Path) -> None:
    listed = run("inventory", "list", "-i", str(site), "--json", "--limit", "nothing")
    assert listed.returncode == 0
    assert "[WARNING]: Could not match supplied host pattern, ignoring: nothing" in listed.stderr
    assert json.loads(listed.stdout)["_meta"]["hostvars"] == {}
    play = run("ping", "-i", str(site), "--limit", "nothing")
    assert play.returncode == 1 and "no host matches --limit 'nothing'" in play.stderr


@pytest.mark.parametrize(("limit", "needle", "why"), [
    ("r1", "ansible_connection: ansible.netcommon.network_cli", "provision connects only with ssh"),
    ("user@h1", "user@h1:", "set ansible_host to its address"),
    ("v1", "ansible_become_password: !vault", "provision secrets set"),
])
def test_a_host_a_play_cannot_handle_is_refused_with_file_line_and_what_to_do(site: Path, limit: str, needle: str,
                                                                             why: str) -> None:
    done = run("ping", "-i", str(site), "--limit", limit, "--timeout", "2")
    assert done.returncode == 1, done.stderr
    assert error_line(done).startswith(f"error: {site}:{line_of(site, needle)}: ")
    assert f"host {limit}" in done.stderr and why in done.stderr


def test_hosts_a_command_does_not_touch_may_hold_anything(site: Path) -> None:
    done = run("hostkeys", "forget", "-i", str(site), "--check", "ws1", "příbor")
    assert done.returncode == 0, done.stderr
    assert "ws1: nothing pinned" in done.stdout


def test_plays_need_the_vars_they_use(site: Path) -> None:
    done = run("bootstrap", "-i", str(site), "--check")
    assert done.returncode == 1
    assert f"{site}: project: required" in done.stderr
    site.write_text(site.read_text().replace("    dc_env: dev\n", "    dc_env: dev\n    project: demo\n"))
    done = run("onboard", "-i", str(site), "--check", "příbor")
    assert done.returncode == 1
    assert "host příbor: its name cannot mark its key lines on storage" in done.stderr
    assert error_line(done).startswith(f"error: {site}:{line_of(site, 'příbor')}: ")


def test_only_the_values_a_play_reads_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "site.yml"
    path.write_text(textwrap.dedent("""\
        all:
          vars: {project: demo}
          children:
            storage:
              hosts: {nas: {ansible_host: 192.0.2.10}}
            clients:
              hosts:
                ws1: {ansible_host: 192.0.2.11, workdir: relative/path}
                ws2: {ansible_host: 192.0.2.12}
        """))
    done = run("onboard", "-i", str(path), "--check", "ws1")
    assert done.returncode == 1
    assert f"{path}:8: workdir: 'relative/path' is relative" in done.stderr
    assert run("hostkeys", "forget", "-i", str(path), "--check", "ws1").returncode == 0
