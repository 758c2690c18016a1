"""storage_user's sshd drop-in and SFTP chroot: the file, its owner, refusals, and the chroot's path rules
(a recording session and a fake login stand in for the host; the lab tests run the real sshd)."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.errors import InputError, ProvisionError
from provision.facts import FileState
from provision.inventory import Settings, load_inventory
from provision.plays.bootstrap import check_settings
from provision.tasks.authorized_keys import SFTP, SFTP_READ_WRITE_COMMAND, AuthorizedKeys, key_line
from provision.tasks.sshd_config import (
    SshdStorageUser,
    chroot_components,
    chroot_problem,
    created_chroot_directories,
    drop_in_owner,
    drop_in_path,
    legacy_drop_in_path,
    render_drop_in,
)
from tests.unit.helpers import write_inventory
from tests.unit.test_rotate_password import Context, Login

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8UoQD7CQXPa6WZQKq7xJn03aThFlp/MY/unOaKFawL"


def _settings(tmp_path: Path, **variables: str) -> Settings:
    return load_inventory(write_inventory(tmp_path, {"hosts": {"ws1": {}}}, **variables)).hosts["nas"].settings


def _file(content: str) -> FileState:
    return FileState(True, "root", "root", 0o644, "regular file", content)


def test_drop_in_is_one_match_block_with_the_chroot_and_an_owner(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    for password in (False, True):
        text = render_drop_in(settings, password=password)
        lines = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert lines[0] == "Match User dvc"
        assert all(line.startswith("\t") for line in lines[1:]), "a line outside the Match block is a global setting"
        assert "\tChrootDirectory /mnt/nfs" in lines and "\tPermitTTY no" in lines
        assert ("\tPasswordAuthentication yes" in lines) == password
        assert (f"\tForceCommand {SFTP_READ_WRITE_COMMAND}" in lines) == password
        assert drop_in_owner(text) == "site"
    assert drop_in_path("dvc") == "/etc/ssh/sshd_config.d/10-provision-dvc.conf"
    assert settings.sftp_root == "/mnt/nfs" and settings.sftp_dvc_storage == "/cache"


def _task(tmp_path: Path, state: FileState, *, password: bool = False, legacy: FileState | None = None,
          keys: bytes = b"", login: Login | None = None) -> tuple[SshdStorageUser, Context]:
    settings = _settings(tmp_path)
    task = SshdStorageUser(settings, password, login or Login(set()))  # type: ignore[arg-type]
    facts = {task.fact.key: state, task.legacy_fact.key: legacy or FileState(False)}
    for fact in task.key_facts:
        facts[fact.key] = AuthorizedKeys(f"/home/{fact.account}", "digest", keys)
    return task, Context(facts)


def test_drop_in_steps(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    task, ctx = _task(tmp_path, FileState(False))
    change = task.plan(ctx)  # type: ignore[arg-type]
    assert change is not None and change.summary.startswith("create /etc/ssh/sshd_config.d/10-provision-dvc.conf")
    assert "+Match User dvc" in change.diff and "+\tChrootDirectory /mnt/nfs" in change.diff
    task, ctx = _task(tmp_path, _file(render_drop_in(settings, password=False)))
    assert task.plan(ctx) is None  # type: ignore[arg-type]
    with_password = _file(render_drop_in(settings, password=True))
    task, ctx = _task(tmp_path, with_password, password=True, login=Login(set(), ("publickey",)))
    change = task.plan(ctx)  # type: ignore[arg-type]
    assert change is not None and change.summary.startswith("reload sshd")
    task, ctx = _task(tmp_path, with_password)
    change = task.plan(ctx)  # type: ignore[arg-type]
    assert change is not None and "-\tPasswordAuthentication yes" in change.diff


def test_the_password_only_drop_in_of_earlier_versions_goes(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    legacy = _file("Match User dvc\n\tPasswordAuthentication yes\n")
    task, ctx = _task(tmp_path, _file(render_drop_in(settings, password=False)), legacy=legacy)
    change = task.plan(ctx)  # type: ignore[arg-type]
    assert change is not None and change.summary.startswith(f"remove {legacy_drop_in_path('dvc')}")
    assert "-\tPasswordAuthentication yes" in change.diff


def test_another_inventorys_drop_in_is_never_changed(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    theirs = render_drop_in(settings, password=True).replace("inventory: site", "inventory: lab")
    task, ctx = _task(tmp_path, _file(theirs))
    with pytest.raises(ProvisionError, match=r"inventory site would change .*also serves inventory lab"):
        task.plan(ctx)  # type: ignore[arg-type]
    task, ctx = _task(tmp_path, _file(theirs), password=True)
    with pytest.raises(ProvisionError, match="also serves inventory lab"):
        task.plan(ctx)  # type: ignore[arg-type]
    alike = render_drop_in(settings, password=False).replace("inventory: site", "inventory: lab")
    task, ctx = _task(tmp_path, _file(alike))
    assert task.plan(ctx) is None  # type: ignore[arg-type]
    assert "belongs to inventory lab" in ctx.notes[0]
    task, ctx = _task(tmp_path, _file("Match User dvc\n\tChrootDirectory /srv\n"))
    with pytest.raises(ProvisionError, match="no owner line"):
        task.plan(ctx)  # type: ignore[arg-type]


def test_key_lines_of_another_inventory_block_a_change(tmp_path: Path) -> None:
    lines = (key_line(SFTP, KEY, "provision:lab:ws7") + "\n").encode()
    task, ctx = _task(tmp_path, FileState(False), keys=lines)
    with pytest.raises(ProvisionError, match="also serves inventory lab"):
        task.plan(ctx)  # type: ignore[arg-type]
    own = (key_line(SFTP, KEY, "provision:site:ws1") + "\n").encode()
    task, ctx = _task(tmp_path, FileState(False), keys=own)
    assert task.plan(ctx) is not None  # type: ignore[arg-type]


def test_chroot_path_rules(tmp_path: Path) -> None:
    assert chroot_components("/mnt/nfs/dvc") == ["/", "/mnt", "/mnt/nfs", "/mnt/nfs/dvc"]
    assert created_chroot_directories(_settings(tmp_path, dvc_storage="/mnt/nfs/dvc/a/cache")) == [
        "/mnt/nfs/dvc", "/mnt/nfs/dvc/a"]
    assert created_chroot_directories(_settings(tmp_path)) == []
    assert chroot_problem("/mnt/nfs", FileState(True, "root", "root", 0o755, "directory")) == ""
    assert chroot_problem("/mnt/nfs", FileState(True, "root", "dvc", 0o775, "directory")) == "is root:dvc 0775"
    assert chroot_problem("/mnt/nfs", FileState(True, "nobody", "root", 0o755, "directory")) == "is nobody:root 0755"
    assert chroot_problem("/mnt/nfs", FileState(False)) == "does not exist"


def test_dvc_storage_directly_in_the_root_is_refused(tmp_path: Path) -> None:
    inventory = load_inventory(write_inventory(tmp_path, {"hosts": {"ws1": {}}}, nfs_root="/", dvc_storage="/cache",
                                               server_repo="/srv/demo", git_remote="/srv/git/demo.git"))
    with pytest.raises(InputError, match="SFTP chroot"):
        check_settings(inventory.hosts["nas"])
