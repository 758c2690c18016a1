"""The controller's shared files: an atomic write keeps the old file or gives the new one, one writer at a time."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from provision.local_files import atomic_write, exclusive_lock


def test_atomic_write_sets_exactly_the_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "pins"
    target.write_text("old\n")
    previous = os.umask(0o077)
    try:
        written = atomic_write(target, "new\n", 0o644)
    finally:
        os.umask(previous)
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o7777 == 0o644 and written.st_ino == target.stat().st_ino
    assert sorted(path.name for path in tmp_path.iterdir()) == ["pins"]


def test_a_failed_write_keeps_the_old_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "vault"
    target.write_bytes(b"old")

    def disk_full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"new", 0o600)
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["vault"]


def _another_process_can_lock(path: Path) -> bool:
    """`flock -n` from another process: whether the lock is free."""
    return subprocess.run(["flock", "-n", str(path), "true"], check=False).returncode == 0


@pytest.mark.parametrize("kind", ["lock file", "directory"])
def test_the_lock_holds_other_processes_off_and_is_reentrant(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ".pins.lock" if kind == "lock file" else tmp_path
    with exclusive_lock(path):
        assert not _another_process_can_lock(path)
        with exclusive_lock(path):  # a writer that calls another writer of the same files
            assert not _another_process_can_lock(path)
        assert not _another_process_can_lock(path)
    assert _another_process_can_lock(path)
