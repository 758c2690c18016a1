"""Interrupt sweep: SIGINT, SIGTERM and SIGKILL at seeded random points of bootstrap, bootstrap --data --tag,
onboard --pull, offboard, rotate keys and rotate password, on one lab (ws1 and ws2 on keys, ws3 on
`auth: password`, secrets in the vault).

After each interruption: every managed file is whole (authorized_keys lines complete and restricted,
config.local readable), no temporary file of an install is left beside a target, every client whose
config.local names a key can still reach storage with it, storage_user's password login takes a password
the vault holds (storage_password, or storage_password.next of a rotation under way), ws3's config.local
holds one storage takes or (a password rotation cut short, the documented gap of `auth: password`) the one
that rotation replaced, and every tag in git_remote names data the DVC remote holds. Then the same command
run again converges with exit 0.

By default a few points with a fixed seed (CI); PROVISION_INTERRUPT_POINTS=40 (and PROVISION_INTERRUPT_SEED)
for the full sweep.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from provision.lab import Lab
from provision.secrets import open_store
from provision.tasks.authorized_keys import file_lines, line_marker
from tests.integration.clirunner import COMMAND, provision, tool_environment
from tests.integration.helpers import (
    DVC,
    WORKDIR,
    bootstrap_with_dataset,
    client_sftp,
    missing_tagged_data,
    own_lab,
    password_works,
    run,
    sh,
    vault_settings,
)

pytestmark = pytest.mark.integration

POINTS = int(os.environ.get("PROVISION_INTERRUPT_POINTS", "3"))
SEED = int(os.environ.get("PROVISION_INTERRUPT_SEED", "14"))
CLIENTS = ("ws1", "ws2")
PASSWORD_CLIENT = "ws3"
VAULT_PASSWORD = "vault password of the interrupt sweep"
PASSWORD_NAMES = ("inventory/all/storage_password", "inventory/all/storage_password.next")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
#: Directories provision installs files into: an install's `.provision.XXXXXXXX` must never stay there.
INSTALL_DIRS = {"storage": ["/home/dvc/.ssh", "/home/git/.ssh", "/etc/ssh/sshd_config.d", "/mnt/nfs/demo/.dvc"],
                **{client: ["/root/.ssh", f"{WORKDIR}/.dvc"] for client in (*CLIENTS, PASSWORD_CLIENT)}}
NAMES = ("bootstrap", "bootstrap --data --tag", "onboard --pull", "offboard", "rotate keys", "rotate password")


@dataclass
class Sweep:
    lab: Lab
    home: Path
    env: dict[str, str]
    durations: dict[str, float] = field(default_factory=dict)
    versions: int = 1


def commands(sweep: Sweep) -> dict[str, list[str]]:
    inventory = str(sweep.lab.inventory_path)
    return {
        "bootstrap": ["bootstrap", "-i", inventory],
        "bootstrap --data --tag": ["bootstrap", "-i", inventory, "--data", "data", "--tag", f"v1.{sweep.versions}"],
        "onboard --pull": ["onboard", "-i", inventory, "--pull"],
        "offboard": ["offboard", "-i", inventory, "ws2"],
        "rotate keys": ["rotate", "keys", "-i", inventory],
        "rotate password": ["rotate", "password", "-i", inventory],
    }


def new_version(sweep: Sweep) -> None:
    """A changed dataset in server_repo for the next `bootstrap --data --tag`."""
    sweep.versions += 1
    run(sweep.lab, "storage", ["sh", "-c", 'printf "version %s\\n" "$1" > /mnt/nfs/demo/data/hello.txt && '
                               "chown git:dvc /mnt/nfs/demo/data/hello.txt", "sh", str(sweep.versions)])


def start(sweep: Sweep, argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([*COMMAND, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=tool_environment(sweep.home, sweep.env))


def converge(sweep: Sweep, name: str) -> None:
    """The command again, uninterrupted: exit 0 (offboard's client is onboarded again afterwards)."""
    argv = commands(sweep)[name]
    done = provision(*argv, home=sweep.home, env=sweep.env)
    assert done.returncode == 0, f"{name} after the interruption: {done.stdout}{done.stderr}"
    if name == "bootstrap --data --tag":
        new_version(sweep)
    if name == "offboard":
        done = provision("onboard", "-i", str(sweep.lab.inventory_path), "ws2", home=sweep.home, env=sweep.env)
        assert done.returncode == 0, done.stdout + done.stderr


def local_config(lab: Lab, host: str) -> dict[str, str]:
    """The remote's options in a client's config.local (`keyfile`, `password`, ...)."""
    listing = lab.exec(host, [DVC, "--cd", WORKDIR, "config", "--list", "--local"])
    return dict(line.removeprefix("remote.data.").split("=", 1) for line in listing.stdout.splitlines()
                if line.startswith("remote.data."))


def stored_passwords(sweep: Sweep) -> list[str]:
    """storage_password and (during a rotation) storage_password.next, as the vault holds them."""
    store = open_store(sweep.lab.inventory_path, "inventory", backend="vault", vault_password=VAULT_PASSWORD.encode())
    return [value for value in (store.get(name) for name in PASSWORD_NAMES) if value]


def assert_password_whole(sweep: Sweep, context: str, replaced: list[str]) -> None:
    """storage_user's password login takes one the vault holds; ws3's config.local holds one storage takes, or,
    when a password rotation was cut short, one it `replaced` (the gap of `auth: password` clients, which the
    rerun closes)."""
    accepted = [value for value in stored_passwords(sweep) if password_works(sweep.lab, value)]
    assert accepted, (context, "storage takes no password the vault holds")
    configured = local_config(sweep.lab, PASSWORD_CLIENT).get("password")
    assert configured in accepted + replaced, (context, PASSWORD_CLIENT, "config.local password")


def assert_whole(sweep: Sweep, context: str, interrupted: str = "", replaced: list[str] | None = None) -> None:
    """Managed files whole, no install left half-done, no client locked out (but one being offboarded, and
    the password client during a password rotation), no tag without its data."""
    revoking = ("ws2",) if interrupted == "offboard" else ()
    lab = sweep.lab
    for account in ("dvc", "git"):
        content = lab.host_path("storage", f"/home/{account}/.ssh/authorized_keys").read_bytes()
        assert not content or content.endswith(b"\n"), (context, account, content[-80:])
        for line in file_lines(content):
            assert line_marker(line) is not None and line.startswith(b"restrict,"), (context, account, line)
    for host, directories in INSTALL_DIRS.items():
        for directory in directories:
            left = sh(lab, host, ["find", directory, "-maxdepth", "1", "-name", ".provision.*"]) \
                if lab.exec(host, ["test", "-d", directory]).returncode == 0 else ""
            assert not left, (context, host, left)
    for host in {*CLIENTS, PASSWORD_CLIENT} - set(revoking):
        keyfile = local_config(lab, host).get("keyfile")
        if keyfile is not None:
            reached = lab.exec(host, client_sftp(lab, "dvc", keyfile), input="ls /cache\n")
            assert reached.returncode == 0, (context, host, "locked out", reached.stderr)
    assert_password_whole(sweep, context, replaced or [])
    missing = missing_tagged_data(lab)
    assert not missing, (context, "tags naming data missing from the remote", missing)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    """Storage with a dataset, two onboarded clients; each command timed once, uninterrupted."""
    with own_lab(tmp_path_factory, "interrupts", ["storage", *CLIENTS, PASSWORD_CLIENT]) as (lab, home):
        (lab.dir / "host_vars").mkdir()
        (lab.dir / "host_vars" / f"{PASSWORD_CLIENT}.yml").write_text("auth: password\n")
        env = vault_settings(home, VAULT_PASSWORD)
        bootstrap_with_dataset(lab, home, env=env)
        sweep = Sweep(lab, home, env)
        new_version(sweep)
        for name in ("onboard --pull", "bootstrap", "bootstrap --data --tag", "rotate keys", "rotate password",
                     "offboard"):
            began = time.monotonic()
            converge(sweep, name)
            sweep.durations[name] = time.monotonic() - began
        yield sweep


def points() -> list[tuple[str, signal.Signals, float]]:
    """(command, signal, fraction of its uninterrupted duration) for each point, from the seed."""
    chooser = random.Random(SEED)
    return [(chooser.choice(NAMES), chooser.choice(SIGNALS), chooser.random()) for _ in range(POINTS)]


@pytest.mark.parametrize(("name", "signum", "fraction"), points(),
                         ids=lambda value: value.name if isinstance(value, signal.Signals) else
                         f"{value:.2f}" if isinstance(value, float) else value)
def test_an_interrupted_run_leaves_every_host_whole_and_a_rerun_converges(
        sweep: Sweep, name: str, signum: signal.Signals, fraction: float) -> None:
    replaced = stored_passwords(sweep) if name == "rotate password" else []
    process = start(sweep, commands(sweep)[name])
    try:
        process.wait(timeout=fraction * sweep.durations[name])
    except subprocess.TimeoutExpired:
        process.send_signal(signum)
    context = f"{name} {signum.name} at {fraction:.2f}"
    try:  # the next point starts from a converged lab, whatever this one found
        output, _ = process.communicate(timeout=300)
        assert "Traceback" not in output, (context, output)
        finished = "recap" in output  # a signal during the interpreter's exit meets Python's default handler
        if signum != signal.SIGKILL and process.returncode != 0 and not finished:
            assert process.returncode == 130 and "interrupted" in output, (context, output)
        assert_whole(sweep, context, interrupted=name, replaced=replaced)
    finally:
        converge(sweep, name)
    assert_whole(sweep, f"{context}, then rerun")


def test_a_rerun_after_the_sweep_changes_nothing(sweep: Sweep) -> None:
    done = provision("onboard", "-i", str(sweep.lab.inventory_path), "--json", home=sweep.home, env=sweep.env)
    document = json.loads(done.stdout)
    assert done.returncode == 0 and sum(stats["changed"] for stats in document["stats"].values()) == 0, done.stdout
