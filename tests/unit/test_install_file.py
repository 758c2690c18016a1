"""The atomic install (templates/remote/install_file.sh) and the dvc probe run by root on this machine: where root
refuses to write or run anything."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.connection import LocalSession
from provision.errors import ProvisionError
from provision.remote import script
from provision.tasks.files import install_script, write_file
from provision.tasks.packages import DvcFact, DvcState, EnsureDvc
from tests.unit.helpers import FakeContext

NOBODY = 65534


@pytest.fixture()
def session() -> Iterator[LocalSession]:
    local = LocalSession(timeout=30)
    yield local
    local.close()


def _leftovers(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.startswith(".provision.")]


def test_root_installs_where_only_root_writes(session: LocalSession, tmp_path: Path) -> None:
    target = tmp_path / "etc" / "file"
    target.parent.mkdir(mode=0o755)
    write_file(FakeContext("local", session=session), str(target), b"secret\n", owner="root", group="root", mode=0o600)
    assert target.read_bytes() == b"secret\n"
    assert target.stat().st_mode & 0o7777 == 0o600 and target.stat().st_uid == 0


@pytest.mark.parametrize("where", ["directory", "ancestor"])
def test_root_refuses_a_directory_another_account_owns(session: LocalSession, tmp_path: Path, where: str) -> None:
    ancestor = tmp_path / "home"
    directory = ancestor / ".ssh"
    directory.mkdir(parents=True, mode=0o755)
    ancestor.chmod(0o755)
    os.chown(directory if where == "directory" else ancestor, NOBODY, NOBODY)
    target = directory / "known_hosts"
    with pytest.raises(ProvisionError, match=rf"refusing to write {target} as root: .* belongs to uid {NOBODY}"):
        write_file(FakeContext("local", session=session), str(target), b"data\n", mode=0o644)
    assert not target.exists() and _leftovers(directory) == []


def test_root_refuses_a_directory_its_group_can_write(session: LocalSession, tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(0o2775)
    with pytest.raises(ProvisionError, match="is writable by its group or others"):
        write_file(FakeContext("local", session=session), str(directory / "file"), b"data\n", mode=0o644)
    assert _leftovers(directory) == []


def test_a_staged_file_swapped_for_a_link_is_not_followed(session: LocalSession, tmp_path: Path) -> None:
    secret = tmp_path / "root-only"
    secret.write_text("root's secret\n")
    target = tmp_path / "out" / "authorized_keys"
    target.parent.mkdir(mode=0o755)
    staged = session.stage(b"what was staged\n")
    os.unlink(staged)
    os.symlink(secret, staged)
    result = session.run(script(install_script(), staged, str(target), "", "", "0644"), privileged=True)
    assert not result.ok
    assert not target.exists() and _leftovers(target.parent) == []


def test_a_staged_file_rewritten_after_its_upload_is_refused(session: LocalSession, tmp_path: Path) -> None:
    """Same inode, same owner, no link: only the seal tells that the connecting user changed it."""
    target = tmp_path / "out" / "sshd.conf"
    target.parent.mkdir(mode=0o755)
    staged = session.stage(b"Match User dvc\n")
    with open(staged, "r+b") as handle:
        handle.write(b"PermitRootLogin yes\n")
    result = session.run(script(install_script(), staged, str(target), "", "", "0644"), privileged=True)
    assert not result.ok and "changed after its upload" in result.stderr
    assert not target.exists() and _leftovers(target.parent) == []


def test_root_runs_nothing_from_a_dvc_venv_another_account_can_change(session: LocalSession, tmp_path: Path) -> None:
    """The dvc probe, as root, reports such a venv instead of running its dvc; the task then refuses it."""
    home = tmp_path / "home"
    venv = home / "dvc"
    (venv / "bin").mkdir(parents=True)
    marker = tmp_path / "planted-dvc-ran"
    dvc = venv / "bin" / "dvc"
    dvc.write_text(f"#!/bin/sh\ntouch {marker}\necho 3.60.0\n")
    dvc.chmod(0o755)
    os.chown(home, NOBODY, NOBODY)
    probe = session.run(DvcFact(str(venv)).argv(), privileged=True)
    state = DvcState.parse(probe.stdout)
    assert state.venv_unsafe == f"{home} belongs to uid {NOBODY}, who could swap what is in it"
    assert state.venv_version is None and not marker.exists()
    context = FakeContext("ws1", {DvcFact(str(venv)).key: state})
    with pytest.raises(ProvisionError, match=rf"dvc_venv {venv}: .* root would run and install programs"):
        EnsureDvc(">=3.50,<4", str(venv)).plan(context)
