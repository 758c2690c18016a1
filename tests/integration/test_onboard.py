"""`provision onboard` / `offboard` on real sshd, git and dvc: keys, lines, pins, checkout, proofs, data.

The storage is set up with `provision bootstrap` (a dataset tagged v1.0), so these tests run the two
commands the way the README tells a user to.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provision.lab import Lab
from provision.tasks.authorized_keys import SFTP_READ_WRITE_COMMAND
from tests.integration.clirunner import provision, provision_json
from tests.integration.helpers import (
    DVC,
    KEY,
    WORKDIR,
    authorized_keys,
    become_admin,
    bootstrap_storage,
    bootstrap_with_dataset,
    changed,
    client_sftp,
    client_ssh_options,
    failures,
    host_snapshot,
    marked,
    onboard,
    own_lab,
    public_key,
    run,
)

pytestmark = pytest.mark.integration

GIT_IDENTITY = ["-c", "user.name=Test User", "-c", "user.email=test@example.invalid"]
HAND_WRITTEN_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8UoQD7CQXPa6WZQKq7xJn03aThFlp/MY/unOaKFawL admin@laptop"
OTHER_INVENTORY_LINE = ('restrict,command="internal-sftp -R" ssh-ed25519 '
                        "AAAAC3NzaC1lZDI1NTE5AAAAIMd1RpfT6mkg3Zxcv3SXptQ0rkuTaNhk7cH8WDqv3Ddh provision:other:ws1")
#: A restricted line written by hand whose comment holds a form feed, a NEL, a carriage return and bytes
#: that are not UTF-8: a rewrite that split on those would make its second half an unrestricted line.
TRICKY_LINE = ('restrict,command="internal-sftp -R" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMd1RpfT6mkg3Zxcv3SXptQ0'
               "rkuTaNhk7cH8WDqv3Ddh ops\x0cssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8UoQD7CQXPa6WZQKq7xJn03aThFlp/MY/"
               "unOaKFawL a\u0085b\r").encode() + b" \xff\xfe provision:inventory:ws1\r"


def client_ssh(lab: Lab, user: str) -> list[str]:
    """OpenSSH from a client to storage with only the client key and the client's pins."""
    return ["ssh", *client_ssh_options(), "-p", str(lab.port("storage")), f"{user}@127.0.0.1"]


def read(lab: Lab, host: str, path: str) -> str:
    """A file as the host sees it (data files are links into the host's cache)."""
    return run(lab, host, ["cat", "--", path]).stdout


def fingerprint(lab: Lab, host: str) -> str:
    return run(lab, host, ["ssh-keygen", "-lf", f"{KEY}.pub"]).stdout.split()[1]


# ------------------------------------------------------------------------ one lab, many assertions

@dataclass
class Site:
    lab: Lab
    home: Path
    snapshots_before_check: dict[str, str]
    snapshots_after_check: dict[str, str]
    pins_before_check: bytes
    pins_after_check: bytes
    check: tuple[int, dict[str, Any]]
    first: tuple[int, dict[str, Any]]
    rerun: tuple[int, dict[str, Any]]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """storage + ws1, ws2 and ws3 (`access: read`): bootstrapped, checked, onboarded with --pull, rerun."""
    with own_lab(tmp_path_factory, "onboard", ["storage", "ws1", "ws2", "ws3"]) as (lab, home):
        (lab.dir / "host_vars").mkdir()
        (lab.dir / "host_vars" / "ws3.yml").write_text("access: read\n")
        bootstrap_with_dataset(lab, home, blob=True)
        for account in ("dvc", "git"):
            path = f"/home/{account}/.ssh/authorized_keys"
            run(lab, "storage", ["sh", "-c", 'printf "%s\\n%s\\n" "$2" "$3" >> "$1"', "sh", path,
                                 HAND_WRITTEN_LINE, OTHER_INVENTORY_LINE])
            with lab.host_path("storage", path).open("ab") as keys:
                keys.write(TRICKY_LINE + b"\n")
        hosts = ("storage", "ws1", "ws2", "ws3")
        before = {host: host_snapshot(lab, host) for host in hosts}
        pins_before = lab.known_hosts_path.read_bytes()
        check = onboard(lab, home, "--check", "--diff", "--pull")
        after = {host: host_snapshot(lab, host) for host in hosts}
        pins_after = lab.known_hosts_path.read_bytes()
        first = onboard(lab, home, "--diff", "--pull", "--forks", "3")
        rerun = onboard(lab, home, "--pull")
        yield Site(lab, home, before, after, pins_before, pins_after, check, first, rerun)


def test_check_changes_nothing_anywhere_and_lists_the_work(site: Site) -> None:
    status, document = site.check
    assert status == 0, failures(document)
    assert site.snapshots_after_check == site.snapshots_before_check
    assert site.pins_after_check == site.pins_before_check
    messages = {host: " | ".join(t["msg"] for t in result["tasks"]) for host, result in document["hosts"].items()}
    assert "would generate ssh-ed25519 key /root/.ssh/id_ed25519_demo" in messages["ws1"]
    assert "would clone ssh://git@127.0.0.1:" in messages["ws1"]
    assert "would pin [127.0.0.1]:" in messages["ws1"]
    assert "would create /root/demo/.dvc/config.local" in messages["ws1"]
    assert "would authorize ws1, ws2, ws3 (key not generated yet)" in messages["storage"]


def test_onboard_succeeds_then_rerun_changes_nothing(site: Site) -> None:
    status, document = site.first
    assert status == 0, failures(document)
    assert set(document["hosts"]) == {"storage", "ws1", "ws2", "ws3"}
    assert changed(document) > 0
    status, document = site.rerun
    assert status == 0, failures(document)
    assert changed(document) == 0, {h: s for h, s in document["stats"].items() if s["changed"]}


def test_key_pair_is_made_on_the_client(site: Site) -> None:
    lab = site.lab
    for host in ("ws1", "ws2", "ws3"):
        stat = run(lab, host, ["stat", "-c", "%U %a", "/root/.ssh", KEY, f"{KEY}.pub"]).stdout.split("\n")
        assert stat[:3] == ["root 700", "root 600", "root 644"]
        comment = lab.host_path(host, f"{KEY}.pub").read_text().split()[2]
        assert comment == f"provision:inventory:{host}"
    private = lab.host_path("ws1", KEY).read_text()
    for document in (site.first[1], site.rerun[1]):
        text = json.dumps(document)
        assert "PRIVATE KEY" not in text and private.splitlines()[1] not in text


def test_storage_holds_one_correct_line_per_client_and_account(site: Site) -> None:
    lab = site.lab
    sftp_lines, git_lines = authorized_keys(lab, "dvc"), authorized_keys(lab, "git")
    for host in ("ws1", "ws2", "ws3"):
        key = public_key(lab, host)
        forced = "internal-sftp -R" if host == "ws3" else SFTP_READ_WRITE_COMMAND
        assert marked(sftp_lines, host) == [f'restrict,command="{forced}" {key} provision:inventory:{host}']
        git_forced = "git-read-only" if host == "ws3" else 'git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"'
        assert marked(git_lines, host) == [f'restrict,command="{git_forced}" {key} provision:inventory:{host}']
    for lines in (sftp_lines, git_lines):
        assert lines[:2] == [HAND_WRITTEN_LINE, OTHER_INVENTORY_LINE]
        assert len(lines) == 6
    for account in ("dvc", "git"):  # the hand-written line kept byte for byte, still one line
        raw = lab.host_path("storage", f"/home/{account}/.ssh/authorized_keys").read_bytes().split(b"\n")
        assert raw[2] == TRICKY_LINE and raw.count(TRICKY_LINE) == 1
    for account in ("dvc", "git"):
        stat = run(lab, "storage", ["stat", "-c", "%U %G %a", f"/home/{account}/.ssh/authorized_keys"]).stdout
        assert stat.split() == ["root", "root", "644"]


def test_diff_shows_fingerprints_not_keys(site: Site) -> None:
    lab = site.lab
    document = site.first[1]
    storage_diffs = "".join(t["diff"] for t in document["hosts"]["storage"]["tasks"])
    for host in ("ws1", "ws2", "ws3"):
        assert "+restrict,command=" in storage_diffs
        assert f"ssh-ed25519 {fingerprint(lab, host)} provision:inventory:{host}" in storage_diffs
        assert public_key(lab, host).split()[1] not in json.dumps(document)
    client_diffs = "".join(t["diff"] for t in document["hosts"]["ws1"]["tasks"])
    assert "+keyfile = /root/.ssh/id_ed25519_demo" in client_diffs
    assert "ssh-ed25519 SHA256:" in client_diffs  # the pinned host keys


def test_client_has_pins_checkout_and_config_local(site: Site) -> None:
    lab = site.lab
    port = lab.port("storage")
    storage_keys = {" ".join(lab.host_path("storage", f"/etc/ssh/ssh_host_{kind}_key.pub").read_text().split()[:2])
                    for kind in ("ed25519", "ecdsa")}
    pinned = lab.host_path("ws1", "/root/.ssh/known_hosts").read_text().splitlines()
    assert {line.split(" ", 1)[1] for line in pinned if line.startswith(f"[127.0.0.1]:{port} ")} == storage_keys
    origin = run(lab, "ws1", ["git", "-C", WORKDIR, "remote", "get-url", "origin"]).stdout.strip()
    assert origin == f"ssh://git@127.0.0.1:{port}/mnt/nfs/git/demo.git"
    ssh_command = run(lab, "ws1", ["git", "-C", WORKDIR, "config", "core.sshCommand"]).stdout
    assert "IdentitiesOnly=yes" in ssh_command and "StrictHostKeyChecking=yes" in ssh_command and KEY in ssh_command
    stat = run(lab, "ws1", ["stat", "-c", "%U %a", f"{WORKDIR}/.dvc/config.local"]).stdout.split()
    assert stat == ["root", "600"]
    listing = run(lab, "ws1", [DVC, "--cd", WORKDIR, "config", "--list", "--show-origin"]).stdout
    assert "config.local\tremote.data.user=dvc" in listing
    assert f"config.local\tremote.data.keyfile={KEY}" in listing
    assert f"config\tremote.data.url=ssh://127.0.0.1:{port}/cache" in listing  # inside dvc's SFTP chroot
    assert ".dvc/config.local" not in run(lab, "ws1", ["git", "-C", WORKDIR, "ls-files"]).stdout


def test_pull_reports_files_and_bytes_and_delivers_v1(site: Site) -> None:
    lab = site.lab
    pull = next(t for t in site.first[1]["hosts"]["ws2"]["tasks"] if t["name"] == "dvc pull")
    assert pull["status"] == "changed"
    assert "workspace holds 2 files, 20009 bytes" in pull["msg"]
    rerun = next(t for t in site.rerun[1]["hosts"]["ws2"]["tasks"] if t["name"] == "dvc pull")
    assert rerun["status"] == "ok" and "data up to date: 2 files, 20009 bytes" in rerun["msg"]
    for host in ("ws1", "ws2", "ws3"):
        assert read(lab, host, f"{WORKDIR}/data/hello.txt") == "hello v1\n"
    tags = run(lab, "ws1", ["git", "-C", WORKDIR, "tag"]).stdout.split()
    assert tags == ["v1.0"]


def test_client_key_gets_no_shell_and_no_sftp_as_git(site: Site) -> None:
    lab = site.lab
    refused_dvc = lab.exec("ws1", [*client_ssh(lab, "dvc"), "id"])
    assert refused_dvc.returncode != 0 and "uid=" not in refused_dvc.stdout
    assert "This service allows sftp connections only." in refused_dvc.stdout + refused_dvc.stderr
    refused_git = lab.exec("ws1", [*client_ssh(lab, "git"), "id"])
    assert refused_git.returncode != 0 and "uid=" not in refused_git.stdout
    sftp_git = lab.exec("ws1", client_sftp(lab, "git"), input="ls /\n")
    assert sftp_git.returncode != 0
    sftp_dvc = lab.exec("ws1", client_sftp(lab, "dvc"), input="ls /cache\n")
    assert sftp_dvc.returncode == 0, sftp_dvc.stderr


def test_read_client_pulls_but_cannot_push(site: Site) -> None:
    lab = site.lab
    run(lab, "ws3", ["sh", "-c", 'cat > "$1"', "sh", f"{WORKDIR}/data/mine.txt"], input="not for the registry\n")
    run(lab, "ws3", [DVC, "--cd", WORKDIR, "add", "--quiet", "data"])
    pushed = lab.exec("ws3", [DVC, "--cd", WORKDIR, "push"])
    assert pushed.returncode != 0, pushed.stdout
    assert lab.exec("storage", ["grep", "-rqs", "not for the registry", "/mnt/nfs/cache"]).returncode != 0
    run(lab, "ws3", ["git", "-C", WORKDIR, "checkout", "--", "data.dvc"])
    run(lab, "ws3", ["rm", "-rf", f"{WORKDIR}/data"])
    run(lab, "ws3", [DVC, "--cd", WORKDIR, "pull", "--force"])
    assert read(lab, "ws3", f"{WORKDIR}/data/hello.txt") == "hello v1\n"
    # git too: fetch works, a push (even of a new tag) is refused by the read-only forced command.
    run(lab, "ws3", ["git", "-C", WORKDIR, "fetch", "--quiet"])
    run(lab, "ws3", ["git", "-C", WORKDIR, "tag", "from-reader"])
    git_push = lab.exec("ws3", ["git", "-C", WORKDIR, "push", "--quiet", "origin", "from-reader"])
    assert git_push.returncode != 0 and "read-only access" in git_push.stderr, git_push.stderr
    tags = run(lab, "storage", ["git", "-c", "safe.directory=*", "-C", "/mnt/nfs/git/demo.git", "tag"]).stdout
    assert "v1.0" in tags and "from-reader" not in tags


def test_push_from_one_client_is_pulled_on_another_by_hand(site: Site) -> None:
    lab = site.lab
    run(lab, "ws1", ["sh", "-c", 'cat > "$1"', "sh", f"{WORKDIR}/data/new.txt"], input="from ws1\n")
    run(lab, "ws1", [DVC, "--cd", WORKDIR, "add", "--quiet", "data"])
    run(lab, "ws1", ["git", "-C", WORKDIR, *GIT_IDENTITY, "commit", "--quiet", "-am", "data from ws1"])
    run(lab, "ws1", [DVC, "--cd", WORKDIR, "push"])
    run(lab, "ws1", ["git", "-C", WORKDIR, "push", "--quiet"])
    run(lab, "ws2", ["git", "-C", WORKDIR, "pull", "--quiet"])
    run(lab, "ws2", [DVC, "--cd", WORKDIR, "pull"])
    assert read(lab, "ws2", f"{WORKDIR}/data/new.txt") == "from ws1\n"
    modes = run(lab, "storage", ["find", "/mnt/nfs/cache/files", "-type", "f", "-newer",
                                 "/mnt/nfs/demo/data.dvc", "-printf", "%m %g\\n"]).stdout.split("\n")
    assert {line for line in modes if line} <= {"664 dvc", "444 dvc"}


def test_reonboarding_replaces_exactly_that_clients_lines(site: Site) -> None:
    lab = site.lab
    before = {account: authorized_keys(lab, account) for account in ("dvc", "git")}
    old_key = public_key(lab, "ws1")
    run(lab, "ws1", ["rm", "-f", KEY, f"{KEY}.pub"])
    status, document = onboard(lab, site.home, "ws1")
    assert status == 0, failures(document)
    assert set(document["hosts"]) == {"ws1", "storage"}
    new_key = public_key(lab, "ws1")
    assert new_key != old_key
    for account in ("dvc", "git"):
        after = authorized_keys(lab, account)
        assert len(after) == len(before[account])
        assert [line for line in after if "provision:inventory:ws1" not in line] == \
            [line for line in before[account] if "provision:inventory:ws1" not in line]
        assert [new_key in line for line in marked(after, "ws1")] == [True]
    assert lab.exec("ws1", client_sftp(lab, "dvc"), input="ls /cache\n").returncode == 0


def test_offboard_revokes_removes_credentials_then_purges(site: Site) -> None:
    lab = site.lab
    others = {account: [line for line in authorized_keys(lab, account) if "provision:inventory:ws2" not in line]
              for account in ("dvc", "git")}
    status, document = provision_json("offboard", "-i", str(lab.inventory_path), "ws2", "--diff", home=site.home)
    assert status == 0, failures(document)
    proof = next(t for t in document["hosts"]["ws2"]["tasks"] if t["name"] == "prove revoked")
    assert proof["status"] == "ok" and "storage refuses" in proof["msg"]
    for account in ("dvc", "git"):
        assert authorized_keys(lab, account) == others[account]
    for account in ("dvc", "git"):
        refused = lab.exec("ws2", client_sftp(lab, account), input="ls /\n")
        assert refused.returncode != 0 and "Permission denied" in refused.stderr
    listing = run(lab, "ws2", [DVC, "--cd", WORKDIR, "config", "--list", "--show-origin"]).stdout
    assert "remote.data.user" not in listing and "remote.data.keyfile" not in listing
    assert lab.host_path("ws2", KEY).exists()

    status, document = provision_json("offboard", "-i", str(lab.inventory_path), "ws2", "--purge", home=site.home)
    assert status == 0, failures(document)
    assert not lab.host_path("ws2", KEY).exists() and not lab.host_path("ws2", f"{KEY}.pub").exists()
    status, document = provision_json("offboard", "-i", str(lab.inventory_path), "ws2", "--purge", home=site.home)
    assert status == 0 and changed(document) == 0
    assert marked(authorized_keys(lab, "dvc"), "ws1") and marked(authorized_keys(lab, "git"), "ws3")


def test_unprivileged_admin_with_become_owns_its_key_and_checkout(site: Site) -> None:
    """ws2 reached as the lab's sudo admin, from a second inventory: its own key, lines and files."""
    lab, home = site.lab, site.home
    inventory, env = become_admin(lab, home, {"ws2"})
    before = {account: authorized_keys(lab, account) for account in ("dvc", "git")}

    status, document = provision_json("onboard", "-i", str(inventory), "ws2", "--pull", home=home, env=env)
    assert status == 0, failures(document)
    admin_home = f"/home/{lab.admin_user}"
    owners = run(lab, "ws2", ["stat", "-c", "%U %a", f"{admin_home}/.ssh/id_ed25519_demo",
                              f"{admin_home}/demo/.dvc/config.local", f"{admin_home}/.ssh/known_hosts"]).stdout
    assert owners.split("\n")[:3] == [f"{lab.admin_user} 600", f"{lab.admin_user} 600", f"{lab.admin_user} 644"]
    assert read(lab, "ws2", f"{admin_home}/demo/data/hello.txt") == "hello v1\n"
    for account in ("dvc", "git"):
        after = authorized_keys(lab, account)
        assert after[:len(before[account])] == before[account]
        assert [line.endswith(" provision:admin:ws2") for line in after[len(before[account]):]] == [True]
    status, document = provision_json("onboard", "-i", str(inventory), "ws2", "--pull", home=home, env=env)
    assert status == 0 and changed(document) == 0


# ------------------------------------------------------------------------ labs of their own

def test_eight_clients_at_once_then_two_processes_at_once_lose_no_line(make_lab, tmp_path: Path) -> None:
    clients = [f"ws{n}" for n in range(1, 9)]
    lab = make_lab(["storage", *clients])
    bootstrap_storage(lab, tmp_path)

    def assert_one_line_per_client() -> None:
        for account in ("dvc", "git"):
            lines = authorized_keys(lab, account)
            assert len(lines) == 8
            for host in clients:
                assert [public_key(lab, host) in line for line in marked(lines, host)] == [True]

    status, document = onboard(lab, tmp_path, "--timeout", "120")
    assert status == 0, failures(document)
    assert_one_line_per_client()

    old_keys = {host: public_key(lab, host) for host in clients}
    for host in clients:
        run(lab, host, ["rm", "-f", KEY, f"{KEY}.pub"])
    results: dict[str, tuple[int, dict[str, Any]]] = {}

    def run_onboard(limit: str) -> None:
        results[limit] = onboard(lab, tmp_path, "--limit", limit, "--timeout", "120")

    limits = [":".join(clients[:4]), ":".join(clients[4:])]
    threads = [threading.Thread(target=run_onboard, args=(limit,)) for limit in limits]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for limit in limits:
        status, document = results[limit]
        assert status == 0, failures(document)
    assert all(public_key(lab, host) != old_keys[host] for host in clients)
    assert_one_line_per_client()
    status, document = onboard(lab, tmp_path, "--timeout", "120")
    assert status == 0, failures(document)
    assert changed(document) == 0


def test_shared_cache_client_checks_out_by_links(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["storage", "ws1"], shared_nfs=True)
    bootstrap_with_dataset(lab, tmp_path, blob=True)
    (lab.dir / "host_vars").mkdir()
    (lab.dir / "host_vars" / "ws1.yml").write_text("shared_cache: /mnt/nfs/cache\n")
    storage_gid = run(lab, "storage", ["getent", "group", "dvc"]).stdout.split(":")[2]
    run(lab, "ws1", ["groupadd", "--gid", str(int(storage_gid) + 7), "dvc"])
    status, document = onboard(lab, tmp_path, "--pull")
    assert status == 2
    message = next(t["msg"] for t in document["hosts"]["ws1"]["tasks"] if t["status"] == "failed")
    assert f"but {storage_gid} on storage" in message and "groupmod" in message

    run(lab, "ws1", ["groupmod", "--gid", storage_gid, "dvc"])
    status, document = onboard(lab, tmp_path, "--pull")
    assert status == 0, failures(document)
    assert "dvc" in run(lab, "ws1", ["id", "-Gn", "root"]).stdout.split()
    listing = run(lab, "ws1", [DVC, "--cd", WORKDIR, "config", "--list", "--show-origin"]).stdout
    assert "config.local\tcache.dir=/mnt/nfs/cache" in listing
    assert "config.local\tcache.shared=group" in listing
    for name in ("hello.txt", "blob.bin"):
        kind, links = run(lab, "ws1", ["stat", "-c", "%F %h", f"{WORKDIR}/data/{name}"]).stdout.rsplit(" ", 1)
        assert kind == "symbolic link" or int(links) > 1, f"{name} was copied, not linked"
        target = run(lab, "ws1", ["readlink", "-f", f"{WORKDIR}/data/{name}"]).stdout.strip()
        assert kind != "symbolic link" or target.startswith("/mnt/nfs/cache/files/md5/")
    assert read(lab, "ws1", f"{WORKDIR}/data/hello.txt") == "hello v1\n"
    status, document = onboard(lab, tmp_path, "--pull")
    assert status == 0 and changed(document) == 0


def test_refused_storage_then_down_client_then_convergence(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["storage", "ws1", "ws2"])
    bootstrap_with_dataset(lab, tmp_path, blob=True)
    lab.rekey("storage")
    status, document = onboard(lab, tmp_path)
    assert status & 4
    assert document["hosts"]["storage"]["status"] == "unreachable"
    assert "CHANGED" in document["hosts"]["storage"]["tasks"][0]["msg"]
    for host in ("ws1", "ws2"):
        assert document["hosts"][host]["tasks"][-1]["status"] == "skipped"
        assert not lab.host_path(host, "/root/.ssh/known_hosts").exists()
        assert not lab.host_path(host, WORKDIR).exists()
    for account in ("dvc", "git"):
        assert authorized_keys(lab, account) == []

    assert provision("hostkeys", "forget", "-i", str(lab.inventory_path), "storage", home=tmp_path).returncode == 0
    assert provision("hostkeys", "scan", "-i", str(lab.inventory_path), home=tmp_path).returncode == 0
    lab.stop("ws2")
    status, document = onboard(lab, tmp_path, "--timeout", "5")
    assert status == 4, failures(document)
    assert document["hosts"]["ws2"]["status"] == "unreachable"
    assert document["hosts"]["ws1"]["status"] == "changed"
    assert len(marked(authorized_keys(lab, "dvc"), "ws1")) == 1 and not marked(authorized_keys(lab, "dvc"), "ws2")

    lab.start("ws2")
    status, document = onboard(lab, tmp_path)
    assert status == 0, failures(document)
    assert document["hosts"]["ws1"]["status"] == "ok"
    assert len(marked(authorized_keys(lab, "git"), "ws2")) == 1
