"""The pre-commit hook blocks a real `git commit`: installed by `provision audit install-hook` (chained with
a hook already there) and through the real pre-commit framework using this repository's .pre-commit-hooks.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.integration.clirunner import provision

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLEAN_CONFIG = "['remote \"storage\"']\n    url = ssh://storage.example/mnt/nfs/dvc\n"
LEAKED = CLEAN_CONFIG + "    password = committed-by-mistake-77\n"


def hook_env(home: Path) -> dict[str, str]:
    """git's environment: this checkout's provision first, no user config, pre-commit's cache in the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PROVISION_"))}
    env.update({"HOME": str(home), "PYTHONPATH": str(ROOT), "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
                "PRE_COMMIT_HOME": str(home / "pre-commit-cache"), "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.invalid"})
    return env


def git(repo: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=False)
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


def stage_config(repo: Path, env: dict[str, str], content: str) -> None:
    (repo / ".dvc").mkdir(exist_ok=True)
    (repo / ".dvc" / "config").write_text(content)
    git(repo, env, "add", ".dvc/config")


def assert_blocks_then_allows(repo: Path, env: dict[str, str]) -> str:
    """A leaked password is refused (naming the finding), the fixed content commits; the refused output."""
    head = git(repo, env, "rev-parse", "HEAD").stdout
    stage_config(repo, env, LEAKED)
    refused = git(repo, env, "commit", "-m", "leak", check=False)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "dvc-credential: .dvc/config:3 (password = ********)" in output
    assert "committed-by-mistake-77" not in output
    assert git(repo, env, "rev-parse", "HEAD").stdout == head
    stage_config(repo, env, CLEAN_CONFIG)
    git(repo, env, "commit", "-m", "remote without password")
    assert git(repo, env, "rev-parse", "HEAD").stdout != head
    return output


def new_repo(path: Path, env: dict[str, str]) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    (path / "README.md").write_text("data\n")
    git(path, env, "add", "README.md")
    git(path, env, "commit", "-q", "-m", "start")
    return path


def test_installed_hook_blocks_and_keeps_the_hook_that_was_there(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    repo = new_repo(tmp_path / "repo", env)
    existing = repo / ".git" / "hooks" / "pre-commit"
    existing.write_text('#!/bin/sh\necho ran >> "$(git rev-parse --git-dir)/earlier-hook-runs"\n')
    existing.chmod(0o755)
    done = provision("audit", "install-hook", str(repo), home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "kept the existing hook as" in done.stdout
    again = provision("audit", "install-hook", str(repo), home=tmp_path)
    assert again.stdout.strip().endswith("already installed")
    output = assert_blocks_then_allows(repo, env)
    assert "commit refused: 1 finding" in output
    assert (repo / ".git" / "earlier-hook-runs").read_text() == "ran\nran\n"


def test_pre_commit_framework_uses_the_repository_hook(tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    repo = new_repo(tmp_path / "repo", env)
    rev = git(ROOT, env, "rev-parse", "HEAD").stdout.strip()
    config = {"repos": [{"repo": str(ROOT), "rev": rev, "hooks": [{"id": "provision-audit"}]}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    git(repo, env, "add", ".pre-commit-config.yaml")
    git(repo, env, "commit", "-q", "-m", "pre-commit")
    installed = subprocess.run([str(BIN / "pre-commit"), "install"], cwd=repo, env=env, capture_output=True,
                               text=True, check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    output = assert_blocks_then_allows(repo, env)
    assert "provision audit (committed credentials)" in output
