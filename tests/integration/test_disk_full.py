"""A full DVC remote during `bootstrap --data --tag`: the error names the host, the path and the cause; no
commit or tag points at data the remote lacks, also when the run is interrupted (SIGTERM, SIGKILL) while
`dvc push` meets the full disk; once space is freed the same command converges.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provision.lab import Lab
from tests.integration.clirunner import provision, provision_json
from tests.integration.helpers import failures, missing_tagged_data, run, sh

pytestmark = pytest.mark.integration

DVC_STORAGE = "/mnt/nfs/cache"


def git_remote(lab, *argv: str) -> str:
    return sh(lab, "storage", ["runuser", "-u", "git", "--", "git", "-C", "/mnt/nfs/git/demo.git", *argv])


def dvc_push_on_storage(lab: Lab) -> list[int]:
    """The processes of `dvc push` running inside the storage host."""
    found = []
    for pid in lab.processes("storage"):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"push" in argv and any(part.endswith(b"/dvc") for part in argv):
            found.append(pid)
    return found


def interrupt_during_push(lab: Lab, home: Path, signum: signal.Signals) -> None:
    """`bootstrap --data --tag` stopped by `signum` while its `dvc push` (held still meanwhile) meets the full
    disk; then that push goes on and ends (it fails) with nobody waiting for it."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PROVISION_")}, "HOME": str(home)}
    process = subprocess.Popen([sys.executable, "-m", "provision", "bootstrap", "-i", str(lab.inventory_path),
                                "--data", "data", "--tag", "v1.0"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 600
    while not (pushing := dvc_push_on_storage(lab)):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before dvc push started"
        time.sleep(0.02)
    for pid in pushing:
        os.kill(pid, signal.SIGSTOP)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=300)
    assert "Traceback" not in output, output
    if signum != signal.SIGKILL:
        assert process.returncode == 130 and "interrupted" in output, output
    for pid in pushing:
        os.kill(pid, signal.SIGCONT)
    while dvc_push_on_storage(lab):
        assert time.monotonic() < deadline, "dvc push did not end"
        time.sleep(0.2)


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

    for signum in (signal.SIGTERM, signal.SIGKILL):
        interrupt_during_push(lab, tmp_path, signum)
        assert git_remote(lab, "tag") == "" and git_remote(lab, "rev-list", "--all") == commits_before, signum
        assert missing_tagged_data(lab) == ""

    run(lab, "storage", ["umount", DVC_STORAGE])
    status, document = provision_json("bootstrap", "-i", inventory, "--data", "data", "--tag", "v1.0", home=tmp_path)
    assert status == 0, failures(document)
    assert git_remote(lab, "tag") == "v1.0\n" and missing_tagged_data(lab) == ""
    status, document = provision_json("bootstrap", "-i", inventory, "--data", "data", "--tag", "v1.0", home=tmp_path)
    assert status == 0 and sum(stats["changed"] for stats in document["stats"].values()) == 0, failures(document)
