"""Clients' marked key lines: exact line formats, replacement by marker, diffs, and the locked swap.

The swap tests run the real remote script (flock, compare-and-swap, install_file.sh) on a local file,
so they need root, as the install step chowns to root.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provision.connection import CommandResult, seal
from provision.engine import Change
from provision.facts import Fact
from provision.tasks.authorized_keys import (
    GIT,
    SFTP,
    AuthorizedKeys,
    AuthorizedKeysFact,
    AuthorizeKeys,
    displayed,
    file_lines,
    key_line,
    line_marker,
    replace_marked_lines,
)
from provision.tasks.client_key import key_fingerprint, shorten_keys
from tests.unit.helpers import FakeContext

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8UoQD7CQXPa6WZQKq7xJn03aThFlp/MY/unOaKFawL"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMd1RpfT6mkg3Zxcv3SXptQ0rkuTaNhk7cH8WDqv3Ddh"
READ_WRITE_SFTP = 'restrict,command="internal-sftp -u 0002 -P symlink,hardlink,setstat,fsetstat,lsetstat"'
HAND_WRITTEN = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8UoQD7CQXPa6WZQKq7xJn03aThFlp/MY/unOaKFawL admin@laptop"


def test_sftp_line_is_restricted_to_internal_sftp_with_group_umask() -> None:
    assert key_line(SFTP, KEY_A, "provision:site:ws1") == \
        f"{READ_WRITE_SFTP} {KEY_A} provision:site:ws1"


def test_read_only_sftp_line_uses_read_only_sftp() -> None:
    assert key_line(SFTP, KEY_A, "provision:site:ws1", read_only=True) == \
        f'restrict,command="internal-sftp -R" {KEY_A} provision:site:ws1'


def test_git_line_forces_git_shell_with_the_original_command() -> None:
    assert key_line(GIT, KEY_A, "provision:site:ws1") == \
        f'restrict,command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"" {KEY_A} provision:site:ws1'


@pytest.mark.parametrize(("line", "marker"), [
    (f'restrict,command="internal-sftp -R" {KEY_A} provision:site:ws1', "provision:site:ws1"),
    (f"{KEY_A}\tprovision:site:ws1 ", "provision:site:ws1"),
    (HAND_WRITTEN, None),
    (f"# {KEY_A} provision:site:ws1", None),
    ("", None),
    (f"{KEY_A} provision:broken", None),
    (f"{KEY_A} provision:site:ws1\r", None),
    (f"{KEY_A}\x0cprovision:site:ws1", None),
])
def test_line_marker(line: str, marker: str | None) -> None:
    assert line_marker(line.encode()) == marker


def test_replacing_one_client_keeps_every_other_line_in_place() -> None:
    content = "\n".join([
        HAND_WRITTEN,
        key_line(SFTP, KEY_A, "provision:site:ws1"),
        key_line(SFTP, KEY_A, "provision:other:ws1"),
        key_line(SFTP, KEY_A, "provision:site:ws2"),
        "# a comment",
    ]) + "\n"
    new_line = key_line(SFTP, KEY_B, "provision:site:ws1")
    result = replace_marked_lines(content.encode(), {"provision:site:ws1": [new_line]})
    assert result.decode().splitlines() == [
        HAND_WRITTEN, new_line, key_line(SFTP, KEY_A, "provision:other:ws1"),
        key_line(SFTP, KEY_A, "provision:site:ws2"), "# a comment",
    ]


def test_new_clients_are_appended_and_duplicates_collapse() -> None:
    content = (key_line(SFTP, KEY_A, "provision:site:ws1") + "\n") * 2
    wanted = {"provision:site:ws1": [key_line(SFTP, KEY_A, "provision:site:ws1")],
              "provision:site:ws2": [key_line(SFTP, KEY_B, "provision:site:ws2")]}
    result = replace_marked_lines(content.encode(), wanted)
    assert result.decode().splitlines() == [key_line(SFTP, KEY_A, "provision:site:ws1"),
                                   key_line(SFTP, KEY_B, "provision:site:ws2")]


def test_an_empty_list_revokes_and_a_file_without_final_newline_gets_one() -> None:
    content = HAND_WRITTEN + "\n" + key_line(GIT, KEY_A, "provision:site:ws1")
    assert replace_marked_lines(content.encode(), {"provision:site:ws1": []}) == HAND_WRITTEN.encode() + b"\n"
    assert replace_marked_lines(b"", {}) == b""


def test_replacing_is_idempotent() -> None:
    wanted = {"provision:site:ws1": [key_line(SFTP, KEY_A, "provision:site:ws1")]}
    once = replace_marked_lines(HAND_WRITTEN.encode() + b"\n", wanted)
    assert replace_marked_lines(once, wanted) == once


#: A restricted line written by hand, with bytes str.splitlines() would split on (form feed, NEL, U+2028),
#: a carriage return and invalid UTF-8: each must stay one line, byte for byte.
TRICKY_LINES = [
    b'restrict,command="internal-sftp -R" ' + KEY_B.encode() + b" admin\x0c" + KEY_A.encode() + b" me",
    b'restrict,command="x" ' + KEY_B.encode() + b" a\xc2\x85" + KEY_A.encode(),
    b'restrict,command="x" ' + KEY_B.encode() + " b\u2028".encode() + KEY_A.encode(),
    b"from=\"10.0.0.1\" " + KEY_B.encode() + b" crlf\r",
    b"# not UTF-8: \xff\xfe",
    b"",
]


def test_foreign_lines_keep_every_byte() -> None:
    content = b"\n".join(TRICKY_LINES) + b"\n"
    new_line = key_line(SFTP, KEY_A, "provision:site:ws1")
    result = replace_marked_lines(content, {"provision:site:ws1": [new_line]})
    assert result == content + new_line.encode() + b"\n"
    assert replace_marked_lines(result, {"provision:site:ws1": []}) == content


_LINE_BYTES = st.binary(max_size=60).map(lambda data: data.replace(b"\n", b""))


@settings(max_examples=300, deadline=None)
@given(foreign=st.lists(_LINE_BYTES, max_size=8), ending=st.sampled_from([b"", b"\n"]),
       clients=st.lists(st.sampled_from(["ws1", "ws2", "ws3"]), max_size=3))
def test_replacing_changes_no_byte_of_a_foreign_line(foreign: list[bytes], ending: bytes,
                                                     clients: list[str]) -> None:
    content = b"\n".join(foreign) + (ending if foreign else b"")
    wanted = {f"provision:site:{client}": [key_line(SFTP, KEY_A, f"provision:site:{client}")] for client in clients}
    result = replace_marked_lines(content, wanted)
    assert result.endswith(b"\n") or not result
    kept = [line for line in result.split(b"\n")[:-1] if line_marker(line) not in wanted]
    assert kept == [line for line in file_lines(content) if line_marker(line) not in wanted]
    added = [line for line in result.split(b"\n")[:-1] if line_marker(line) in wanted]
    assert sorted(added) == sorted(line.encode() for lines in wanted.values() for line in lines)


def test_diffs_escape_control_bytes_and_invalid_utf8() -> None:
    shown = displayed(b"a\x0cb\xff\n")
    assert shown == "a\\x0cb\\xff\n"


def test_keys_are_shortened_to_fingerprints() -> None:
    expected = subprocess.run(["ssh-keygen", "-lf", "-"], input=KEY_A + "\n", capture_output=True, text=True,
                              check=True).stdout.split()[1]
    assert key_fingerprint(KEY_A) == f"ssh-ed25519 {expected}"
    shortened = shorten_keys(key_line(SFTP, KEY_A, "provision:site:ws1"))
    assert shortened == f"{READ_WRITE_SFTP} ssh-ed25519 {expected} provision:site:ws1"
    assert KEY_A.split()[1] not in shortened


# -------------------------------------------------------------- plan and swap on a local file


class LocalShell:
    """Runs the task's argv on this machine; the 'remote' file is a local one."""

    label = "local"

    def __init__(self, staging: Path) -> None:
        self.staging = staging

    def run(self, argv: Sequence[str], *, privileged: bool = False, timeout: float | None = None) -> CommandResult:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60)
        return CommandResult(tuple(argv), done.returncode, done.stdout, done.stderr)

    def stage(self, data: bytes) -> str:
        name, sealed = seal(data)
        path = self.staging / name
        path.write_bytes(sealed)
        return str(path)


class FileContext(FakeContext):
    """storage, whose authorized_keys under `home` is read anew each time AuthorizeKeys asks."""

    def __init__(self, home: Path, *, check: bool = False,
                 after_read: Callable[[], None] | None = None) -> None:
        super().__init__("storage", check=check, session=LocalShell(home))
        self.home = home
        self.reads = 0
        self.after_read = after_read

    def fact(self, fact: Fact) -> Any:
        assert isinstance(fact, AuthorizedKeysFact)
        path = self.home / ".ssh" / "authorized_keys"
        self.reads += 1
        if not path.exists():
            state = AuthorizedKeys(str(self.home), "absent", b"")
        else:
            data = path.read_bytes()
            state = AuthorizedKeys(str(self.home), hashlib.sha256(data).hexdigest(), data)
        if self.after_read is not None:
            self.after_read()
        return state

    def forget(self, fact: Fact) -> None:
        """Nothing is cached."""


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    (tmp_path / ".ssh").mkdir()
    return tmp_path


def _apply(change: Change | None) -> None:
    assert change is not None
    change.apply()


def test_plan_summarizes_and_diffs_with_fingerprints(home: Path) -> None:
    keys = home / ".ssh" / "authorized_keys"
    keys.write_text(key_line(SFTP, KEY_A, "provision:site:ws2") + "\n")
    task = AuthorizeKeys("dvc", {"provision:site:ws1": [key_line(SFTP, KEY_B, "provision:site:ws1")],
                                 "provision:site:ws2": []}, purpose="DVC")
    change = task.plan(FileContext(home))
    assert change is not None
    assert change.summary == f"authorize ws1; revoke ws2 in {keys}"
    assert f"+{READ_WRITE_SFTP} {key_fingerprint(KEY_B)} provision:site:ws1" in change.diff
    assert f"-{READ_WRITE_SFTP} {key_fingerprint(KEY_A)} provision:site:ws2" in change.diff
    assert KEY_A.split()[1] not in change.diff and KEY_B.split()[1] not in change.diff


def test_a_client_without_key_is_pending_under_check(home: Path) -> None:
    task = AuthorizeKeys("dvc", {"provision:site:ws1": None}, purpose="DVC")
    change = task.plan(FileContext(home, check=True))
    assert change is not None and "(key not generated yet)" in change.summary


def test_swap_installs_root_owned_0644(home: Path) -> None:
    line = key_line(SFTP, KEY_A, "provision:site:ws1")
    task = AuthorizeKeys("dvc", {"provision:site:ws1": [line]}, purpose="DVC")
    ctx = FileContext(home)
    _apply(task.plan(ctx))
    keys = home / ".ssh" / "authorized_keys"
    assert keys.read_text() == line + "\n"
    assert keys.stat().st_mode & 0o7777 == 0o644 and keys.stat().st_uid == 0
    assert (home / ".ssh" / "authorized_keys.lock").exists()
    assert task.plan(FileContext(home)) is None


def test_a_write_between_read_and_swap_is_not_lost(home: Path) -> None:
    keys = home / ".ssh" / "authorized_keys"
    keys.write_text(HAND_WRITTEN + "\n")
    foreign = key_line(SFTP, KEY_B, "provision:site:ws9")
    written = []

    def another_process_writes() -> None:
        if not written:
            written.append(True)
            keys.write_text(keys.read_text() + foreign + "\n")

    line = key_line(SFTP, KEY_A, "provision:site:ws1")
    task = AuthorizeKeys("dvc", {"provision:site:ws1": [line]}, purpose="DVC")
    ctx = FileContext(home)
    change = task.plan(ctx)
    ctx.after_read = another_process_writes
    _apply(change)
    assert keys.read_text().splitlines() == [HAND_WRITTEN, foreign, line]
    assert ctx.reads >= 3  # plan, the conflicting round, the retry


def test_concurrent_writers_lose_no_line(home: Path) -> None:
    lines = {f"provision:site:ws{index}": [key_line(SFTP, KEY_A, f"provision:site:ws{index}")] for index in range(12)}
    errors: list[BaseException] = []
    start = threading.Barrier(len(lines))

    def onboard(marker: str) -> None:
        try:
            task = AuthorizeKeys("dvc", {marker: lines[marker]}, purpose="DVC")
            ctx = FileContext(home)
            change = task.plan(ctx)
            start.wait()
            _apply(change)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=onboard, args=(marker,)) for marker in lines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    content = (home / ".ssh" / "authorized_keys").read_text().splitlines()
    assert sorted(content) == sorted(line for group in lines.values() for line in group)
