"""Typed facts: the `key value` lines probes print, and probes run here by sh, parsed by their facts."""

from __future__ import annotations

import base64
import getpass
import subprocess
from pathlib import Path

from provision.facts import Fact, KeyValues, UserGroupsFact, output_lines
from provision.remote import BatchOutput
from provision.tasks.git_repo import BareRepoFact, BareRepoState
from provision.tasks.host_info import SystemFact, SystemInfo
from provision.tasks.packages import GitFact, GitState


def probed(fact: Fact) -> object:
    """The fact's value on this machine: its argv run as it would run on a host, its output parsed."""
    result = subprocess.run(fact.argv(), capture_output=True, text=True, check=False)
    return fact.parse(BatchOutput(result.returncode, result.stdout))


def test_key_values_keep_order_and_repeats_and_read_files_as_base64() -> None:
    encoded = base64.b64encode(b"[core]\n    remote = data\n").decode()
    values = KeyValues.parse(f"dir repo\nobject a1 yes\nobject b2 no\nempty\nfile .dvc/config {encoded}\n\n"
                             "note two words\n")
    assert values.get("dir") == "repo" and values.get("note") == "two words" and values.get("missing", "-") == "-"
    assert values.all("object") == ["a1 yes", "b2 no"] and values.get("object") == "a1 yes"
    assert "empty" in values and values.get("empty") == "" and "missing" not in values
    assert values.files("file") == {".dvc/config": "[core]\n    remote = data\n"}
    assert list(values)[:2] == [("dir", "repo"), ("object", "a1 yes")]


def test_probe_lines_split_on_newlines_only() -> None:
    """A host's file name may hold a form feed or \\x1c: it must not forge a line of its own."""
    forged = "path /srv/a\x1cvenv 9.9\nguard-py \x0cabc\n"
    assert KeyValues.parse(forged).pairs == (("path", "/srv/a\x1cvenv 9.9"), ("guard-py", "\x0cabc"))
    assert output_lines("/etc/a\u2028b\n\n/etc/c\n") == ("/etc/a\u2028b", "/etc/c")


def test_bare_repository_probe_tells_each_kind_of_path(tmp_path: Path) -> None:
    bare, empty, other = tmp_path / "demo.git", tmp_path / "empty", tmp_path / "other"
    subprocess.run(["git", "init", "--quiet", "--bare", "--shared=0600", str(bare)], check=True)
    empty.mkdir()
    other.mkdir()
    (other / "notes.txt").write_text("not a repository\n")
    assert probed(BareRepoFact(str(bare))) == BareRepoState("repo", "true", "0600", getpass.getuser())
    assert probed(BareRepoFact(str(empty))) == BareRepoState("empty")
    assert probed(BareRepoFact(str(other))) == BareRepoState("other")
    assert probed(BareRepoFact(str(other / "notes.txt"))) == BareRepoState("notdir")
    assert probed(BareRepoFact(str(tmp_path / "absent"))) == BareRepoState("absent")
    assert BareRepoFact(str(bare)).parse(BatchOutput(1, "")) == BareRepoState("absent")


def output(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_git_system_and_group_probes_read_this_machine() -> None:
    git, system = probed(GitFact()), probed(SystemFact())
    assert isinstance(git, GitState) and isinstance(system, SystemInfo)
    assert git.version == output(["git", "--version"]).split()[-1]
    assert system.hostname == output(["hostname"]).strip() and system.os
    assert probed(UserGroupsFact("root")) == tuple(output(["id", "-Gn", "root"]).split())
    assert probed(UserGroupsFact("no-such-user-here")) == ()
