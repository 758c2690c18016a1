"""`provision data` in a local checkout (no --on): real git, real dvc, a bare origin and a local DVC remote.

Also the duplicate search on a generated tree whose duplicate groups are known, half of it known to DVC.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bench.duplicates import GROUP, dvc_repository, make_tree
from provision.data.duplicates import find_duplicates
from provision.data.runner import local_dvc
from tests.integration.clirunner import provision

pytestmark = pytest.mark.integration

DVC_ENV = os.environ | {"DVC_NO_ANALYTICS": "1"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def dvc(repo: Path, *args: str) -> None:
    subprocess.run([local_dvc(), *args], cwd=repo, check=True, capture_output=True, env=DVC_ENV)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A clone of a bare origin with DVC and a local remote, committed and pushed; git identity set."""
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(tmp_path / "origin.git")],
                   check=True)
    repo = tmp_path / "work"
    subprocess.run(["git", "clone", "--quiet", str(tmp_path / "origin.git"), str(repo)], check=True,
                   capture_output=True)
    git(repo, "config", "user.name", "Test User")
    git(repo, "config", "user.email", "test@example.invalid")
    dvc(repo, "init", "--quiet")
    dvc(repo, "remote", "add", "--default", "store", str(tmp_path / "store"))
    git(repo, "add", ".dvc", ".dvcignore")
    git(repo, "commit", "--quiet", "-m", "dvc")
    git(repo, "push", "--quiet", "origin", "HEAD:main")
    return repo


def data(repo: Path, home: Path, *args: str) -> tuple[int, dict | list | None, str]:
    done = provision("data", *args, "--repo", str(repo), "--json", home=home)
    return done.returncode, json.loads(done.stdout) if done.returncode == 0 else None, done.stderr


def test_local_release_check_and_versions(checkout: Path, tmp_path: Path) -> None:
    (checkout / "data").mkdir()
    (checkout / "data" / "a.txt").write_text("a\n")
    status, document, stderr = data(checkout, tmp_path, "release", "v1", "--path", "data", "-m", "one", "--check")
    assert status == 0, stderr
    assert document["check"] is True
    assert git(checkout, "tag", "--list") == "" and not (checkout / "data.dvc").exists()
    status, document, stderr = data(checkout, tmp_path, "release", "v1", "--path", "data", "-m", "one")
    assert status == 0, stderr
    assert (document["files"], document["bytes"], document["objects_pushed"]) == (1, 2, 2)
    (checkout / "notes.txt").write_text("tracked\n")
    git(checkout, "add", "notes.txt")
    (checkout / "data" / "b.txt").write_text("b\n")
    status, _, stderr = data(checkout, tmp_path, "release", "v2", "--path", "data", "-m", "two")
    assert status == 2 and "notes.txt" in stderr and "nothing changed" in stderr
    assert git(checkout, "tag", "--list").split() == ["v1"]
    status, listed, stderr = data(checkout, tmp_path, "versions")
    assert status == 0, stderr
    assert [(v["tag"], v["message"].strip(), v["datasets"][0]["files"]) for v in listed] == [("v1", "one", 1)]


def test_duplicates_finds_exactly_the_generated_groups(tmp_path: Path) -> None:
    dvc_repository(tmp_path)
    expected = make_tree(tmp_path, 400)
    dvc(tmp_path, "add", "--quiet", "tracked")
    report = find_duplicates(str(tmp_path))
    assert sorted(group.files for group in report.groups) == expected
    assert all(len(group.files) == GROUP for group in report.groups)
    assert report.hashes_from_dvc == 200 and report.hashed == 200  # the tracked half came from DVC's hash cache
    assert report.wasted == sum(group.size * (GROUP - 1) for group in report.groups)


def test_duplicates_across_versions_tells_new_from_reused(checkout: Path, tmp_path: Path) -> None:
    folder = checkout / "data"
    folder.mkdir()
    for name, text in (("a", "same\n"), ("b", "same\n"), ("c", "first\n")):
        (folder / f"{name}.txt").write_text(text)
    assert data(checkout, tmp_path, "release", "v1", "--path", "data", "-m", "one")[0] == 0
    (folder / "d.txt").write_text("second\n")
    assert data(checkout, tmp_path, "release", "v2", "--path", "data", "-m", "two")[0] == 0
    done = provision("data", "duplicates", str(checkout), "--versions", "v1,v2", "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [group["files"] for group in report["groups"]] == [["data/a.txt", "data/b.txt"]]
    v1, v2 = report["versions"]
    assert (v1["files"], v1["objects"], v1["new_objects"], v1["reused_objects"]) == (3, 2, 2, 0)
    assert (v2["files"], v2["objects"], v2["new_objects"], v2["reused_objects"]) == (4, 3, 1, 2)
    assert (v2["new_bytes"], v2["reused_bytes"]) == (len("second\n"), len("same\n") + len("first\n"))
