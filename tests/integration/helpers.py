"""What several lab test modules share: labs of their own, commands in lab hosts, the tool's JSON documents."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paramiko
import pytest
import yaml

from provision.errors import ProvisionError
from provision.lab import Lab, require_prerequisites
from tests.integration.clirunner import provision, provision_json

#: Where the lab inventory's defaults put a client's key, checkout and dvc (clients log in as root).
KEY = "/root/.ssh/id_ed25519_demo"
WORKDIR = "/root/demo"
DVC = "/usr/local/bin/dvc"
SNAPSHOT_DIRS = ["/etc", "/root", "/home", "/tmp", "/var/tmp", "/opt", "/usr/local", "/mnt/nfs"]
# Every object of a repository, printed, to look for credentials in any of them.
ALL_OBJECTS = """
set -eu
cd "$1"
git rev-list --all --objects | cut -d' ' -f1 | while read -r object; do
  printf '@@ %s %s\\n' "$object" "$(git cat-file -t "$object")"
  git cat-file -p "$object"
done
"""

# $1 bare repository, $2 the DVC remote's directory: every tag's .dvc outputs (for a directory, its .dir
# object) must be in the remote. Prints what is missing; fails when the tags cannot be read.
MISSING_TAGGED_DATA = r"""
set -eu
cd "$1"
tags=$(git tag)
for tag in $tags; do
  for file in $(git ls-tree -r --name-only "$tag" | grep '\.dvc$'); do
    for md5 in $(git show "$tag:$file" | sed -n 's/^ *- *md5: *//p; s/^ *md5: *//p'); do
      object="$2/files/md5/$(printf %s "$md5" | cut -c1-2)/$(printf %s "$md5" | cut -c3-)"
      [ -e "$object" ] || echo "$tag $file $md5"
    done
  done
done
"""


#: Set on a test's item when any of its phases failed (tests/integration/conftest.py records it).
FAILED = pytest.StashKey[bool]()


def failed(request: pytest.FixtureRequest) -> bool:
    """Whether the test that requested a fixture failed: its lab may be left half changed."""
    return request.node.stash.get(FAILED, False)


def require_lab() -> None:
    """Integration tests must run (docs/architecture.md, Tests): a machine that cannot host the lab is a failure."""
    try:
        require_prerequisites()
    except ProvisionError as error:
        pytest.fail(f"the integration tests need the lab: {error}", pytrace=False)


@contextmanager
def own_lab(tmp_path_factory: pytest.TempPathFactory, name: str, hosts: Sequence[str]) -> Iterator[tuple[Lab, Path]]:
    """A module's own lab of `hosts` and a HOME for the tool; the lab is torn down afterwards."""
    require_lab()
    lab = Lab(tmp_path_factory.mktemp(f"{name}-lab"))
    home = tmp_path_factory.mktemp(f"{name}-home")
    try:
        lab.up(list(hosts))
        yield lab, home
    finally:
        if lab.exists:
            lab.down()


#: The host lock's directory in a connecting user's home (provision.host_lock), and a home's own line.
LOCK_BOOKKEEPING = re.compile(r"/\.provision(/| |$)")
HOME_LINE = re.compile(r"^(/root|/home/[^/ ]+) ")


def host_snapshot(lab: Lab, host: str) -> str:
    """Every file's path, owner, mode and checksum in a host's private directories.

    The run's host lock (`~/.provision`, made by the first run that changes the host, even one refused
    later) is bookkeeping, not host state: it and the modification time of the home holding it are left out.
    """
    listing = lab.exec(host, ["find", *SNAPSHOT_DIRS, "-xdev", "-printf", "%p %u %g %m %s %T@\\n"]).stdout
    sums = lab.exec(host, ["find", *SNAPSHOT_DIRS, "-xdev", "-type", "f", "-exec", "sha256sum", "{}", "+"]).stdout
    lines = [line.rsplit(" ", 1)[0] + "\n" if HOME_LINE.match(line) else line
             for line in (listing + sums).splitlines(keepends=True) if not LOCK_BOOKKEEPING.search(line)]
    return "".join(lines)


def admin_inventory(lab: Lab, tmp_path: Path, hosts: set[str]) -> Path:
    """The lab's inventory with `hosts` reached as the unprivileged admin through sudo."""
    data = yaml.safe_load(lab.inventory_path.read_text())
    for group in data["all"]["children"].values():
        for name, host_vars in group["hosts"].items():
            if name in hosts:
                host_vars.update({"ansible_user": lab.admin_user, "ansible_become": True,
                                  "ansible_ssh_private_key_file": str(lab.admin_key)})
    inventory = tmp_path / "admin.yml"
    inventory.write_text(yaml.safe_dump(data))
    shutil.copy(lab.known_hosts_path, tmp_path / "admin.known_hosts")
    return inventory


def become_admin(lab: Lab, home: Path, hosts: set[str],
                 env: dict[str, str] | None = None) -> tuple[Path, dict[str, str]]:
    """`admin_inventory` in `home`, with the admin's sudo password stored as become_password in the vault
    (`env`'s, else a new one in `home`): the inventory and the environment that opens the vault."""
    inventory = admin_inventory(lab, home, hosts)
    env = env or vault_settings(home)
    stored = provision("secrets", "set", "-i", str(inventory), "--scope", "all", "become_password", home=home,
                       env=env, stdin=lab.admin_password_file.read_text())
    assert stored.returncode == 0, stored.stderr
    return inventory, env


def vault_settings(directory: Path, password: str = "correct horse battery staple") -> dict[str, str]:
    """The environment that makes the tool keep its secrets in the vault, opened with `password`."""
    password_file = directory / "vault-password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    return {"PROVISION_SECRETS_BACKEND": "vault", "PROVISION_VAULT_PASSWORD_FILE": str(password_file)}


def run(lab: Lab, host: str, argv: Sequence[str], *, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """argv inside a lab host as root; fails the test when it fails."""
    done = lab.exec(host, list(argv), input=input)
    assert done.returncode == 0, f"{host}: {argv}: {done.stdout}{done.stderr}"
    return done


def sh(lab: Lab, host: str, argv: Sequence[str], *, input: str | None = None) -> str:
    """The output of `run`."""
    return run(lab, host, argv, input=input).stdout


def put_dataset(lab: Lab, *, blob: bool = False) -> None:
    """The dataset `data` in the server repository, owned by git: hello.txt (and 20000 random bytes)."""
    sh(lab, "storage", ["mkdir", "-p", "/mnt/nfs/demo/data"])
    sh(lab, "storage", ["sh", "-c", 'cat > "$1"', "sh", "/mnt/nfs/demo/data/hello.txt"], input="hello v1\n")
    if blob:
        sh(lab, "storage", ["sh", "-c", 'head -c 20000 /dev/urandom > "$1"', "sh", "/mnt/nfs/demo/data/blob.bin"])
    sh(lab, "storage", ["chown", "-R", "git:dvc", "/mnt/nfs/demo/data"])


def bootstrap_storage(lab: Lab, home: Path, *, env: dict[str, str] | None = None) -> None:
    """The storage as `provision bootstrap` makes it (the run must succeed)."""
    done = provision("bootstrap", "-i", str(lab.inventory_path), home=home, env=env)
    assert done.returncode == 0, done.stdout + done.stderr


def bootstrap_with_dataset(lab: Lab, home: Path, *, blob: bool = False, env: dict[str, str] | None = None) -> None:
    """The storage as `provision bootstrap` makes it, with a first dataset tagged v1.0."""
    bootstrap_storage(lab, home, env=env)
    put_dataset(lab, blob=blob)
    done = provision("bootstrap", "-i", str(lab.inventory_path), "--data", "data", "--tag", "v1.0", home=home,
                     env=env)
    assert done.returncode == 0, done.stdout + done.stderr


def onboard(lab: Lab, home: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """`provision onboard ARGS --json` on the lab's inventory: its exit status and document."""
    return provision_json("onboard", "-i", str(lab.inventory_path), *args, home=home)


def bootstrap_and_onboard(lab: Lab, home: Path, *onboard_args: str, dataset: bool = False) -> dict[str, Any]:
    """Storage bootstrapped (with the dataset tagged v1.0 when `dataset`), then `onboard ONBOARD_ARGS`:
    both must succeed; the onboard's --json document."""
    if dataset:
        bootstrap_with_dataset(lab, home)
    else:
        bootstrap_storage(lab, home)
    status, document = onboard(lab, home, *onboard_args)
    assert status == 0, failures(document)
    return document


@contextmanager
def when_file_appears(path: Path, action: Callable[[], None]) -> Iterator[threading.Event]:
    """Run `action` once, in a thread, as soon as `path` exists (a fault injected at that moment of a run);
    the event is set once it ran, and on leaving."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            if path.exists():
                action()
                done.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield done
    finally:
        done.set()
        watcher.join()


def changed(document: dict[str, Any]) -> int:
    """Changed tasks over all hosts of a `--json` document."""
    return sum(stats["changed"] for stats in document["stats"].values())


def failures(document: dict[str, Any]) -> dict[str, list[str]]:
    """Every task that did not end ok or changed, for assertion messages."""
    return {host: [f"{t['name']}: {t['status']}: {t['msg']}" for t in result["tasks"]
                   if t["status"] not in ("ok", "changed")]
            for host, result in document["hosts"].items() if result["status"] not in ("ok", "changed")}


def task(document: dict[str, Any], host: str, name: str) -> dict[str, Any]:
    """One host's task of that name in a `--json` document."""
    return next(t for t in document["hosts"][host]["tasks"] if t["name"] == name)


def client_ssh_options(key: str = KEY) -> list[str]:
    """OpenSSH options on a client that use only `key` and check storage against the client's pins."""
    return ["-F", "/dev/null", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "UserKnownHostsFile=/root/.ssh/known_hosts", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-i", key]


def client_sftp(lab: Lab, user: str, key: str = KEY) -> list[str]:
    """sftp from a client to storage as `user` with only `key`; the batch comes on stdin."""
    return ["sftp", "-b", "-", *client_ssh_options(key), "-P", str(lab.port("storage")), f"{user}@127.0.0.1"]


def authorized_keys(lab: Lab, account: str) -> list[str]:
    """The lines of a storage account's authorized_keys, split as sshd splits them (on newlines only)."""
    data = lab.host_path("storage", f"/home/{account}/.ssh/authorized_keys").read_bytes()
    return data.decode(errors="surrogateescape").split("\n")[:-1]


def marked(lines: list[str], client: str) -> list[str]:
    """The lines of the lab inventory's `client`."""
    return [line for line in lines if line.endswith(f" provision:inventory:{client}")]


def public_key(lab: Lab, host: str, path: str = KEY) -> str:
    """`type base64` of a client's public key file."""
    return " ".join(lab.host_path(host, f"{path}.pub").read_text().split()[:2])


def assert_key_in_use(lab: Lab, host: str, key: str = KEY) -> str:
    """The client's key pair is whole, storage authorizes its public key alone for the client (one line per
    account), config.local names it and SFTP to storage works with it; returns the public key."""
    public = public_key(lab, host, key)
    assert " ".join(sh(lab, host, ["ssh-keygen", "-y", "-f", key]).split()[:2]) == public, "a whole key pair"
    for account in ("dvc", "git"):
        lines = marked(authorized_keys(lab, account), host)
        assert len(lines) == 1 and public in lines[0], (host, account, lines)
    listing = sh(lab, host, [DVC, "--cd", WORKDIR, "config", "--list", "--show-origin"])
    assert f"config.local\tremote.data.keyfile={key}" in listing
    reached = lab.exec(host, client_sftp(lab, "dvc", key), input="ls /cache\n")
    assert reached.returncode == 0, reached.stderr
    return public


def missing_tagged_data(lab: Lab) -> str:
    """Every tag of git_remote whose .dvc outputs are not in the DVC remote, one per line (nothing: all there)."""
    return sh(lab, "storage", ["runuser", "-u", "git", "--", "sh", "-c", MISSING_TAGGED_DATA, "sh",
                               "/mnt/nfs/git/demo.git", "/mnt/nfs/cache"])


def password_login(lab: Lab, user: str, password: str) -> paramiko.SSHClient:
    """A password login to storage from the controller, host key pinned, nothing but the password."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", lab.port("storage"), username=user, password=password, look_for_keys=False,
                   allow_agent=False, timeout=10)
    return client


def password_works(lab: Lab, password: str) -> bool:
    """Whether storage_user (dvc) logs in to storage with `password`."""
    try:
        password_login(lab, "dvc", password).close()
    except paramiko.AuthenticationException:
        return False
    return True
