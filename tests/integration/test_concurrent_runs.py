"""Concurrent runs against the same hosts: two `provision onboard` and one `provision rotate keys` at once,
while two `provision secrets set` write the vault. Each run locks the hosts it works on (provision.host_lock),
so the later ones wait, say for whom, and then run: all exit 0. Afterwards nothing is lost: each client holds
one key, storage authorizes exactly that key (one line per account), known_hosts pins storage, config.local
names the key, the vault holds both secrets, and a rerun changes nothing.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from provision.lab import Lab
from tests.integration.clirunner import COMMAND, provision, tool_environment
from tests.integration.helpers import (
    assert_key_in_use,
    bootstrap_and_onboard,
    bootstrap_with_dataset,
    failures,
    public_key,
    run,
    sh,
    vault_settings,
)

pytestmark = pytest.mark.integration

CLIENTS = ("ws1", "ws2")
#: A `git` early on ws1's PATH whose `clone` waits until the test lets it go: a run that is surely under way.
CLONE_STARTED = "/tmp/clone-started"
CLONE_GO = "/tmp/clone-go"
GATED_CLONE = f"""#!/bin/sh
if [ "$1" = clone ]; then touch {CLONE_STARTED}; while [ ! -e {CLONE_GO} ]; do sleep 0.2; done; fi
exec /usr/bin/git "$@"
"""
FAKE_GIT = "/usr/local/bin/git"


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
            assert status == 0, (name, failures(json.loads(stdout)), stderr)
        else:
            assert status == 0, (name, stderr)

    converge = provision("onboard", "-i", inventory, home=tmp_path, env=env)
    assert converge.returncode == 0, converge.stdout + converge.stderr
    assert_consistent(lab)
    assert all(public_key(lab, host) != old[host] for host in CLIENTS)
    done = provision("onboard", "-i", inventory, "--json", home=tmp_path, env=env)
    document = json.loads(done.stdout)
    assert done.returncode == 0 and sum(s["changed"] for s in document["stats"].values()) == 0, failures(document)

    listed = provision("secrets", "list", "-i", inventory, home=tmp_path, env=env)
    assert listed.returncode == 0 and "all/alpha" in listed.stdout and "ws1/beta" in listed.stdout, listed.stdout


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    """Until `condition` holds; fails if `process` ends first (or after ten minutes)."""
    deadline = time.monotonic() + 600
    while not condition():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} in ten minutes"
        time.sleep(0.2)


def test_a_second_onboard_waits_for_the_first_says_for_whom_and_both_succeed(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["storage", *CLIENTS])
    bootstrap_with_dataset(lab, tmp_path)
    inventory = str(lab.inventory_path)
    run(lab, "ws1", ["sh", "-c", 'cat > "$1" && chmod 0755 "$1"', "sh", FAKE_GIT], input=GATED_CLONE)
    first = start(tmp_path, {}, "first", "onboard", "-i", inventory, "--json")
    wait_for(lab.host_path("ws1", CLONE_STARTED).exists, first, "clone on ws1")
    second = start(tmp_path, {}, "second", "onboard", "-i", inventory, "--json")
    wait_for(lambda: "waiting for another provision run" in (tmp_path / "second.err").read_text(), second,
             "waiting message")
    run(lab, "ws1", ["touch", CLONE_GO])
    statuses = {name: process.wait(timeout=600) for name, process in (("first", first), ("second", second))}
    run(lab, "ws1", ["rm", "-f", FAKE_GIT, CLONE_STARTED, CLONE_GO])

    documents = {name: json.loads((tmp_path / f"{name}.out").read_text()) for name in statuses}
    assert statuses == {"first": 0, "second": 0}, {name: failures(document) for name, document in documents.items()}
    waiting = re.compile(rf"(storage|ws1|ws2): waiting for another provision run \(pid {first.pid} on "
                         rf"{re.escape(socket.gethostname())} since [^)]+\) to finish, up to 600s")
    assert waiting.search((tmp_path / "second.err").read_text()), (tmp_path / "second.err").read_text()
    assert sum(stats["changed"] for stats in documents["first"]["stats"].values()) > 0
    assert sum(stats["changed"] for stats in documents["second"]["stats"].values()) == 0, failures(documents["second"])
    assert_consistent(lab)
