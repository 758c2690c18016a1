"""`provision bootstrap` on real OpenSSH hosts with real git and dvc: the storage server side."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.lab import Lab
from provision.remote import as_user, script
from tests.integration.clirunner import provision, provision_json
from tests.integration.helpers import ALL_OBJECTS, admin_inventory, host_snapshot, own_lab

pytestmark = pytest.mark.integration

NFS = "/mnt/nfs"
CACHE = f"{NFS}/cache"
BARE = f"{NFS}/git/demo.git"
SERVER = f"{NFS}/demo"
# Makes a small dataset as git (the account that owns the server repository).
MAKE_DATASET = """
umask 002
cd "$1"
mkdir -p data/images
for i in 1 2 3; do printf 'id,value\\n%s,%s\\n' "$i" "$((i * 7))" > "data/part$i.csv"; done
head -c 65536 /dev/urandom > data/images/blob.bin
"""
# Clones git_remote afresh as git, checks out v1.0 and pulls the data from the local remote path.
FRESH_CLONE = """
set -eu
cd /tmp
rm -rf fresh
git clone --quiet "$1" fresh
cd fresh
git tag --list
git checkout --quiet v1.0
dvc remote modify --local data url "$2"
DVC_NO_ANALYTICS=1 dvc pull --quiet
cat data/part2.csv
"""


def as_account(lab: Lab, user: str, body: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a constant script as a service account on the storage host, values as "$1"...."""
    return lab.exec("storage", as_user(user, script(body, *args)))


def stat(lab: Lab, path: str) -> str:
    return lab.exec("storage", ["stat", "-c", "%U %G %a", path]).stdout.strip()


def changed(document: dict[str, Any]) -> int:
    return document["stats"]["storage"]["changed"]


def bootstrap(lab: Lab, home: Path, *args: str, inventory: Path | None = None,
              env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    return provision_json("bootstrap", "-i", str(inventory or lab.inventory_path), *args, home=home, env=env)


def inventory_with(lab: Lab, tmp_path: Path, **variables: Any) -> Path:
    """A copy of the lab's inventory (with its pins) with extra vars for all hosts."""
    data = yaml.safe_load(lab.inventory_path.read_text())
    data["all"]["vars"].update(variables)
    inventory = tmp_path / "site.yml"
    inventory.write_text(yaml.safe_dump(data))
    shutil.copy(lab.known_hosts_path, tmp_path / "site.known_hosts")
    return inventory


def client_key(tmp_path: Path, name: str) -> Path:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def authorize(lab: Lab, user: str, options: str, key: Path) -> None:
    """Append a key line to a service account's root-owned authorized_keys, as onboarding will."""
    line = f"{options} {key.with_name(key.name + '.pub').read_text().strip()}\n"
    appended = lab.exec("storage", ["sh", "-c", 'cat >> "$1"', "append", f"/home/{user}/.ssh/authorized_keys"],
                        input=line)
    assert appended.returncode == 0, appended.stderr


def ssh_options(lab: Lab, key: Path) -> list[str]:
    return ["-F", "/dev/null", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={lab.known_hosts_path}", "-i", str(key)]


@pytest.fixture(scope="module")
def storage_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, dict[str, Any]]]:
    """A fresh storage host, bootstrapped, then bootstrapped again with a dataset tagged v1.0."""
    with own_lab(tmp_path_factory, "bootstrap", ["storage"]) as (lab, home):
        runs: dict[str, Any] = {"home": home}
        runs["first"] = bootstrap(lab, home)
        made = as_account(lab, "git", MAKE_DATASET, SERVER)
        assert made.returncode == 0, made.stderr
        runs["data"] = bootstrap(lab, home, "--data", "data", "--tag", "v1.0")
        yield lab, runs


def test_first_runs_change_and_rerun_changes_nothing(storage_lab) -> None:
    lab, runs = storage_lab
    status, document = runs["first"]
    assert status == 0, document
    tasks = {t["name"]: t for t in document["hosts"]["storage"]["tasks"]}
    assert "filesystem" in tasks[f"export {NFS}"]["msg"]
    assert "git version 2." in tasks["git"]["msg"]
    assert "dvc 3." in tasks["dvc"]["msg"]
    assert tasks[f"server repository {SERVER}"]["changed"]
    status, document = runs["data"]
    assert status == 0, document
    assert [t["name"] for t in document["hosts"]["storage"]["tasks"] if t["changed"]] == ["dataset data v1.0"]
    status, document = bootstrap(lab, runs["home"], "--data", "data", "--tag", "v1.0")
    assert status == 0 and changed(document) == 0, document
    status, document = bootstrap(lab, runs["home"])
    assert status == 0 and changed(document) == 0, document


def test_accounts_group_and_dvc_link(storage_lab) -> None:
    lab, _ = storage_lab
    assert lab.exec("storage", ["getent", "group", "dvc"]).returncode == 0
    for user, shell in (("dvc", "/usr/sbin/nologin"), ("git", "/usr/bin/git-shell")):
        entry = lab.exec("storage", ["getent", "passwd", user]).stdout.strip().split(":")
        assert entry[5] == f"/home/{user}" and entry[6] == shell
        assert lab.exec("storage", ["getent", "shadow", user]).stdout.split(":")[1] == "*"
        assert "dvc" in lab.exec("storage", ["id", "-nG", user]).stdout.split()
        assert stat(lab, f"/home/{user}") == "root root 755"
        assert stat(lab, f"/home/{user}/.ssh") == "root root 755"
        assert stat(lab, f"/home/{user}/.ssh/authorized_keys") == "root root 644"
    assert stat(lab, "/home/git/git-shell-commands") == "root root 755"
    for helper in ("git-shell", "no-interactive-login"):
        assert stat(lab, f"/home/git/git-shell-commands/{helper}") == "root root 755"
    assert lab.exec("storage", ["readlink", "/usr/local/bin/dvc"]).stdout.strip() == "/opt/provision/dvc/bin/dvc"


def test_directories_owners_modes_and_acl(storage_lab) -> None:
    lab, _ = storage_lab
    assert stat(lab, NFS) == "root root 755"  # the export itself is left alone
    assert stat(lab, CACHE) == "dvc dvc 2775"
    acl = lab.exec("storage", ["getfacl", "--omit-header", "--default", "--absolute-names", CACHE]).stdout.split()
    assert "group:dvc:rwx" in acl and "group::rwx" in acl
    assert stat(lab, f"{NFS}/git") == "git dvc 2750"
    assert stat(lab, BARE) == "git dvc 2750"
    assert stat(lab, SERVER) == "git dvc 2750"
    # Nothing in git's metadata or in DVC's config that the storage group (and so the SFTP-only dvc
    # account) could change: that would let a DVC client plant hooks or config that git runs.
    group_writable = lab.exec("storage", ["find", f"{NFS}/git", f"{SERVER}/.git", f"{SERVER}/.dvc/config",
                                          f"{SERVER}/.dvc/config.local", "-perm", "-g+w", "-not", "-type", "l"])
    assert group_writable.returncode == 0 and group_writable.stdout == ""
    assert stat(lab, "/var/tmp/dvc-site-cache-demo") == "git dvc 2775"
    foreign = lab.exec("storage", ["find", f"{NFS}/git", SERVER, "!", "-user", "git"]).stdout
    assert foreign == ""  # everything in the repositories was made as git, never as root


def test_bare_and_server_repository_config(storage_lab) -> None:
    lab, _ = storage_lab
    bare = as_account(lab, "git", 'git config --file "$1/config" --list', BARE).stdout.splitlines()
    assert "core.bare=true" in bare and "core.sharedrepository=0640" in bare
    listing = as_account(lab, "git", 'cd "$1" && dvc config --list --show-origin', SERVER).stdout.splitlines()
    committed = {line.split("\t")[1] for line in listing if line.startswith(".dvc/config\t")}
    local = {line.split("\t")[1] for line in listing if line.startswith(".dvc/config.local\t")}
    assert committed == {
        "core.remote=data",
        "cache.shared=group",
        "cache.type=reflink,symlink,hardlink,copy",
        f"remote.data.url=ssh://127.0.0.1:{lab.port('storage')}{CACHE}",
        "remote.data.verify=true",
    }  # ext4 in the lab: no core.hardlink_lock (that is for NFS)
    assert local == {f"remote.data.url={CACHE}", "core.site_cache_dir=/var/tmp/dvc-site-cache-demo"}
    git = as_account(lab, "git", 'cd "$1" && git config --get remote.origin.url && git status --porcelain '
                     '&& git check-ignore .dvc/config.local && git rev-parse HEAD && git -C "$2" rev-parse main',
                     SERVER, BARE).stdout.split()
    assert git[0] == BARE
    assert git[1] == ".dvc/config.local"  # clean tree, config.local ignored
    assert git[2] == git[3]  # pushed
    log = as_account(lab, "git", 'git -C "$1" log --format=%an%x09%ae%x09%s main', BARE).stdout
    assert "provision\tgit@storage\tConfigure DVC remote 'data'" in log


def test_dataset_in_storage_and_tag_in_a_fresh_clone(storage_lab) -> None:
    lab, _ = storage_lab
    pointer = yaml.safe_load(as_account(lab, "git", 'cat "$1/data.dvc"', SERVER).stdout)
    md5 = pointer["outs"][0]["md5"]
    listing_file = f"{CACHE}/files/md5/{md5[:2]}/{md5[2:]}"
    entries = json.loads(lab.exec("storage", ["cat", listing_file]).stdout)
    assert len(entries) == 4
    for entry in entries:
        assert lab.exec("storage", ["test", "-f", f"{CACHE}/files/md5/{entry['md5'][:2]}/{entry['md5'][2:]}"]
                        ).returncode == 0
    clone = as_account(lab, "git", FRESH_CLONE, BARE, CACHE)
    assert clone.returncode == 0, clone.stderr
    assert clone.stdout.splitlines() == ["v1.0", "id,value", "2,14"]
    tag = as_account(lab, "git", 'git -C "$1" cat-file -t v1.0 && git -C "$1" log -1 --format=%s v1.0', BARE)
    assert tag.stdout.splitlines() == ["tag", "Add dataset data with DVC (provision bootstrap)"]


def test_no_credential_in_any_git_object(storage_lab) -> None:
    lab, _ = storage_lab
    dump = as_account(lab, "git", ALL_OBJECTS, BARE)
    assert dump.returncode == 0, dump.stderr
    assert dump.stdout.count("@@ ") >= 8
    text = dump.stdout.lower()
    assert "password" not in text and "keyfile" not in text
    config = as_account(lab, "git", 'git -C "$1" show main:.dvc/config', BARE).stdout
    assert "user =" not in config and "url = ssh://" in config


def test_storage_user_gets_sftp_but_no_shell(storage_lab, tmp_path: Path) -> None:
    lab, _ = storage_lab
    key = client_key(tmp_path, "dvc_key")
    authorize(lab, "dvc", 'restrict,command="internal-sftp -u 0002"', key)
    port = str(lab.port("storage"))
    shell = subprocess.run(["ssh", *ssh_options(lab, key), "-p", port, "dvc@127.0.0.1", "id"],
                           capture_output=True, text=True, timeout=30)
    assert shell.returncode != 0
    assert "This service allows sftp connections only" in shell.stdout + shell.stderr
    sample = tmp_path / "sample.txt"
    sample.write_text("pushed over sftp\n")
    sample.chmod(0o666)  # the forced `internal-sftp -u 0002` leaves it group-writable, not world-writable
    batch = tmp_path / "batch"
    batch.write_text(f"put {sample} {CACHE}/sftp-sample.txt\nls {CACHE}\n")
    sftp = subprocess.run(["sftp", *ssh_options(lab, key), "-P", port, "-b", str(batch), "dvc@127.0.0.1"],
                          capture_output=True, text=True, timeout=30)
    assert sftp.returncode == 0, sftp.stderr
    assert stat(lab, f"{CACHE}/sftp-sample.txt") == "dvc dvc 664"
    batch.write_text(f"put {sample} /home/dvc/.ssh/authorized_keys\n")
    overwrite = subprocess.run(["sftp", *ssh_options(lab, key), "-P", port, "-b", str(batch), "dvc@127.0.0.1"],
                               capture_output=True, text=True, timeout=30)
    assert overwrite.returncode != 0
    assert "pushed over sftp" not in lab.exec("storage", ["cat", "/home/dvc/.ssh/authorized_keys"]).stdout
    for hook in (f"{BARE}/hooks/post-receive", f"{SERVER}/.git/hooks/post-commit", f"{SERVER}/.git/config"):
        batch.write_text(f"put {sample} {hook}\n")
        planted = subprocess.run(["sftp", *ssh_options(lab, key), "-P", port, "-b", str(batch), "dvc@127.0.0.1"],
                                 capture_output=True, text=True, timeout=30)
        assert planted.returncode != 0, hook
        assert "pushed over sftp" not in lab.exec("storage", ["cat", hook]).stdout
    lab.exec("storage", ["rm", "-f", f"{CACHE}/sftp-sample.txt"])


def test_git_user_gets_git_but_no_shell(storage_lab, tmp_path: Path) -> None:
    lab, _ = storage_lab
    key = client_key(tmp_path, "git_key")
    authorize(lab, "git", 'restrict,command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\""', key)
    port = str(lab.port("storage"))
    ssh_command = " ".join(["ssh", *ssh_options(lab, key)])
    remote = subprocess.run(["git", "ls-remote", f"ssh://git@127.0.0.1:{port}{BARE}"], capture_output=True,
                            text=True, timeout=30, env={"GIT_SSH_COMMAND": ssh_command, "PATH": "/usr/bin:/bin"})
    assert remote.returncode == 0, remote.stderr
    assert "refs/heads/main" in remote.stdout and "refs/tags/v1.0" in remote.stdout
    shell = subprocess.run(["ssh", *ssh_options(lab, key), "-p", port, "git@127.0.0.1", "id"],
                           capture_output=True, text=True, timeout=30)
    assert shell.returncode != 0 and "uid=" not in shell.stdout
    assert "unrecognized command 'id'" in shell.stderr
    batch = tmp_path / "batch"
    batch.write_text(f"ls {BARE}\n")
    sftp = subprocess.run(["sftp", *ssh_options(lab, key), "-P", port, "-b", str(batch), "git@127.0.0.1"],
                          capture_output=True, text=True, timeout=30)
    assert sftp.returncode != 0


def test_check_on_fresh_host_changes_nothing_and_lists_every_change(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["storage"])
    before = host_snapshot(lab, "storage")
    status, document = bootstrap(lab, tmp_path, "--check", "--diff")
    assert status == 0, document
    tasks = {t["name"]: t for t in document["hosts"]["storage"]["tasks"]}
    expected = ["dvc", "group dvc", "account dvc", "account git", "git-shell commands of git",
                f"directory {CACHE}", f"directory {NFS}/git", f"bare repository {BARE}", f"directory {SERVER}",
                "directory /var/tmp/dvc-site-cache-demo", f"server repository {SERVER}"]
    for name in expected:
        assert tasks[name]["changed"] and tasks[name]["msg"].startswith("would "), tasks[name]
    diff = tasks[f"server repository {SERVER}"]["diff"]
    assert f"+++ {SERVER}/.dvc/config\n" in diff and f"+    url = ssh://127.0.0.1:{lab.port('storage')}{CACHE}" in diff
    assert f"+++ {SERVER}/.dvc/config.local\n" in diff and f"+    url = {CACHE}" in diff
    assert host_snapshot(lab, "storage") == before


def test_become_as_unprivileged_admin(make_lab, tmp_path: Path, vault_env: dict[str, str]) -> None:
    lab = make_lab(["storage"])
    inventory = admin_inventory(lab, tmp_path, {"storage"})
    password = lab.admin_password_file.read_text().strip()
    stored = provision("secrets", "set", "-i", str(inventory), "--scope", "all", "become_password",
                       home=tmp_path, env=vault_env, stdin=password + "\n")
    assert stored.returncode == 0, stored.stderr
    status, document = bootstrap(lab, tmp_path, inventory=inventory, env=vault_env)
    assert status == 0, document
    assert password not in json.dumps(document)
    assert stat(lab, SERVER) == "git dvc 2750" and stat(lab, CACHE) == "dvc dvc 2775"
    assert stat(lab, "/home/dvc/.ssh/authorized_keys") == "root root 644"
    assert lab.exec("storage", ["find", SERVER, "!", "-user", "git"]).stdout == ""
    status, document = bootstrap(lab, tmp_path, inventory=inventory, env=vault_env)
    assert status == 0 and changed(document) == 0, document


def test_shared_server_cache_uses_the_remote_as_cache(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["storage"])
    inventory = inventory_with(lab, tmp_path, server_cache="shared")
    done = provision("bootstrap", "-i", str(inventory), home=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "never run a plain `dvc gc`" in done.stdout
    assert "dvc gc --all-commits --all-branches --all-tags" in done.stdout
    local = lab.exec("storage", ["cat", f"{SERVER}/.dvc/config.local"]).stdout
    assert f"dir = {CACHE}" in local
    assert as_account(lab, "git", MAKE_DATASET, SERVER).returncode == 0
    status, document = provision_json("bootstrap", "-i", str(inventory), "--data", "data", home=tmp_path)
    assert status == 0, document
    assert lab.exec("storage", ["test", "-d", f"{SERVER}/.dvc/cache"]).returncode != 0  # one copy: the remote
    pointer = yaml.safe_load(lab.exec("storage", ["cat", f"{SERVER}/data.dvc"]).stdout)
    md5 = pointer["outs"][0]["md5"]
    assert lab.exec("storage", ["test", "-f", f"{CACHE}/files/md5/{md5[:2]}/{md5[2:]}"]).returncode == 0
    status, document = provision_json("bootstrap", "-i", str(inventory), "--data", "data", home=tmp_path)
    assert status == 0 and changed(document) == 0, document


def test_project_copied_into_the_export_first(make_lab, tmp_path: Path) -> None:
    """The write-up's order: the project is copied into the export (as root), then bootstrapped."""
    lab = make_lab(["storage"])
    copied = lab.exec("storage", ["sh", "-c", 'mkdir -p "$1/data" && echo notes > "$1/README.md" && '
                                  'echo 1,2 > "$1/data/table.csv"', "copy", SERVER])
    assert copied.returncode == 0, copied.stderr
    status, document = bootstrap(lab, tmp_path, "--data", "data", "--tag", "v1.0")
    assert status == 2
    tasks = {t["name"]: t for t in document["hosts"]["storage"]["tasks"]}
    assert tasks[f"server repository {SERVER}"]["msg"].startswith("git init (keeping the files there)")
    assert "not owned by git" in tasks["dataset data v1.0"]["msg"]
    assert "chown -R git data" in tasks["dataset data v1.0"]["msg"]
    assert lab.exec("storage", ["chown", "-R", "git:dvc", f"{SERVER}/data"]).returncode == 0
    status, document = bootstrap(lab, tmp_path, "--data", "data", "--tag", "v1.0")
    assert status == 0, document
    assert [t["name"] for t in document["hosts"]["storage"]["tasks"] if t["changed"]] == ["dataset data v1.0"]
    listed = as_account(lab, "git", 'git -C "$1" ls-tree --name-only v1.0', BARE).stdout.split()
    assert set(listed) == {".dvc", ".dvcignore", ".gitignore", "data.dvc"}  # README.md stays the user's


def test_commits_pushed_by_clients_are_fast_forwarded(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["storage"])
    status, _ = bootstrap(lab, tmp_path)
    assert status == 0
    pushed = as_account(lab, "git", 'set -e; cd /tmp; git clone -q "$1" client; cd client; echo x > notes.txt; '
                        'git add notes.txt; git -c user.name=c -c user.email=c@ws1 commit -qm "client work"; '
                        'git push -q origin HEAD', BARE)
    assert pushed.returncode == 0, pushed.stderr
    status, document = bootstrap(lab, tmp_path, "--check")
    assert status == 0
    repo_task = next(t for t in document["hosts"]["storage"]["tasks"] if t["name"] == f"server repository {SERVER}")
    assert repo_task["msg"].startswith("would fast-forward to git_remote's branch;"), repo_task
    status, document = bootstrap(lab, tmp_path)
    assert status == 0 and changed(document) == 1, document
    assert lab.exec("storage", ["cat", f"{SERVER}/notes.txt"]).stdout == "x\n"
    status, document = bootstrap(lab, tmp_path)
    assert status == 0 and changed(document) == 0, document


def test_missing_nfs_root_fails_storage_and_changes_nothing(lab, tmp_path: Path) -> None:
    inventory = inventory_with(lab, tmp_path, nfs_root="/mnt/not-mounted")
    before = host_snapshot(lab, "storage")
    status, document = bootstrap(lab, tmp_path, inventory=inventory)
    assert status == 2
    first = document["hosts"]["storage"]["tasks"][0]
    assert first["status"] == "failed"
    assert "/mnt/not-mounted does not exist" in first["msg"] and "not mounted" in first["msg"]
    assert all(t["status"] == "skipped" for t in document["hosts"]["storage"]["tasks"][1:])
    assert host_snapshot(lab, "storage") == before


def test_dvc_outside_range_would_be_installed(lab, tmp_path: Path) -> None:
    inventory = inventory_with(lab, tmp_path, dvc_version=">=99")
    status, document = bootstrap(lab, tmp_path, "--check", "--limit", "storage", inventory=inventory)
    assert status == 0, document
    message = next(t["msg"] for t in document["hosts"]["storage"]["tasks"] if t["name"] == "dvc")
    assert "would install dvc[ssh]>=99 into /opt/provision/dvc" in message
    assert "outside >=99" in message


@pytest.mark.parametrize("variables", [
    {"dvc_storage": "/mnt/nfs/cache; touch /tmp/pwned"},
    {"server_repo": "/mnt/nfs/$(touch /tmp/pwned)"},
    {"git_user": "git;touch /tmp/pwned"},
])
def test_injected_values_refused_before_any_host(lab, tmp_path: Path, variables: dict[str, str]) -> None:
    inventory = inventory_with(lab, tmp_path, **variables)
    done = provision("bootstrap", "-i", str(inventory), home=tmp_path)
    assert done.returncode == 1
    key = next(iter(variables))
    assert key in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
    for host in lab.hosts:
        assert lab.exec(host, ["test", "-e", "/tmp/pwned"]).returncode == 1
    assert not Path("/tmp/pwned").exists()


@pytest.mark.parametrize("args", [["--tag", "v1.0"], ["--data", "../etc", "--tag", "v1.0"],
                                  ["--data", "data", "--tag", "v1.0;id"]])
def test_bad_data_or_tag_arguments_exit_1(lab, tmp_path: Path, args: list[str]) -> None:
    done = provision("bootstrap", "-i", str(lab.inventory_path), *args, home=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
