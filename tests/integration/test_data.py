"""`provision data` on the lab: releases from storage and from a client, checkout, fetch, versions,
a refused release, and the pipeline's entrypoint, with real sshd, git and dvc.

One lab for the module (storage, ws1, ws2): bootstrapped, v1.0 released from storage, clients onboarded,
then v1.1 and v1.2 released from ws1, as a team's day goes; what each step saw is recorded, so that every
test stands on the module's lab alone, not on the tests before it.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from provision.lab import Lab
from tests.integration.clirunner import provision, provision_json
from tests.integration.helpers import KEY, WORKDIR, bootstrap_storage, failures, own_lab, put_dataset, sh

pytestmark = pytest.mark.integration

SERVER_REPO = "/mnt/nfs/demo"
DVC_STORAGE = "/mnt/nfs/cache"
BARE_REPO = "/mnt/nfs/git/demo.git"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Release:
    """A release from ws1 (`data release TAG`), and what the repositories held right after it."""

    status: int
    document: Any
    stderr: str
    ws1_data: dict[str, str]
    ws1_head: str
    bare_refs: list[str]  # main and TAG^{commit} in git_remote
    tags: list[str]


@dataclass
class Site:
    lab: Lab
    home: Path
    releases: dict[str, Release] = field(default_factory=dict)
    tags_at_v1_0: list[str] = field(default_factory=list)
    ws1_data_at_v1_0: dict[str, str] = field(default_factory=dict)
    server_data: dict[str, str] = field(default_factory=dict)

    def data(self, *args: str, on: str) -> tuple[int, Any, str]:
        """`provision data ARGS -i INVENTORY --on HOST --json`: status, parsed document, stderr."""
        done = provision("data", *args, "-i", str(self.lab.inventory_path), "--on", on, "--json", home=self.home)
        document = json.loads(done.stdout) if done.returncode == 0 else None
        return done.returncode, document, done.stderr

    def release_from_ws1(self, tag: str, message: str, new_file: str, size: int) -> None:
        """ws1 adds `new_file` (`size` random bytes) to data and releases it as `tag`."""
        sh(self.lab, "ws1", ["sh", "-c", 'head -c "$2" /dev/urandom > "$1"', "sh", f"{WORKDIR}/data/{new_file}",
                             str(size)])
        status, document, stderr = self.data("release", tag, "--path", "data", "-m", message, on="ws1")
        self.releases[tag] = Release(status, document, stderr, tree(self.lab, "ws1", f"{WORKDIR}/data"),
                                     sh(self.lab, "ws1", ["git", "-C", WORKDIR, "rev-parse", "HEAD"]).strip(),
                                     bare_git(self.lab, ["rev-parse", "main", f"{tag}^{{commit}}"]).split(),
                                     tags(self.lab))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """storage bootstrapped with `data` released as v1.0 from storage itself; ws1 and ws2 onboarded; then
    v1.1 (hello.txt changed, new.bin) and v1.2 (v12.bin) released from ws1."""
    with own_lab(tmp_path_factory, "data", ["storage", "ws1", "ws2"]) as (lab, home):
        bootstrap_storage(lab, home)
        put_dataset(lab, blob=True)
        site = Site(lab, home)
        status, document, stderr = site.data("release", "v1.0", "--path", "data", "-m", "first dataset", on="storage")
        assert status == 0, stderr
        assert document["files"] == 2 and document["objects_pushed"] == 3  # hello.txt, blob.bin, listing
        status, onboarded = provision_json("onboard", "-i", str(lab.inventory_path), "--pull", home=home)
        assert status == 0, failures(onboarded)
        site.tags_at_v1_0 = tags(lab)
        site.ws1_data_at_v1_0 = tree(lab, "ws1", f"{WORKDIR}/data")
        site.server_data = tree(lab, "storage", f"{SERVER_REPO}/data")
        sh(lab, "ws1", ["sh", "-c", 'printf "hello v1.1\\n" > "$1/data/hello.txt"', "sh", WORKDIR])
        site.release_from_ws1("v1.1", "v1.1: new.bin", "new.bin", 5000)
        site.release_from_ws1("v1.2", "v1.2: v12.bin", "v12.bin", 7000)
        yield site


def tree(lab: Lab, host: str, path: str) -> dict[str, str]:
    """{relative path: sha256} of every file under `path` on `host` (links into DVC's cache followed)."""
    listing = sh(lab, host, ["sh", "-c", 'cd "$1" && find -L . -type f -exec sha256sum {} +', "sh", path])
    return {line.split(maxsplit=1)[1].removeprefix("./"): line.split()[0] for line in listing.splitlines()}


def work_files(lab: Lab, host: str) -> dict[str, str]:
    """`tree` of the client's checkout without git's and DVC's own directories (cache, state)."""
    return {path: digest for path, digest in tree(lab, host, WORKDIR).items()
            if not path.startswith((".git/", ".dvc/cache/", ".dvc/tmp/"))}


def bare_git(lab: Lab, argv: list[str]) -> str:
    """git in the bare repository on storage (as root, which git would otherwise refuse there)."""
    return sh(lab, "storage", ["git", "-c", "safe.directory=*", "-C", BARE_REPO, *argv])


def tags(lab: Lab) -> list[str]:
    return bare_git(lab, ["tag", "--list"]).split()


def test_release_from_storage_is_tagged_and_pulled_by_clients(site: Site) -> None:
    assert site.tags_at_v1_0 == ["v1.0"]
    assert site.ws1_data_at_v1_0 == site.server_data


def test_release_from_a_client_pushes_only_from_the_client(site: Site) -> None:
    release = site.releases["v1.1"]
    assert release.status == 0, release.stderr
    assert release.document["tag"] == "v1.1" and release.document["files"] == 3
    assert release.document["objects_pushed"] == 3  # hello.txt, new.bin and the directory listing
    assert release.tags == ["v1.0", "v1.1"]
    assert tree(site.lab, "storage", f"{SERVER_REPO}/data") == site.server_data  # the server's work tree stays
    assert release.bare_refs == [release.ws1_head, release.ws1_head]
    assert site.releases["v1.2"].status == 0, site.releases["v1.2"].stderr


def test_release_of_an_existing_tag_is_refused_and_changes_nothing(site: Site) -> None:
    before = sh(site.lab, "ws2", ["git", "-C", WORKDIR, "status", "--porcelain"])
    status, _, stderr = site.data("release", "v1.0", "--path", "data", "-m", "again", on="ws2")
    assert status == 2
    assert "tag v1.0 already exists" in stderr and "in origin" in stderr and "nothing changed" in stderr
    assert sh(site.lab, "ws2", ["git", "-C", WORKDIR, "status", "--porcelain"]) == before


def test_checkout_restores_byte_identical_versions(site: Site) -> None:
    lab = site.lab
    status, document, stderr = site.data("checkout", "v1.1", on="ws2")
    assert status == 0, stderr
    assert document["added"] == ["data/new.bin"] and document["modified"] == ["data/hello.txt"]
    assert tree(lab, "ws2", f"{WORKDIR}/data") == site.releases["v1.1"].ws1_data
    status, document, stderr = site.data("checkout", "v1.0", on="ws2")
    assert status == 0, stderr
    assert document["removed"] == ["data/new.bin"] and document["modified"] == ["data/hello.txt"]
    assert tree(lab, "ws2", f"{WORKDIR}/data") == site.server_data


def test_checkout_refuses_to_overwrite_local_changes_unless_forced(site: Site) -> None:
    lab = site.lab
    hello = f"{WORKDIR}/data/hello.txt"
    sh(lab, "ws2", ["sh", "-c", 'rm -f "$1" && printf "my edit\\n" > "$1"', "sh", hello])
    status, _, stderr = site.data("checkout", "v1.1", on="ws2")
    assert status == 2 and "data/hello.txt" in stderr and "--force" in stderr
    assert sh(lab, "ws2", ["cat", hello]) == "my edit\n"
    status, _, stderr = site.data("checkout", "v1.0", "--force", on="ws2")
    assert status == 0, stderr
    assert tree(lab, "ws2", f"{WORKDIR}/data") == site.server_data


def test_failed_data_push_leaves_no_tag_and_no_commit(site: Site) -> None:
    lab = site.lab
    head = sh(lab, "ws1", ["git", "-C", WORKDIR, "rev-parse", "HEAD"])
    dvcfile = sh(lab, "ws1", ["cat", f"{WORKDIR}/data.dvc"])
    sh(lab, "ws1", ["sh", "-c", 'head -c 3000 /dev/urandom > "$1/data/more.bin"', "sh", WORKDIR])
    sh(lab, "storage", ["find", DVC_STORAGE, "-type", "d", "-exec", "chmod", "a-w", "{}", "+"])
    try:
        status, _, stderr = site.data("release", "v1.3", "--path", "data", "-m", "never", on="ws1")
        assert status == 2, stderr and "nothing was tagged or committed" in stderr
        assert "v1.3" not in tags(lab)
        assert sh(lab, "ws1", ["git", "-C", WORKDIR, "tag", "--list", "v1.3"]) == ""
        assert sh(lab, "ws1", ["git", "-C", WORKDIR, "rev-parse", "HEAD"]) == head
        assert bare_git(lab, ["rev-parse", "main"]) == head
        assert sh(lab, "ws1", ["cat", f"{WORKDIR}/data.dvc"]) == dvcfile
        assert sh(lab, "ws1", ["git", "-C", WORKDIR, "status", "--porcelain"]) == ""
    finally:
        sh(lab, "storage", ["find", DVC_STORAGE, "-type", "d", "-exec", "chmod", "ug+w", "{}", "+"])
        sh(lab, "ws1", ["rm", "-f", f"{WORKDIR}/data/more.bin"])


def test_fetch_fills_the_cache_without_touching_the_work_tree(site: Site) -> None:
    lab = site.lab
    for version in ("v1.1", "v1.0"):  # ws2 at v1.0 with v1.1 in its cache, whatever the tests before did
        status, _, stderr = site.data("checkout", version, "--force", on="ws2")
        assert status == 0, stderr
    work_tree = work_files(lab, "ws2")
    cache_before = tree(lab, "ws2", f"{WORKDIR}/.dvc/cache")
    status, document, stderr = site.data("fetch", "v1.2", "--jobs", "2", on="ws2")
    assert status == 0, stderr
    assert document["objects_copied"] == 2 and document["bytes_copied"] > 7000  # v12.bin and the listing
    assert work_files(lab, "ws2") == work_tree
    assert set(cache_before) < set(tree(lab, "ws2", f"{WORKDIR}/.dvc/cache"))
    assert sh(lab, "ws2", ["git", "-C", WORKDIR, "worktree", "list"]).count("\n") == 1
    # Checking out the fetched version needs no data from storage: it is all in the cache now.
    sh(lab, "storage", ["chmod", "0", DVC_STORAGE])
    try:
        status, document, stderr = site.data("checkout", "v1.2", on="ws2")
    finally:
        sh(lab, "storage", ["chmod", "2775", DVC_STORAGE])
    assert status == 0, stderr
    # ws2 was at v1.0: new.bin came with v1.1, hello.txt changed then
    assert document["added"] == ["data/new.bin", "data/v12.bin"] and document["modified"] == ["data/hello.txt"]
    assert document["bytes"] == 5000 + 7000 + len("hello v1.1\n")
    assert tree(lab, "ws2", f"{WORKDIR}/data") == site.releases["v1.2"].ws1_data


def test_versions_json_matches_the_tags(site: Site) -> None:
    status, document, stderr = site.data("versions", on="ws2")
    assert status == 0, stderr
    assert [version["tag"] for version in document] == tags(site.lab)
    by_tag = {version["tag"]: version for version in document}
    assert by_tag["v1.0"]["message"].strip() == "first dataset"
    assert [(d["path"], d["files"], d["bytes"]) for d in by_tag["v1.0"]["datasets"]] == [("data", 2, 20009)]
    assert [(d["path"], d["files"], d["bytes"]) for d in by_tag["v1.1"]["datasets"]] == [("data", 3, 25011)]
    commits = bare_git(site.lab, ["rev-parse", "v1.0^{commit}", "v1.1^{commit}"]).split()
    assert [by_tag["v1.0"]["commit"], by_tag["v1.1"]["commit"]] == commits
    assert by_tag["v1.2"]["datasets"][0]["files"] == 4


def test_pipeline_entrypoint_checks_out_and_releases_in_the_lab(site: Site) -> None:
    """The image's entrypoint, run for real on ws1 (no Docker): a fresh clone, checkout, store a model, roll back."""
    lab = site.lab
    secrets = "/root/pipeline-secrets"
    workdir = "/root/pipeline-work"
    sh(lab, "ws1", ["mkdir", "-m", "0700", "-p", secrets])
    sh(lab, "ws1", ["install", "-m", "0400", KEY, f"{secrets}/id_ed25519"])
    config_local = sh(lab, "ws1", ["cat", f"{WORKDIR}/.dvc/config.local"]).replace(KEY, f"{secrets}/id_ed25519")
    sh(lab, "ws1", ["sh", "-c", 'umask 277 && cat > "$1"', "sh", f"{secrets}/config.local"], input=config_local)
    git_url = sh(lab, "ws1", ["git", "-C", WORKDIR, "remote", "get-url", "origin"]).strip()
    # The image's copy of the tool, placed in ws1's private /root: the checkout itself may sit where lab
    # hosts cannot see it (a clone under /tmp, which each host has of its own).
    source = "/root/provision-src"
    for part in ("provision", "templates"):
        shutil.copytree(REPO_ROOT / part, lab.host_path("ws1", f"{source}/{part}"),
                        ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    entrypoint = f"{source}/templates/pipeline/entrypoint.sh"
    environment = ["env", f"PYTHONPATH={source}", "PATH=/usr/local/bin:/usr/bin:/bin",
                   f"PROVISION_COMMAND={sys.executable} -m provision", f"PROVISION_WORKDIR={workdir}",
                   f"PROVISION_SECRETS_DIR={secrets}",
                   "PROVISION_KNOWN_HOSTS=/root/.ssh/known_hosts", f"PROVISION_GIT_URL={git_url}"]
    checkout = json.loads(sh(lab, "ws1", [*environment, "sh", entrypoint, "checkout", "v1.2"]))
    assert checkout["tag"] == "v1.2"
    assert tree(lab, "ws1", f"{workdir}/data") == site.releases["v1.2"].ws1_data
    sh(lab, "ws1", ["sh", "-c", 'mkdir -p "$1/model_output" && printf "weights\\n" > "$1/model_output/model.pt"',
                    "sh", workdir])
    released = json.loads(sh(lab, "ws1", [*environment, "PROVISION_MESSAGE=model of v1.2", "sh", entrypoint,
                                          "release", "model-1", "model_output"]))
    assert released["tag"] == "model-1" and released["files"] == 1
    assert "model-1" in tags(lab)
    assert sh(lab, "ws1", ["readlink", f"{workdir}/.dvc/config.local"]).strip() == f"{secrets}/config.local"
    rolled_back = json.loads(sh(lab, "ws1", [*environment, "PROVISION_STEP=checkout", "PROVISION_VERSION=v1.0",
                                             "sh", entrypoint]))
    assert rolled_back["removed"] == ["data/new.bin", "data/v12.bin"]
    assert tree(lab, "ws1", f"{workdir}/data") == site.server_data
