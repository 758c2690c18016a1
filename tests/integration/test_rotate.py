"""`provision rotate keys` on real sshd, git and dvc: the whole rotation, a client that is down, a new
key that storage refuses, and no private key anywhere it must not be.

One lab for the module: storage, ws1 and ws2 (`access: read`), bootstrapped with a dataset and
onboarded. Each test starts from a fleet whose keys are all in use: a test that passes leaves it so, and
after one that fails the fleet is put back (hosts started, nothing revoked, a rotation run to its end).
Faults are real: a stopped host, and storage refusing the new key through sshd's own RevokedKeys list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from provision.lab import Lab
from provision.remote import as_user, script
from tests.integration.argv_watch import ArgvWatch
from tests.integration.clirunner import provision
from tests.integration.helpers import (
    ALL_OBJECTS,
    DVC,
    KEY,
    WORKDIR,
    assert_key_in_use,
    authorized_keys,
    bootstrap_and_onboard,
    client_sftp,
    failed,
    failures,
    host_snapshot,
    marked,
    own_lab,
    public_key,
    sh,
    task,
)

pytestmark = pytest.mark.integration

NEW_KEY = f"{KEY}.new"
OLD_COPY = "/root/old_key"
CLIENTS = ("ws1", "ws2")
REVOKED_DROP_IN = "/etc/ssh/sshd_config.d/05-test-revoked-keys.conf"


@dataclass
class Fleet:
    lab: Lab
    home: Path
    watch: ArgvWatch
    outputs: list[str] = field(default_factory=list)
    private_keys: set[str] = field(default_factory=set)

    def rotate(self, *args: str) -> tuple[int, dict[str, Any]]:
        """`provision rotate keys ARGS --json`; output and every private key kept for the final search."""
        done = provision("rotate", "keys", "-i", str(self.lab.inventory_path), *args, "--json", home=self.home)
        self.outputs += [done.stdout, done.stderr]
        self.remember_keys()
        try:
            return done.returncode, json.loads(done.stdout)
        except json.JSONDecodeError as error:
            raise AssertionError(f"not one JSON document: {done.stdout!r}\n{done.stderr}") from error

    def remember_keys(self) -> None:
        for host in CLIENTS:
            for path in (KEY, NEW_KEY, OLD_COPY):
                file = self.lab.host_path(host, path)
                if file.exists():
                    self.private_keys.add(file.read_text())


def lines(lab: Lab, account: str, host: str) -> list[str]:
    return marked(authorized_keys(lab, account), host)


def sftp(lab: Lab, host: str, key: str, account: str = "dvc") -> Any:
    """sftp from a client to storage with only `key`, listing the DVC remote."""
    return lab.exec(host, client_sftp(lab, account, key), input="ls /cache\n" if account == "dvc" else "ls /\n")


def keep_old_key(lab: Lab, host: str) -> str:
    """A copy of the key in use, to try after the rotation; returns its public half."""
    sh(lab, host, ["cp", "-p", KEY, OLD_COPY])
    return public_key(lab, host)


def assert_rotated(lab: Lab, host: str, old_public: str, *, read_only: bool) -> None:
    """New key in place and in use, its lines alone on storage, the old key refused and gone."""
    new_public = assert_key_in_use(lab, host)
    assert new_public != old_public
    assert not lab.host_path(host, NEW_KEY).exists() and not lab.host_path(host, f"{NEW_KEY}.pub").exists()
    assert sh(lab, host, ["stat", "-c", "%a", KEY]).strip() == "600"
    sftp_line, git_line = lines(lab, "dvc", host)[0], lines(lab, "git", host)[0]
    assert ("internal-sftp -R" in sftp_line) == read_only
    assert ('command="git-read-only"' in git_line) == read_only
    ssh_command = sh(lab, host, ["git", "-C", WORKDIR, "config", "core.sshCommand"])
    assert f"-i {KEY}" in ssh_command and NEW_KEY not in ssh_command
    for account in ("dvc", "git"):
        refused = sftp(lab, host, OLD_COPY, account)
        assert refused.returncode != 0 and "Permission denied" in refused.stderr
    sh(lab, host, ["git", "-C", WORKDIR, "fetch", "--quiet"])
    sh(lab, host, [DVC, "--cd", WORKDIR, "status", "--cloud"])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with own_lab(tmp_path_factory, "rotate", ["storage", *CLIENTS]) as (lab, home):
        (lab.dir / "host_vars").mkdir()
        (lab.dir / "host_vars" / "ws2.yml").write_text("access: read\n")
        bootstrap_and_onboard(lab, home, "--pull", dataset=True)
        with ArgvWatch() as watch:
            fleet = Fleet(lab, home, watch)
            fleet.remember_keys()
            yield fleet


@pytest.fixture(autouse=True)
def keys_in_use_after_a_failure(fleet: Fleet, request: pytest.FixtureRequest) -> Iterator[None]:
    """After a failed test the fleet may be half rotated: start every host, revoke nothing, rotate to the end."""
    yield
    if failed(request):
        for host in fleet.lab.hosts:
            fleet.lab.start(host)
        revoke_on_storage(fleet.lab, None)
        status, document = fleet.rotate()
        assert status == 0, failures(document)


def test_check_changes_nothing_and_lists_every_step(fleet: Fleet) -> None:
    lab = fleet.lab
    before = {host: host_snapshot(lab, host) for host in ("storage", *CLIENTS)}
    status, document = fleet.rotate("--check", "--diff")
    assert status == 0, failures(document)
    assert {host: host_snapshot(lab, host) for host in ("storage", *CLIENTS)} == before
    messages = " | ".join(t["msg"] for t in document["hosts"]["ws1"]["tasks"])
    assert f"would generate a new ed25519 key {NEW_KEY} beside {KEY}" in messages
    assert f"would move {NEW_KEY} to {KEY} (the old private key is deleted)" in messages
    storage = " | ".join(t["msg"] for t in document["hosts"]["storage"]["tasks"])
    assert "would authorize the new key beside the old one for ws1, ws2" in storage
    assert "would revoke the old key of ws1, ws2" in storage


def test_rotation_gives_every_client_a_new_key_and_retires_the_old(fleet: Fleet) -> None:
    lab = fleet.lab
    old = {host: keep_old_key(lab, host) for host in CLIENTS}
    status, document = fleet.rotate("--diff")
    assert status == 0, failures(document)
    for host in CLIENTS:
        assert_rotated(lab, host, old[host], read_only=host == "ws2")
        assert "storage refuses /root/.ssh/id_ed25519_demo for dvc, git" in task(document, host, "prove revoked")["msg"]
        assert "dvc status -c works with it" in task(document, host, "switch to new key")["msg"]
    assert "-keyfile = /root/.ssh/id_ed25519_demo\n+keyfile = /root/.ssh/id_ed25519_demo.new" in \
        task(document, "ws1", "switch to new key")["diff"]
    storage_diffs = "".join(t["diff"] for t in document["hosts"]["storage"]["tasks"])
    assert "ssh-ed25519 SHA256:" in storage_diffs and old["ws1"].split()[1] not in storage_diffs
    assert "key rotation: all 2 client(s) done" in task(document, "storage", "summary")["msg"]


def test_a_client_that_is_down_keeps_its_old_key_and_a_rerun_completes_it(fleet: Fleet) -> None:
    lab = fleet.lab
    old = {host: keep_old_key(lab, host) for host in CLIENTS}
    lab.stop("ws2")
    try:
        status, document = fleet.rotate("--timeout", "5")
    finally:
        lab.start("ws2")
    assert status == 4, failures(document)
    assert document["hosts"]["ws2"]["status"] == "unreachable"
    assert_rotated(lab, "ws1", old["ws1"], read_only=False)
    summary = task(document, "storage", "summary")["msg"]
    assert "not yet done: ws2 (unreachable)" in summary and "provision rotate keys --limit ws2" in summary
    assert public_key(lab, "ws2") == old["ws2"] and [old["ws2"] in line for line in lines(lab, "dvc", "ws2")] == [True]
    assert sftp(lab, "ws2", KEY).returncode == 0, "the old key keeps working"
    sh(lab, "ws2", [DVC, "--cd", WORKDIR, "status", "--cloud"])

    status, document = fleet.rotate("--limit", "ws2")
    assert status == 0, failures(document)
    assert set(document["hosts"]) == {"ws2", "storage"}
    assert_rotated(lab, "ws2", old["ws2"], read_only=True)


def revoke_on_storage(lab: Lab, public: str | None) -> None:
    """sshd's RevokedKeys list on storage: a key there is refused even where it is authorized."""
    if public is None:
        sh(lab, "storage", ["rm", "-f", REVOKED_DROP_IN, "/etc/ssh/revoked_keys"])
    else:
        sh(lab, "storage", ["sh", "-c", 'cat > "$1"', "sh", "/etc/ssh/revoked_keys"], input=public + "\n")
        sh(lab, "storage", ["sh", "-c", 'cat > "$1"', "sh", REVOKED_DROP_IN],
           input="RevokedKeys /etc/ssh/revoked_keys\n")
    sh(lab, "storage", ["sh", "-c", '/usr/sbin/sshd -t && kill -HUP "$(cat /run/sshd.pid)"'])


def test_a_refused_new_key_leaves_the_old_one_in_use_and_a_rerun_completes(fleet: Fleet) -> None:
    """ws1 holds a new key from an interrupted run; storage refuses it; then it does not."""
    lab = fleet.lab
    old = keep_old_key(lab, "ws1")
    sh(lab, "ws1", ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "provision:inventory:ws1", "-f", NEW_KEY])
    pending = public_key(lab, "ws1", NEW_KEY)
    fleet.remember_keys()
    revoke_on_storage(lab, pending)
    try:
        status, document = fleet.rotate("--limit", "ws1")
    finally:
        revoke_on_storage(lab, None)
    assert status == 2, failures(document)
    proof = task(document, "ws1", "prove new key")
    assert proof["status"] == "failed"
    assert "proof of the new key: sftp as dvc with /root/.ssh/id_ed25519_demo.new" in proof["msg"]
    assert "the old key /root/.ssh/id_ed25519_demo stays authorized and in use" in proof["msg"]
    assert "continuing the rotation begun earlier" in task(document, "ws1", "new key")["msg"]
    assert [t["status"] for t in document["hosts"]["ws1"]["tasks"]][-1] == "skipped"
    assert public_key(lab, "ws1") == old
    assert [old in line for line in lines(lab, "dvc", "ws1")] == [True, False], "old line kept, new one beside"
    listing = sh(lab, "ws1", [DVC, "--cd", WORKDIR, "config", "--list", "--show-origin"])
    assert f"config.local\tremote.data.keyfile={KEY}" in listing
    assert f"-i {KEY}" in sh(lab, "ws1", ["git", "-C", WORKDIR, "config", "core.sshCommand"])
    assert sftp(lab, "ws1", KEY).returncode == 0
    sh(lab, "ws1", [DVC, "--cd", WORKDIR, "status", "--cloud"])

    status, document = fleet.rotate("--limit", "ws1")
    assert status == 0, failures(document)
    assert_rotated(lab, "ws1", old, read_only=False)
    assert public_key(lab, "ws1") == pending, "the rerun finished the rotation with the key already made"


def test_no_private_key_in_any_argv_output_log_or_git_object(fleet: Fleet) -> None:
    """Runs last: every private key the clients held during the module (a rotation of its own at least),
    searched for everywhere."""
    lab = fleet.lab
    status, document = fleet.rotate()
    assert status == 0, failures(document)
    fleet.watch.stop()
    fleet.remember_keys()
    assert len(fleet.private_keys) >= 4  # the old and the new key of each client, more for earlier rotations
    material = {line for key in fleet.private_keys for line in key.splitlines() if "PRIVATE KEY" not in line}
    assert fleet.watch.sweeps > 100
    for fragment in ("ssh-keygen", "sftp", "dvc", "git"):
        assert fleet.watch.seen(fragment), f"the sampler never saw a {fragment!r} process"
    outputs = "\n".join(fleet.outputs)
    logs = "\n".join(lab.log_path(host).read_text(errors="replace") for host in lab.hosts)
    objects = [lab.exec("storage", as_user("git", script(ALL_OBJECTS, path))).stdout
               for path in ("/mnt/nfs/git/demo.git", "/mnt/nfs/demo")]
    objects += [lab.exec(host, script(ALL_OBJECTS, WORKDIR)).stdout for host in CLIENTS]
    assert all(dump.count("@@ ") >= 5 for dump in objects)
    for line in material:
        assert fleet.watch.containing(line) == [], "private key material was on a command line"
        assert line not in outputs and line not in logs
        assert not any(line in dump for dump in objects)
    assert "PRIVATE KEY" not in outputs + "".join(objects)
