"""Concurrent runs against the same hosts: two `provision onboard` and one `provision rotate keys` at once,
while two `provision secrets set` write the vault. Afterwards nothing is lost: each client holds one key,
storage authorizes exactly that key (one line per account), known_hosts pins storage, config.local names the
key, the vault holds both secrets, and a rerun changes nothing. A run that loses a race says so and exits
non-zero; the next run converges.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from provision.lab import Lab
from tests.integration.clirunner import COMMAND, provision, tool_environment
from tests.integration.helpers import (
    assert_key_in_use,
    bootstrap_and_onboard,
    failures,
    public_key,
    sh,
    vault_settings,
)

pytestmark = pytest.mark.integration

CLIENTS = ("ws1", "ws2")


def start(home: Path, env: dict[str, str], name: str, *args: str, stdin: str = "") -> subprocess.Popen[str]:
    """`provision ARGS` started in the background, as a second terminal would; output in HOME/NAME.out|err."""
    with (home / f"{name}.out").open("w") as stdout, (home / f"{name}.err").open("w") as stderr:
        process = subprocess.Popen([*COMMAND, *args], stdin=subprocess.PIPE, stdout=stdout, stderr=stderr,
                                   text=True, env=tool_environment(home, env))
    assert process.stdin is not None
    process.stdin.write(stdin)
    process.stdin.close()
    return process


def assert_consistent(lab: Lab) -> None:
    """Each client: one key, storage's lines for exactly it, the pin, config.local naming it, access works."""
    pins = lab.known_hosts_path.read_text()
    storage_port = lab.port("storage")
    for host in CLIENTS:
        assert_key_in_use(lab, host)
        known_hosts = sh(lab, host, ["cat", "/root/.ssh/known_hosts"])
        for pin in pins.splitlines():
            if pin.startswith(f"[127.0.0.1]:{storage_port} "):
                assert pin in known_hosts.splitlines()


def test_two_onboards_and_a_rotation_at_once_lose_nothing(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["storage", *CLIENTS])
    env = vault_settings(tmp_path)
    bootstrap_and_onboard(lab, tmp_path, dataset=True)
    old = {host: public_key(lab, host) for host in CLIENTS}

    inventory = str(lab.inventory_path)
    commands = {
        "onboard-1": ("onboard", "-i", inventory, "--json"),
        "rotate": ("rotate", "keys", "-i", inventory, "--json"),
        "onboard-2": ("onboard", "-i", inventory, "--pull", "--json"),
        "secret-a": ("secrets", "set", "-i", inventory, "--scope", "all", "alpha"),
        "secret-b": ("secrets", "set", "-i", inventory, "--scope", "ws1", "beta"),
    }
    runs = {name: start(tmp_path, env, name, *argv, stdin=f"value of {name}\n") for name, argv in commands.items()}
    results = {name: (process.wait(timeout=600), (tmp_path / f"{name}.out").read_text(),
                      (tmp_path / f"{name}.err").read_text()) for name, process in runs.items()}
    for name, (status, stdout, stderr) in results.items():
        assert "Traceback" not in stderr, (name, stderr)
        if name.startswith(("onboard", "rotate")):
            document = json.loads(stdout)
            assert status in (0, 2), (name, failures(document))
            if status:
                assert failures(document), (name, document)  # a lost race is reported, not hidden
        else:
            assert status == 0, (name, stderr)

    converge = provision("onboard", "-i", inventory, home=tmp_path, env=env)
    assert converge.returncode == 0, converge.stdout + converge.stderr
    assert_consistent(lab)
    if results["rotate"][0] == 0:
        assert all(public_key(lab, host) != old[host] for host in CLIENTS)
    done = provision("onboard", "-i", inventory, "--json", home=tmp_path, env=env)
    document = json.loads(done.stdout)
    assert done.returncode == 0 and sum(s["changed"] for s in document["stats"].values()) == 0, failures(document)

    listed = provision("secrets", "list", "-i", inventory, home=tmp_path, env=env)
    assert listed.returncode == 0 and "all/alpha" in listed.stdout and "ws1/beta" in listed.stdout, listed.stdout
