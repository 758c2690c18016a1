"""Password remotes on real sshd, git and dvc: bootstrap, onboarding, rotations, and no secret anywhere.

One lab (storage, ws1 on `auth: password`, ws2 on keys) with the vault backend, so that the test can
read every value the tool stores. Every process's argv on the machine is sampled from before the first
bootstrap to the end of the module (tests/integration/argv_watch.py); the last test checks it, every
output, the sshd logs and every git object for every password the store ever held.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import pytest

from provision.connection import AccountLogin, HostKeyError
from provision.inventory import load_inventory
from provision.lab import Lab
from provision.remote import as_user, script
from provision.secrets import open_store
from provision.tasks.authorized_keys import SFTP_READ_WRITE_COMMAND
from tests.integration.argv_watch import ArgvWatch
from tests.integration.clirunner import provision
from tests.integration.helpers import (
    ALL_OBJECTS,
    DVC,
    KEY,
    WORKDIR,
    changed,
    failed,
    failures,
    host_snapshot,
    own_lab,
    password_login,
    password_works,
    put_dataset,
    sh,
    task,
    vault_settings,
)

pytestmark = pytest.mark.integration

DROP_IN = "/etc/ssh/sshd_config.d/10-provision-dvc.conf"
BROKEN_DROP_IN = "/etc/ssh/sshd_config.d/00-broken.conf"
PASSWORD_NAME = "inventory/all/storage_password"
NEXT_NAME = "inventory/all/storage_password.next"
VAULT_PASSWORD = "vault password for the password-remote lab"


@dataclass
class Site:
    """The lab, the environment the tool runs with, every run's output, every password seen."""

    lab: Lab
    home: Path
    env: dict[str, str]
    watch: ArgvWatch
    runs: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    passwords: set[str] = field(default_factory=set)

    def run(self, label: str, *args: str, stdin: str | None = None) -> tuple[int, dict[str, Any]]:
        """`provision ARGS --json`, its output kept for the final search."""
        done = provision(*args, "--json", home=self.home, env=self.env, stdin=stdin)
        self.outputs += [done.stdout, done.stderr]
        try:
            result = done.returncode, json.loads(done.stdout)
        except json.JSONDecodeError as error:
            raise AssertionError(f"{label}: not one JSON document: {done.stdout!r}\n{done.stderr}") from error
        self.runs[label] = result
        self.remember_passwords()
        return result

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """A command without --json (secrets ...), its output kept too."""
        done = provision(*args, home=self.home, env=self.env, stdin=stdin)
        self.outputs += [done.stdout, done.stderr]
        return done

    def secret(self, name: str) -> str | None:
        store = open_store(self.lab.inventory_path, "inventory", backend="vault",
                           vault_password=VAULT_PASSWORD.encode())
        return store.get(name)

    def remember_passwords(self) -> None:
        for name in (PASSWORD_NAME, NEXT_NAME):
            value = self.secret(name)
            if value:
                self.passwords.add(value)


def config_local(lab: Lab, host: str) -> str:
    return sh(lab, host, ["cat", f"{WORKDIR}/.dvc/config.local"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Bootstrapped (checked first, with a dataset, rerun) and onboarded (checked first, with --pull, rerun)."""
    with ArgvWatch() as watch, own_lab(tmp_path_factory, "password", ["storage", "ws1", "ws2"]) as (lab, home):
        (lab.dir / "host_vars").mkdir()
        (lab.dir / "host_vars" / "ws1.yml").write_text("auth: password\n")
        site = Site(lab, home, vault_settings(home, VAULT_PASSWORD), watch)
        inventory = str(lab.inventory_path)
        site.runs["storage before check"] = (0, {"snapshot": host_snapshot(lab, "storage"),
                                                 "files": sorted(path.name for path in lab.dir.iterdir())})
        site.run("bootstrap check", "bootstrap", "-i", inventory, "--check", "--diff")
        site.runs["storage after check"] = (0, {"snapshot": host_snapshot(lab, "storage"),
                                                "files": sorted(path.name for path in lab.dir.iterdir())})
        site.run("bootstrap", "bootstrap", "-i", inventory, "--diff")
        put_dataset(lab)
        site.run("bootstrap data", "bootstrap", "-i", inventory, "--data", "data", "--tag", "v1.0")
        site.run("bootstrap rerun", "bootstrap", "-i", inventory)
        site.runs["ws1 before check"] = (0, {"snapshot": host_snapshot(lab, "ws1")})
        site.run("onboard check", "onboard", "-i", inventory, "--check", "--diff", "--pull")
        site.runs["ws1 after check"] = (0, {"snapshot": host_snapshot(lab, "ws1")})
        site.run("onboard", "onboard", "-i", inventory, "--diff", "--pull")
        site.run("onboard rerun", "onboard", "-i", inventory, "--pull")
        yield site


@pytest.fixture(autouse=True)
def password_client_after_a_failure(site: Site, request: pytest.FixtureRequest) -> Iterator[None]:
    """After a failed test: every host started, ws1 on `auth: password` again, no broken sshd drop-in, storage
    and clients converged (a rotation left half done is finished), so that the next test starts as the
    module began."""
    yield
    if failed(request):
        lab, inventory = site.lab, str(site.lab.inventory_path)
        for host in lab.hosts:
            lab.start(host)
        (lab.dir / "host_vars" / "ws1.yml").write_text("auth: password\n")
        sh(lab, "storage", ["rm", "-f", BROKEN_DROP_IN])
        for label, args in (("put back: bootstrap", ("bootstrap", "-i", inventory)),
                            ("put back: rotate", ("rotate", "password", "-i", inventory)),
                            ("put back: onboard", ("onboard", "-i", inventory))):
            status, document = site.run(label, *args)
            assert status == 0, failures(document)


def test_bootstrap_check_changes_nothing_and_stores_nothing(site: Site) -> None:
    status, document = site.runs["bootstrap check"]
    assert status == 0, failures(document)
    assert site.runs["storage after check"][1] == site.runs["storage before check"][1], "no host or store change"
    assert "inventory.vault" not in site.runs["storage after check"][1]["files"]
    messages = " | ".join(t["msg"] for t in document["hosts"]["storage"]["tasks"])
    assert f"would generate {PASSWORD_NAME}, store it, set it as dvc's password" in messages
    assert f"would create {DROP_IN}" in messages
    assert "+Match User dvc" in task(document, "storage", "sshd settings of dvc")["diff"]


def test_bootstrap_lets_dvc_alone_log_in_with_the_stored_password(site: Site) -> None:
    lab = site.lab
    status, document = site.runs["bootstrap"]
    assert status == 0, failures(document)
    proof = task(document, "storage", "password of dvc")
    assert proof["changed"] and "dvc logs in with inventory/all/storage_password (fresh login" in proof["msg"]
    status, document = site.runs["bootstrap rerun"]
    assert status == 0 and changed(document) == 0, failures(document)
    assert "fresh login" in task(document, "storage", "password of dvc")["msg"]
    assert sh(lab, "storage", ["stat", "-c", "%U %G %a", DROP_IN]).split() == ["root", "root", "644"]
    assert "Match User dvc" in sh(lab, "storage", ["cat", DROP_IN])

    def effective(user: str) -> dict[str, str]:
        text = sh(lab, "storage", ["sshd", "-T", "-C", f"user={user},host=ws1,addr=127.0.0.1"])
        return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)

    assert effective("dvc")["passwordauthentication"] == "yes"
    assert effective("dvc")["forcecommand"] == SFTP_READ_WRITE_COMMAND
    assert effective("dvc")["chrootdirectory"] == "/mnt/nfs"
    for user in ("git", "root", lab.admin_user):
        assert effective(user)["passwordauthentication"] == "no"
        assert effective(user)["forcecommand"] == "none"
    hashes = {user: sh(lab, "storage", ["getent", "shadow", user]).split(":")[1] for user in ("dvc", "git")}
    assert hashes["git"] == "*" and hashes["dvc"].startswith("$")


def test_a_password_session_is_sftp_only_and_no_other_account_takes_a_password(site: Site) -> None:
    lab = site.lab
    password = site.secret(PASSWORD_NAME)
    assert password
    client = password_login(lab, "dvc", password)
    try:
        sftp = client.open_sftp()
        assert "files" in sftp.listdir("/cache")  # dvc_storage inside the chroot, and nothing else readable
        for elsewhere in ("/etc", "/mnt/nfs/cache", "/demo", "/git"):
            with pytest.raises(OSError):
                sftp.listdir(elsewhere)
        _, stdout, stderr = client.exec_command("id")
        output = stdout.read() + stderr.read()
        assert b"uid=" not in output
        with pytest.raises(paramiko.ChannelException):
            client.get_transport().open_channel("direct-tcpip", ("127.0.0.1", lab.port("ws1")), ("127.0.0.1", 0))
    finally:
        client.close()
    with pytest.raises(paramiko.BadAuthenticationType):
        password_login(lab, "git", password)
    assert not password_works(lab, password + "x")


def test_onboard_puts_the_password_only_into_config_local_and_pulls_with_it(site: Site) -> None:
    lab = site.lab
    status, document = site.runs["onboard check"]
    assert status == 0, failures(document)
    assert site.runs["ws1 after check"][1]["snapshot"] == site.runs["ws1 before check"][1]["snapshot"]
    status, document = site.runs["onboard"]
    assert status == 0, failures(document)
    config = task(document, "ws1", "dvc config.local")
    assert "verifies no host key" in config["msg"] and "key auth is safer" in config["msg"]
    assert "+password = ********" in config["diff"]
    status, document = site.runs["onboard rerun"]
    assert status == 0 and changed(document) == 0, failures(document)

    password = site.secret(PASSWORD_NAME)
    listing = sh(lab, "ws1", [DVC, "--cd", WORKDIR, "config", "--list", "--show-origin"])
    assert f"config.local\tremote.data.password={password}" in listing
    assert "remote.data.keyfile" not in listing
    assert sh(lab, "ws1", ["stat", "-c", "%U %a", f"{WORKDIR}/.dvc/config.local"]).split() == ["root", "600"]
    assert "keyfile = " in config_local(lab, "ws2") and "password" not in config_local(lab, "ws2")
    assert sh(lab, "ws1", ["cat", f"{WORKDIR}/data/hello.txt"]) == "hello v1\n"
    assert "Accepted password for dvc" in lab.log_path("storage").read_text()


def rotate_password(site: Site, label: str, *args: str) -> tuple[int, dict[str, Any]]:
    return site.run(label, "rotate", "password", "-i", str(site.lab.inventory_path), "--diff", *args)


def test_rotate_password_end_to_end(site: Site) -> None:
    lab = site.lab
    old = site.secret(PASSWORD_NAME)
    vault, before = lab.dir / "inventory.vault", config_local(lab, "ws1")
    stored = vault.read_bytes()
    status, document = rotate_password(site, "rotate password --check", "--check")
    assert status == 0, failures(document)
    assert "would generate inventory/all/storage_password.next" in task(document, "storage",
                                                                        "rotate password of dvc")["msg"]
    assert "would write the new storage_password" in task(document, "ws1", "dvc config.local")["msg"]
    assert vault.read_bytes() == stored and config_local(lab, "ws1") == before and password_works(lab, old or "")

    status, document = rotate_password(site, "rotate password")
    assert status == 0, failures(document)
    new = site.secret(PASSWORD_NAME)
    assert new and new != old and site.secret(NEXT_NAME) is None
    assert password_works(lab, new) and not password_works(lab, old or "")
    assert f"password = {new}" in config_local(lab, "ws1")
    assert "password = ********" in task(document, "ws1", "dvc config.local")["diff"]
    assert "dvc status -c works" in task(document, "ws1", "prove dvc")["msg"]
    assert "all 1 client(s) done" in task(document, "storage", "summary")["msg"]
    sh(lab, "ws1", [DVC, "--cd", WORKDIR, "status", "--cloud"])


def test_an_interrupted_rotation_continues_with_the_stored_next_value(site: Site) -> None:
    lab, inventory = site.lab, str(site.lab.inventory_path)
    pending = "next-value-left-by-an-interrupted-run-1"
    assert site.cli("secrets", "set", "-i", inventory, NEXT_NAME, stdin=pending + "\n").returncode == 0
    site.passwords.add(pending)
    status, document = rotate_password(site, "rotate password, .next stored")
    assert status == 0, failures(document)
    assert "continuing the rotation begun earlier" in task(document, "storage", "rotate password of dvc")["msg"]
    assert site.secret(PASSWORD_NAME) == pending and site.secret(NEXT_NAME) is None
    assert password_works(lab, pending) and f"password = {pending}" in config_local(lab, "ws1")

    accepted = "next-value-storage-took-already-2"
    site.passwords.add(accepted)
    assert site.cli("secrets", "set", "-i", inventory, NEXT_NAME, stdin=accepted + "\n").returncode == 0
    sh(lab, "storage", ["chpasswd"], input=f"dvc:{accepted}\n")
    status, document = rotate_password(site, "rotate password, .next set on storage")
    assert status == 0, failures(document)
    rotation = task(document, "storage", "rotate password of dvc")
    assert "storage already accepts inventory/all/storage_password.next" in rotation["msg"]
    assert rotation["msg"].startswith(f"promote {NEXT_NAME} to {PASSWORD_NAME}")
    assert site.secret(PASSWORD_NAME) == accepted and f"password = {accepted}" in config_local(lab, "ws1")


def test_a_client_down_during_rotation_is_listed_then_brought_up_to_date(site: Site) -> None:
    lab = site.lab
    lab.stop("ws1")
    try:
        status, document = rotate_password(site, "rotate password, ws1 down", "--timeout", "5")
    finally:
        lab.start("ws1")
    assert status == 4, failures(document)
    assert document["hosts"]["ws1"]["status"] == "unreachable"
    summary = task(document, "storage", "summary")["msg"]
    assert "not yet done: ws1 (unreachable)" in summary and "provision rotate password --limit ws1" in summary
    current = site.secret(PASSWORD_NAME)
    assert current and f"password = {current}" not in config_local(lab, "ws1")

    status, document = rotate_password(site, "rotate password --limit ws1", "--limit", "ws1")
    assert status == 0, failures(document)
    assert "storage" not in document["hosts"], "storage is outside --limit: no second rotation"
    assert site.secret(PASSWORD_NAME) == current and f"password = {current}" in config_local(lab, "ws1")
    sh(lab, "ws1", [DVC, "--cd", WORKDIR, "pull"])


def test_rotate_keys_of_a_password_client_keeps_its_password(site: Site) -> None:
    lab = site.lab
    before = lab.host_path("ws1", f"{KEY}.pub").read_text()
    status, document = site.run("rotate keys", "rotate", "keys", "-i", str(lab.inventory_path), "--diff")
    assert status == 0, failures(document)
    assert lab.host_path("ws1", f"{KEY}.pub").read_text() != before
    assert f"password = {site.secret(PASSWORD_NAME)}" in config_local(lab, "ws1")
    sh(lab, "ws1", [DVC, "--cd", WORKDIR, "status", "--cloud"])


def test_the_password_login_takes_the_route_and_pins_of_every_connection(site: Site, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """storage behind a ProxyJump host (ws2, reached with the controller's key): the stored password logs in
    and lists dvc_storage, a wrong one is refused; without the jump host's pin the chain stops there."""
    lab = site.lab
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(
        f"Host jumpbox\n  HostName 127.0.0.1\n  Port {lab.port('ws2')}\n  User root\n"
        f"  IdentityFile {lab.controller_key}\n"
        f"Host storage-behind\n  HostName 127.0.0.1\n  Port {lab.port('storage')}\n  ProxyJump jumpbox\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    inventory = tmp_path / "jump.yml"
    inventory.write_text("all:\n  children:\n    storage:\n      hosts:\n        storage-behind: {}\n")
    pins = tmp_path / "jump.known_hosts"
    shutil.copy(lab.known_hosts_path, pins)
    login = AccountLogin(load_inventory(inventory).storage, pins, timeout=10)
    directory = load_inventory(lab.inventory_path).storage.settings.sftp_dvc_storage
    assert "password" in login.offered_methods("dvc")
    assert login.password_accepted("dvc", site.secret(PASSWORD_NAME) or "", directory)
    assert not login.password_accepted("dvc", "not-the-password-1234", directory)
    jump_pin = f"[127.0.0.1]:{lab.port('ws2')} "
    pins.write_text("".join(line for line in pins.read_text().splitlines(keepends=True)
                            if not line.startswith(jump_pin)))
    with pytest.raises(HostKeyError, match="not pinned"):
        login.password_accepted("dvc", site.secret(PASSWORD_NAME) or "", directory)


def test_without_password_clients_bootstrap_takes_the_password_login_away(site: Site) -> None:
    lab, inventory = site.lab, str(site.lab.inventory_path)
    (lab.dir / "host_vars" / "ws1.yml").unlink()
    status, document = site.run("bootstrap, no password client", "bootstrap", "-i", inventory, "--diff")
    assert status == 0, failures(document)
    assert "-\tPasswordAuthentication yes" in task(document, "storage", "sshd settings of dvc")["diff"]
    drop_in = sh(lab, "storage", ["cat", DROP_IN])
    assert "ChrootDirectory /mnt/nfs" in drop_in and "Password" not in drop_in and "ForceCommand" not in drop_in
    assert sh(lab, "storage", ["getent", "shadow", "dvc"]).split(":")[1] == "*"
    with pytest.raises(paramiko.BadAuthenticationType):
        password_login(lab, "dvc", site.secret(PASSWORD_NAME) or "")
    status, document = site.run("onboard, keys again", "onboard", "-i", inventory, "ws1")
    assert status == 0, failures(document)
    assert "password" not in config_local(lab, "ws1") and f"keyfile = {KEY}" in config_local(lab, "ws1")
    status, document = site.run("bootstrap rerun, no password client", "bootstrap", "-i", inventory)
    assert status == 0 and changed(document) == 0, failures(document)


def test_a_drop_in_sshd_refuses_is_rolled_back_on_the_host(site: Site) -> None:
    lab, inventory = site.lab, str(site.lab.inventory_path)
    (lab.dir / "host_vars" / "ws1.yml").write_text("auth: password\n")
    sh(lab, "storage", ["sh", "-c", 'echo "# edited by hand" >> "$1"', "sh", DROP_IN])  # bootstrap must rewrite it
    before = sh(lab, "storage", ["cat", DROP_IN])
    lab.exec("storage", ["sh", "-c", 'echo "NoSuchKeyword yes" > "$1"', "sh", BROKEN_DROP_IN])
    try:
        status, document = site.run("bootstrap, sshd refuses", "bootstrap", "-i", inventory)
        assert status == 2
        message = task(document, "storage", "sshd settings of dvc")["msg"]
        assert "sshd -t refused the configuration" in message and "put back" in message
        assert sh(lab, "storage", ["cat", DROP_IN]) == before
        leftovers = sh(lab, "storage", ["ls", "-a", "/etc/ssh/sshd_config.d"]).split()
        assert sorted(leftovers) == [".", "..", "00-broken.conf", "10-provision-dvc.conf"]
    finally:
        lab.exec("storage", ["rm", "-f", BROKEN_DROP_IN])
    status, document = site.run("bootstrap, sshd accepts again", "bootstrap", "-i", inventory)
    assert status == 0, failures(document)
    assert password_works(lab, site.secret(PASSWORD_NAME) or "")


def test_no_secret_in_any_argv_output_log_or_git_object(site: Site) -> None:
    """Runs last: every password the store held (a rotation of its own at least), searched for everywhere it
    must never be."""
    lab = site.lab
    status, document = rotate_password(site, "rotate password, last")
    assert status == 0, failures(document)
    site.watch.stop()
    secrets = {value for value in site.passwords if value} | {VAULT_PASSWORD}
    assert len(site.passwords) >= 2  # bootstrap's and this rotation's, more for the tests before
    assert site.watch.sweeps > 100
    for fragment in ("sshd: ", "dvc", "git", "sftp", "provision"):
        assert site.watch.seen(fragment), f"the sampler never saw a {fragment!r} process"
    for value in secrets:
        assert site.watch.containing(value) == [], "a secret was on a command line"
    outputs = "\n".join(site.outputs)
    logs = "\n".join(lab.log_path(host).read_text(errors="replace") for host in lab.hosts)
    objects = [lab.exec("storage", as_user("git", script(ALL_OBJECTS, path))).stdout
               for path in ("/mnt/nfs/git/demo.git", "/mnt/nfs/demo")]
    objects += [lab.exec(host, script(ALL_OBJECTS, WORKDIR)).stdout for host in ("ws1", "ws2")]
    assert all(dump.count("@@ ") >= 5 for dump in objects)
    for value in secrets:
        assert value not in outputs, "a secret reached the tool's output"
        assert value not in logs, "a secret reached an sshd log"
        assert not any(value in dump for dump in objects), "a secret reached a git object"
    assert "********" in outputs
