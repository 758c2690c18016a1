"""A full DVC remote during `bootstrap --data --tag`: the error names the host, the path and the cause; no
commit or tag points at data the remote lacks; once space is freed the same command converges.
"""

from __future__ import annotations

import pytest

from tests.integration.clirunner import provision, provision_json
from tests.integration.helpers import failures, missing_tagged_data, run, sh

pytestmark = pytest.mark.integration

DVC_STORAGE = "/mnt/nfs/cache"


def git_remote(lab, *argv: str) -> str:
    return sh(lab, "storage", ["runuser", "-u", "git", "--", "git", "-C", "/mnt/nfs/git/demo.git", *argv])


def test_a_full_remote_is_reported_and_nothing_names_missing_data(make_lab, tmp_path) -> None:
    lab = make_lab(["storage", "ws1"])
    inventory = str(lab.inventory_path)
    for _ in range(2):  # the second run sets up the small filesystem mounted over dvc_storage
        done = provision("bootstrap", "-i", inventory, home=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        run(lab, "storage", ["sh", "-c", f"mountpoint -q {DVC_STORAGE} || mount -t tmpfs -o size=256k tmpfs "
                             f"{DVC_STORAGE}"])
    run(lab, "storage", ["sh", "-c", "mkdir -p /mnt/nfs/demo/data && head -c 1000000 /dev/urandom > "
                         "/mnt/nfs/demo/data/big.bin && echo v1 > /mnt/nfs/demo/data/hello.txt && "
                         "chown -R git:dvc /mnt/nfs/demo/data"])
    commits_before = git_remote(lab, "rev-list", "--all")

    status, document = provision_json("bootstrap", "-i", inventory, "--data", "data", "--tag", "v1.0", home=tmp_path)
    assert status == 2
    message = failures(document)["storage"][0]
    assert "No space left on device" in message and f"-> '{DVC_STORAGE}/files/md5/" in message, message
    assert git_remote(lab, "tag") == "" and git_remote(lab, "rev-list", "--all") == commits_before
    assert missing_tagged_data(lab) == ""

    run(lab, "storage", ["umount", DVC_STORAGE])
    status, document = provision_json("bootstrap", "-i", inventory, "--data", "data", "--tag", "v1.0", home=tmp_path)
    assert status == 0, failures(document)
    assert git_remote(lab, "tag") == "v1.0\n" and missing_tagged_data(lab) == ""
    status, document = provision_json("bootstrap", "-i", inventory, "--data", "data", "--tag", "v1.0", home=tmp_path)
    assert status == 0 and sum(stats["changed"] for stats in document["stats"].values()) == 0, failures(document)
