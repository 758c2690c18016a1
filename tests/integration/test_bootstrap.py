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
from provision.tasks.authorized_keys import SFTP_READ_WRITE_COMMAND
from tests.integration.clirunner import provision, provision_json
from tests.integration.helpers import ALL_OBJECTS, become_admin, failures, host_snapshot, own_lab

pytestmark = pytest.mark.integration

NFS = "/mnt/nfs"
CACHE = f"{NFS}/cache"
BARE = f"{NFS}/git/demo.git"
SERVER = f"{NFS}/demo"
#: dvc_storage as storage_user's SFTP chroot (NFS) shows it: the path of the committed remote URL.
SFTP_CACHE = "/cache"
SITE_CACHE = "/home/git/dvc-site-cache"
READ_WRITE_SFTP = f'restrict,command="{SFTP_READ_WRITE_COMMAND}"'
READ_WRITE_GIT = 'restrict,command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\""'
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
def bootstrapped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, dict[str, Any]]]:
    """A fresh storage host, bootstrapped, then bootstrapped again with a dataset tagged v1.0."""
    with own_lab(tmp_path_factory, "bootstrap", ["storage"]) as (lab, home):
        runs: dict[str, Any] = {"home": home}
        runs["first"] = bootstrap(lab, home)
        made = as_account(lab, "git", MAKE_DATASET, SERVER)
        assert made.returncode == 0, made.stderr
        runs["data"] = bootstrap(lab, home, "--data", "data", "--tag", "v1.0")
        yield lab, runs


#: What tests of the bootstrapped storage leave behind: a file pushed over SFTP, a squatted site cache.
LEFT_BY_TESTS = (f"{CACHE}/sftp-sample.txt", "/var/tmp/dvc-site-cache-demo", "/tmp/planted-pickle-ran")


@pytest.fixture()
def storage_lab(bootstrapped: tuple[Lab, dict[str, Any]]) -> Iterator[tuple[Lab, dict[str, Any]]]:
    """The module's bootstrapped storage, put back after each test whether it passed or not: the service
    accounts' authorized_keys as they were, nothing a test made left behind."""
    lab, _ = bootstrapped
    keys = {user: lab.host_path("storage", f"/home/{user}/.ssh/authorized_keys") for user in ("dvc", "git")}
    before = {user: path.read_bytes() for user, path in keys.items()}
    yield bootstrapped
    for user, path in keys.items():
        path.write_bytes(before[user])
    assert lab.exec("storage", ["rm", "-rf", "--", *LEFT_BY_TESTS]).returncode == 0


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
    for helper in ("git-shell", "git-read-only", "no-interactive-login"):
        assert stat(lab, f"/home/git/git-shell-commands/{helper}") == "root root 755"
    assert stat(lab, "/home/git/git-repositories") == "root root 644"
    assert lab.exec("storage", ["cat", "/home/git/git-repositories"]).stdout == f"{BARE}\n"
    drop_in = lab.exec("storage", ["cat", "/etc/ssh/sshd_config.d/10-provision-dvc.conf"]).stdout
    assert "# provision inventory: inventory\n" in drop_in and f"\tChrootDirectory {NFS}\n" in drop_in
    assert "PasswordAuthentication" not in drop_in
    assert lab.exec("storage", ["readlink", "/usr/local/bin/dvc"]).stdout.strip() == "/opt/provision/dvc/bin/dvc"


def test_directories_owners_modes_and_acl(storage_lab) -> None:
    lab, _ = storage_lab
    assert stat(lab, NFS) == "root root 755"  # the export itself is left alone
    assert stat(lab, CACHE) == "dvc dvc 2775"
    acl = lab.exec("storage", ["getfacl", "--omit-header", "--default", "--absolute-names", CACHE]).stdout.split()
    assert "group:dvc:rwx" in acl and "group::rwx" in acl
    assert stat(lab, f"{NFS}/git") == "git dvc 2700"
    assert stat(lab, SERVER) == "git dvc 2700"
    # The repositories are closed to the storage group (and so to the SFTP-only dvc account) at the top,
    # and git's metadata and DVC's config are not group-writable inside either: no hooks or config that
    # git would run, even if a directory above were opened by hand.
    assert as_account(lab, "dvc", 'ls "$1" || ls "$2"', f"{NFS}/git", SERVER).returncode != 0
    group_writable = lab.exec("storage", ["find", f"{NFS}/git", f"{SERVER}/.git", f"{SERVER}/.dvc/config",
                                          f"{SERVER}/.dvc/config.local", "-perm", "/g+w,o+w", "-not", "-type", "l"])
    assert group_writable.returncode == 0 and group_writable.stdout == ""
    assert stat(lab, SITE_CACHE) == "git dvc 700" and stat(lab, f"{SITE_CACHE}/repo") == "git dvc 700"
    writable = lab.exec("storage", ["find", SITE_CACHE, "-perm", "/g+w,o+w", "-not", "-type", "l"])
    assert writable.returncode == 0 and writable.stdout == ""
    assert lab.exec("storage", ["find", SITE_CACHE, "-mindepth", "2", "-type", "f"]).stdout != ""  # dvc uses it
    foreign = lab.exec("storage", ["find", f"{NFS}/git", SERVER, "!", "-user", "git"]).stdout
    assert foreign == ""  # everything in the repositories was made as git, never as root


def test_bare_and_server_repository_config(storage_lab) -> None:
    lab, _ = storage_lab
    bare = as_account(lab, "git", 'git config --file "$1/config" --list', BARE).stdout.splitlines()
    assert "core.bare=true" in bare and "core.sharedrepository=0600" in bare
    listing = as_account(lab, "git", 'cd "$1" && dvc config --list --show-origin', SERVER).stdout.splitlines()
    committed = {line.split("\t")[1] for line in listing if line.startswith(".dvc/config\t")}
    local = {line.split("\t")[1] for line in listing if line.startswith(".dvc/config.local\t")}
    assert committed == {
        "core.remote=data",
        "cache.shared=group",
        "cache.type=reflink,symlink,hardlink,copy",
        f"remote.data.url=ssh://127.0.0.1:{lab.port('storage')}{SFTP_CACHE}",
        "remote.data.verify=true",
    }  # ext4 in the lab: no core.hardlink_lock (that is for NFS)
    assert local == {f"remote.data.url={CACHE}", f"core.site_cache_dir={SITE_CACHE}"}
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
    authorize(lab, "dvc", READ_WRITE_SFTP, key)
    port = str(lab.port("storage"))
    shell = subprocess.run(["ssh", *ssh_options(lab, key), "-p", port, "dvc@127.0.0.1", "id"],
                           capture_output=True, text=True, timeout=30)
    assert shell.returncode != 0
    assert "This service allows sftp connections only" in shell.stdout + shell.stderr
    sample = tmp_path / "sample.txt"
    sample.write_text("pushed over sftp\n")
    sample.chmod(0o666)  # the forced `internal-sftp -u 0002` leaves it group-writable, not world-writable
    batch = tmp_path / "batch"
    batch.write_text(f"put {sample} {SFTP_CACHE}/sftp-sample.txt\nls {SFTP_CACHE}\n")
    sftp = subprocess.run(["sftp", *ssh_options(lab, key), "-P", port, "-b", str(batch), "dvc@127.0.0.1"],
                          capture_output=True, text=True, timeout=30)
    assert sftp.returncode == 0, sftp.stderr
    assert stat(lab, f"{CACHE}/sftp-sample.txt") == "dvc dvc 664"
    # Confined to the chroot: the host's files, the repositories and DVC's site cache are out of reach,
    # by their own paths and by their paths inside the chroot alike.
    for command in ("ls /etc", "get /etc/passwd", "ls /home/git/dvc-site-cache", "ls /git", "ls /demo",
                    "get /demo/.dvc/config", f"put {sample} /tmp/planted", f"put {sample} /git/demo.git/hooks/x",
                    f"put {sample} /home/dvc/.ssh/authorized_keys", f"ls {CACHE}",
                    f"symlink {SFTP_CACHE}/sftp-sample.txt {SFTP_CACHE}/link",
                    f"ln {SFTP_CACHE}/sftp-sample.txt {SFTP_CACHE}/hardlink"):
        batch.write_text(command + "\n")
        refused = subprocess.run(["sftp", *ssh_options(lab, key), "-P", port, "-b", str(batch), "dvc@127.0.0.1"],
                                 capture_output=True, text=True, timeout=30)
        assert refused.returncode != 0, (command, refused.stdout)
    assert "pushed over sftp" not in lab.exec("storage", ["cat", "/home/dvc/.ssh/authorized_keys"]).stdout
    assert lab.exec("storage", ["sh", "-c", 'ls "$1" "$2"/link* /tmp/planted', "ls", f"{BARE}/hooks/x", CACHE]
                    ).returncode != 0
    batch.write_text("ls /\n")
    root = subprocess.run(["sftp", *ssh_options(lab, key), "-P", port, "-b", str(batch), "dvc@127.0.0.1"],
                          capture_output=True, text=True, timeout=30)
    assert root.returncode == 0 and "cache" in root.stdout and "passwd" not in root.stdout


def test_git_user_gets_git_but_no_shell(storage_lab, tmp_path: Path) -> None:
    lab, _ = storage_lab
    key = client_key(tmp_path, "git_key")
    authorize(lab, "git", READ_WRITE_GIT, key)
    port = str(lab.port("storage"))
    ssh_command = " ".join(["ssh", *ssh_options(lab, key)])
    remote = subprocess.run(["git", "ls-remote", f"ssh://git@127.0.0.1:{port}{BARE}"], capture_output=True,
                            text=True, timeout=30, env={"GIT_SSH_COMMAND": ssh_command, "PATH": "/usr/bin:/bin"})
    assert remote.returncode == 0, remote.stderr
    assert "refs/heads/main" in remote.stdout and "refs/tags/v1.0" in remote.stdout
    shell = subprocess.run(["ssh", *ssh_options(lab, key), "-p", port, "git@127.0.0.1", "id"],
                           capture_output=True, text=True, timeout=30)
    assert shell.returncode != 0 and "uid=" not in shell.stdout
    assert "git transport commands only" in shell.stderr
    batch = tmp_path / "batch"
    batch.write_text(f"ls {BARE}\n")
    sftp = subprocess.run(["sftp", *ssh_options(lab, key), "-P", port, "-b", str(batch), "git@127.0.0.1"],
                          capture_output=True, text=True, timeout=30)
    assert sftp.returncode != 0


def git_over_ssh(lab: Lab, key: Path, command: str) -> subprocess.CompletedProcess[str]:
    """`command` sent to storage as a git client sends it, then a flush packet: the server advertises
    its refs and ends."""
    return subprocess.run(["ssh", *ssh_options(lab, key), "-p", str(lab.port("storage")), "git@127.0.0.1", command],
                          input="0000", capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("options", [READ_WRITE_GIT, 'restrict,command="git-read-only"'])
def test_git_keys_reach_git_remote_and_no_other_repository(storage_lab, tmp_path: Path, options: str) -> None:
    lab, _ = storage_lab
    key = client_key(tmp_path, "git_key")
    authorize(lab, "git", options, key)
    served = git_over_ssh(lab, key, f"git-upload-pack '{BARE}'")
    assert served.returncode == 0 and "refs/heads/main" in served.stdout, served.stderr
    pushable = git_over_ssh(lab, key, f"git-receive-pack '{BARE}'")
    assert (pushable.returncode == 0 and "refs/heads/main" in pushable.stdout) == (options == READ_WRITE_GIT)
    before = as_account(lab, "git", 'git -C "$1" rev-parse HEAD && cat "$1/.git/config"', SERVER).stdout
    # The non-bare server repository git_user works in, and any other path git_user can write.
    for command in (f"git-receive-pack '{SERVER}'", f"git-upload-pack '{SERVER}'", "git-receive-pack '/home/git'",
                    f"git-upload-pack '{BARE}/'", f"git-upload-archive '{SERVER}'"):
        refused = git_over_ssh(lab, key, command)
        assert refused.returncode != 0 and "refs/heads" not in refused.stdout, command
        assert "not a repository served to this key" in refused.stderr or "read-only" in refused.stderr, command
    assert as_account(lab, "git", 'git -C "$1" rev-parse HEAD && cat "$1/.git/config"', SERVER).stdout == before


# A pickle that, if DVC ever unpickled it as git, would leave a marker file behind.
PICKLE = "cposix\nsystem\n(Vtouch /tmp/planted-pickle-ran\ntR."
# $1 pickle, $2 site cache: as another account, write it over every file and into every directory there.
PLANT = """
for target in $(find "$2" 2>/dev/null) "$2/repo/planted"; do
  if [ -d "$target" ]; then printf '%s' "$1" > "$target/planted" 2>/dev/null && echo "planted $target/planted"
  else printf '%s' "$1" > "$target" 2>/dev/null && echo "planted $target"; fi
done
mkdir -p "$2/repo/x" 2>/dev/null && echo "made $2/repo/x"
exit 0
"""
# As git in server_repo: what bootstrap and a checkout run, reading the site cache.
DVC_AS_GIT = 'cd "$1" && DVC_NO_ANALYTICS=1 dvc status --quiet && DVC_NO_ANALYTICS=1 dvc checkout --quiet'


def test_no_other_account_can_plant_a_pickle_in_dvcs_site_cache(storage_lab) -> None:
    lab, _ = storage_lab
    for account in ("dvc", "nobody"):
        planted = as_account(lab, account, PLANT, PICKLE, SITE_CACHE)
        assert planted.returncode == 0 and planted.stdout == "", (account, planted.stdout)
    # The old place in /var/tmp is anyone's to squat: give it the real cache's layout, filled with
    # pickles; DVC must not look there.
    layout = lab.exec("storage", ["find", SITE_CACHE, "-type", "d", "-printf", "/var/tmp/dvc-site-cache-demo/%P\n"])
    squat = as_account(lab, "nobody", 'mkdir -p "$@"', *layout.stdout.split())
    assert squat.returncode == 0, squat.stderr
    assert as_account(lab, "nobody", PLANT, PICKLE, "/var/tmp/dvc-site-cache-demo").stdout != ""
    ran = as_account(lab, "git", DVC_AS_GIT, SERVER)
    assert ran.returncode == 0, ran.stderr
    assert lab.exec("storage", ["test", "-e", "/tmp/planted-pickle-ran"]).returncode != 0


def test_a_chroot_sshd_would_refuse_or_a_readable_entry_in_it_is_refused(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["storage"])
    assert lab.exec("storage", ["chmod", "0775", NFS]).returncode == 0
    before = host_snapshot(lab, "storage")
    status, document = bootstrap(lab, tmp_path)
    assert status == 2
    failed = [t for t in document["hosts"]["storage"]["tasks"] if t["status"] == "failed"]
    assert failed[0]["name"] == f"SFTP chroot {NFS}" and f"{NFS} is root:root 0775" in failed[0]["msg"]
    assert f"chmod go-w {NFS}" in failed[0]["msg"]
    assert host_snapshot(lab, "storage") == before  # refused before anything changed
    assert lab.exec("storage", ["sh", "-c", 'chmod 0755 "$1" && mkdir -m 0755 "$1/other-team"', "fix", NFS]
                    ).returncode == 0
    status, document = bootstrap(lab, tmp_path)
    assert status == 2
    failed = [t for t in document["hosts"]["storage"]["tasks"] if t["status"] == "failed"]
    assert failed[0]["name"] == f"entries of the SFTP chroot {NFS}"
    assert f"dvc could read {NFS}/other-team over SFTP" in failed[0]["msg"]
    assert lab.exec("storage", ["chmod", "0700", f"{NFS}/other-team"]).returncode == 0
    status, document = bootstrap(lab, tmp_path)
    assert status == 0, document


def test_two_inventories_on_one_storage_host_never_change_each_others_access(make_lab, tmp_path: Path,
                                                                              vault_env: dict[str, str]) -> None:
    lab = make_lab(["storage", "ws1"])
    status, document = bootstrap(lab, tmp_path)
    assert status == 0, document
    key = client_key(tmp_path, "reader")
    authorize(lab, "dvc", 'restrict,command="internal-sftp -R"', key)  # a read-only client of inventory A...
    lab.exec("storage", ["sed", "-i", "$s/$/ provision:inventory:ws9/", "/home/dvc/.ssh/authorized_keys"])
    drop_in = "/etc/ssh/sshd_config.d/10-provision-dvc.conf"
    before = lab.exec("storage", ["cat", drop_in]).stdout
    # ...whose access inventory B's password login (ForceCommand read-write) would change.
    other = inventory_with(lab, tmp_path, inventory_name="other", project="other", auth="password")
    status, document = bootstrap(lab, tmp_path, inventory=other, env=vault_env)
    assert status == 2
    failed = next(t for t in document["hosts"]["storage"]["tasks"] if t["status"] == "failed")
    assert failed["name"] == "sshd settings of dvc"
    assert "inventory other would change" in failed["msg"] and "also serves inventory inventory" in failed["msg"]
    assert lab.exec("storage", ["cat", drop_in]).stdout == before
    assert lab.exec("storage", ["getent", "shadow", "dvc"]).stdout.split(":")[1] == "*"
    assert lab.exec("storage", ["test", "-e", f"{NFS}/other"]).returncode != 0
    # Key-only, B leaves the drop-in as it is, but git_user's keys would reach both projects' repositories:
    # refused before B makes any repository, A's list of served repositories unchanged.
    other = inventory_with(lab, tmp_path, inventory_name="other", project="other")
    status, document = bootstrap(lab, tmp_path, inventory=other)
    assert status == 2, document
    failed = next(t for t in document["hosts"]["storage"]["tasks"] if t["status"] == "failed")
    assert failed["name"] == "repositories served to git's keys" and f"git already serves {BARE}" in failed["msg"]
    assert lab.exec("storage", ["cat", drop_in]).stdout == before
    assert lab.exec("storage", ["cat", "/home/git/git-repositories"]).stdout == f"{BARE}\n"
    assert lab.exec("storage", ["test", "-e", f"{NFS}/git/other.git"]).returncode != 0
    status, document = bootstrap(lab, tmp_path)
    assert status == 0 and changed(document) == 0, document


def test_a_second_inventory_never_takes_the_first_ones_password_login_away(make_lab, tmp_path: Path,
                                                                             vault_env: dict[str, str]) -> None:
    lab = make_lab(["storage", "ws1"])
    (lab.dir / "host_vars").mkdir()
    (lab.dir / "host_vars" / "ws1.yml").write_text("auth: password\n")
    status, document = bootstrap(lab, tmp_path, env=vault_env)
    assert status == 0, failures(document)
    drop_in = "/etc/ssh/sshd_config.d/10-provision-dvc.conf"
    before = lab.exec("storage", ["cat", drop_in]).stdout
    password_hash = lab.exec("storage", ["getent", "shadow", "dvc"]).stdout.split(":")[1]
    assert "PasswordAuthentication yes" in before and password_hash.startswith("$")
    other = inventory_with(lab, tmp_path, inventory_name="other", project="other")  # key-only
    status, document = bootstrap(lab, tmp_path, inventory=other, env=vault_env)
    assert status == 2
    failed = next(t for t in document["hosts"]["storage"]["tasks"] if t["status"] == "failed")
    assert failed["name"] == "sshd settings of dvc"
    assert "inventory other would change" in failed["msg"] and "also serves inventory inventory" in failed["msg"]
    assert lab.exec("storage", ["cat", drop_in]).stdout == before
    assert lab.exec("storage", ["getent", "shadow", "dvc"]).stdout.split(":")[1] == password_hash


def test_check_on_fresh_host_changes_nothing_and_lists_every_change(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["storage"])
    before = host_snapshot(lab, "storage")
    status, document = bootstrap(lab, tmp_path, "--check", "--diff")
    assert status == 0, document
    tasks = {t["name"]: t for t in document["hosts"]["storage"]["tasks"]}
    expected = ["sshd settings of dvc", "dvc", "group dvc", "account dvc", "account git",
                "git-shell commands of git", f"directory {CACHE}", f"directory {NFS}/git", f"bare repository {BARE}",
                "repositories served to git's keys", f"directory {SERVER}", "DVC site cache of git",
                f"server repository {SERVER}"]
    for name in expected:
        assert tasks[name]["changed"] and tasks[name]["msg"].startswith("would "), tasks[name]
    diff = tasks[f"server repository {SERVER}"]["diff"]
    assert f"+++ {SERVER}/.dvc/config\n" in diff
    assert f"+    url = ssh://127.0.0.1:{lab.port('storage')}{SFTP_CACHE}\n" in diff
    assert f"+++ {SERVER}/.dvc/config.local\n" in diff and f"+    url = {CACHE}" in diff
    assert host_snapshot(lab, "storage") == before


def test_become_as_unprivileged_admin(make_lab, tmp_path: Path, vault_env: dict[str, str]) -> None:
    lab = make_lab(["storage"])
    inventory, _ = become_admin(lab, tmp_path, {"storage"}, vault_env)
    password = lab.admin_password_file.read_text().strip()
    status, document = bootstrap(lab, tmp_path, inventory=inventory, env=vault_env)
    assert status == 0, document
    assert password not in json.dumps(document)
    assert stat(lab, SERVER) == "git dvc 2700" and stat(lab, CACHE) == "dvc dvc 2775"
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
