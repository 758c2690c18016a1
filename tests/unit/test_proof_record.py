"""The recorded proof: its script run for real (python3, git) on a local checkout, compared the way a re-run
compares it. Any change to what the proof depends on must make it fail; a changed secret alone must not
show in it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from provision.remote import BatchOutput
from provision.tasks.proof_record import (
    ACCESS,
    DATA,
    RECORD_PATH,
    ProofRecordFact,
    ProofState,
    combined_digest,
    controller_half,
    proof_argv,
)

CREDENTIALS = ("password", "passphrase")
CONTROLLER = controller_half({"fingerprint": "ssh-ed25519 SHA256:abc", "dvc": ["3.67.1", True]})
DVC_FILE = """outs:
- md5: 0123456789abcdef0123456789abcdef.dir
  size: 9
  nfiles: 1
  hash: md5
  path: data
"""
LOCK_FILE = """schema: '2.0'
stages:
  train:
    cmd: python train.py
    outs:
    - path: 'model out'
      md5: 00112233445566778899aabbccddeeff
      size: 4
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                   check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "demo"
    (repo / ".dvc").mkdir(parents=True)
    (repo / ".dvc" / "config").write_text("[core]\n    remote = data\n")
    (repo / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    (repo / ".dvc" / "config.local").write_text("['remote \"data\"']\n    user = dvc\n    password = one\n")
    (repo / "data.dvc").write_text(DVC_FILE)
    (repo / "dvc.lock").write_text(LOCK_FILE)
    (repo / "data").mkdir()
    (repo / "data" / "hello.txt").write_text("hello v1\n")
    (repo / "model out").write_text("mod\n")
    (repo / ".gitignore").write_text("/data\n/model out\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "v1")
    return repo


def read(repo: Path) -> ProofState:
    fact = ProofRecordFact(str(repo), CREDENTIALS)
    done = subprocess.run(fact.argv(), capture_output=True, text=True, check=False)
    return fact.parse(BatchOutput(done.returncode, done.stdout))


def record(repo: Path, kind: str = DATA) -> None:
    subprocess.run(proof_argv("write", str(repo), CREDENTIALS, kind, CONTROLLER), check=True)


def test_no_record_and_no_checkout_hold_nothing(checkout: Path, tmp_path: Path) -> None:
    assert not read(checkout).holds(CONTROLLER, kind=ACCESS)
    assert not read(tmp_path / "absent").holds(CONTROLLER, kind=ACCESS)


def test_a_record_holds_while_nothing_changed_and_is_private_and_ignored(checkout: Path) -> None:
    record(checkout)
    state = read(checkout)
    assert state.holds(CONTROLLER, kind=DATA) and state.holds(CONTROLLER, kind=ACCESS)
    assert state.recorded_digest == combined_digest(state.client_half or "", CONTROLLER)
    assert "path: data" in state.dvc_files and "model out" in state.dvc_files
    path = checkout / RECORD_PATH
    assert path.stat().st_mode & 0o777 == 0o600
    status = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == ""


def test_an_access_record_does_not_say_the_data_is_there(checkout: Path) -> None:
    record(checkout, ACCESS)
    state = read(checkout)
    assert state.holds(CONTROLLER, kind=ACCESS) and not state.holds(CONTROLLER, kind=DATA)


def _touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


CHANGES = {
    "changed file": lambda repo: (repo / "data" / "hello.txt").write_text("hello v2\n"),
    "same size, later mtime": lambda repo: _touch_later(repo / "data" / "hello.txt"),
    "missing file": lambda repo: (repo / "data" / "hello.txt").unlink(),
    "extra file": lambda repo: (repo / "data" / "extra.txt").write_text("x"),
    "stage output": lambda repo: (repo / "model out").write_text("new\n"),
    "edited .dvc file": lambda repo: (repo / "data.dvc").write_text(DVC_FILE.replace("size: 9", "size: 10")),
    "new commit": lambda repo: git(repo, "commit", "-q", "--allow-empty", "-m", "next"),
    "remote user": lambda repo: (repo / ".dvc" / "config.local").write_text(
        "['remote \"data\"']\n    user = other\n    password = one\n"),
    "committed config": lambda repo: (repo / ".dvc" / "config").write_text("[core]\n    remote = other\n"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_change_it_depends_on_breaks_it(checkout: Path, change: str) -> None:
    record(checkout)
    CHANGES[change](checkout)
    assert not read(checkout).holds(CONTROLLER, kind=ACCESS)


def test_controller_inputs_break_it(checkout: Path) -> None:
    record(checkout)
    rotated = controller_half({"fingerprint": "ssh-ed25519 SHA256:new", "dvc": ["3.67.1", True]})
    other_dvc = controller_half({"fingerprint": "ssh-ed25519 SHA256:abc", "dvc": ["3.68.0", True]})
    state = read(checkout)
    assert not state.holds(rotated, kind=ACCESS) and not state.holds(other_dvc, kind=ACCESS)


def test_a_secret_is_no_input(checkout: Path) -> None:
    record(checkout)
    (checkout / ".dvc" / "config.local").write_text("['remote \"data\"']\n    user = dvc\n    password = two\n")
    assert read(checkout).holds(CONTROLLER, kind=DATA)
    assert "one" not in (checkout / RECORD_PATH).read_text()
