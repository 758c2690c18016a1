"""`provision audit repo` on real git repositories that hide secrets in every place a team has put them.

Each test builds its repository with real git (and ssh-keygen for a real private key), then expects
exactly the findings it planted: no more, no fewer, each at the commit that introduced it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from provision.audit.findings import Finding
from provision.audit.repo import audit_repository, parse_log
from provision.audit.rules import BASELINE, rules_for, secret_hash
from provision.dvc_config import merge_config
from provision.secrets import MASK
from provision.tasks.dvc_client import managed_settings
from provision.tasks.dvc_repo import committed_config
from tests.unit.test_bootstrap_templates import settings_for

HISTORY_PASSWORD = "hunter2-in-history"
LOCAL_PASSWORD = "config-local-pw-42"
S3_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
STASH_TOKEN = "stash-token-5150"
ENV_SECRET = "env-secret-in-untracked-stash"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
DVC_CONFIG = """[core]
    remote = storage
['remote "storage"']
    url = ssh://storage.example:2222/mnt/nfs/dvc
"""


def git(repo: Path, *args: str, input: str | None = None) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=test@example.invalid",
                           "-c", "commit.gpgsign=false", *args], capture_output=True, text=True, input=input,
                          check=True)
    return done.stdout.strip()


def commit(repo: Path, files: dict[str, str | None], message: str) -> str:
    """Write (or, for None, delete) files, commit them all; the new commit's hash."""
    for name, content in files.items():
        path = repo / name
        if content is None:
            git(repo, "rm", "-q", "--cached", "--", name)
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        git(repo, "add", "-f", "--", name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def new_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    return path


def private_key(tmp_path: Path) -> str:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy", "-f", str(key)], check=True)
    return key.read_text()


@dataclass
class Planted:
    repo: Path
    commits: dict[str, str]


@pytest.fixture
def planted(tmp_path: Path) -> Planted:
    """Secrets in history only, on a deleted branch kept by a tag, in two stashes, in a subrepo, and in the tree."""
    repo = new_repo(tmp_path / "repo")
    commits = {}
    commits["password"] = commit(repo, {".dvc/config": DVC_CONFIG + f"    password = {HISTORY_PASSWORD}\n",
                                        ".dvc/.gitignore": "/config.local\n/tmp\n/cache\n", "README.md": "data\n"},
                                 "remote with a password")
    commit(repo, {".dvc/config": DVC_CONFIG}, "password moved out")
    commits["subrepo"] = commit(repo, {"sub/.dvc/config": "['remote \"s3\"']\n    url = s3://bucket/x\n"
                                       f"    secret_access_key = {S3_SECRET}\n"}, "subrepo remote")
    commits["config.local"] = commit(repo, {".dvc/config.local": "['remote \"storage\"']\n    user = dvc\n"
                                            f"    password = {LOCAL_PASSWORD}\n"}, "oops: config.local")
    commit(repo, {".dvc/config.local": None}, "config.local untracked again")
    git(repo, "checkout", "-q", "-b", "feature")
    commits["key"] = commit(repo, {"deploy/id_ed25519": private_key(tmp_path)}, "deploy key")
    git(repo, "tag", "keep-feature")
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-q", "-D", "feature")
    commits["token"] = commit(repo, {"settings.py": f'GITHUB = "{GITHUB_TOKEN}"\n'}, "settings")
    (repo / "README.md").write_text(f"data\nclone https://alice:{STASH_TOKEN}@git.example/x\n")
    git(repo, "stash", "-q")
    commits["stash url"] = git(repo, "rev-parse", "stash@{0}")
    (repo / ".env").write_text(f"DB_USER=app\nDB_PASSWORD={ENV_SECRET}\n")
    git(repo, "stash", "-q", "-u")
    commits["stash env"] = git(repo, "rev-parse", "stash@{0}^3")
    return Planted(repo, commits)


def found(findings: list[Finding]) -> set[tuple[str, str, str | None]]:
    return {(f.rule, f.path, f.commit) for f in findings}


def test_work_tree_scan_finds_what_is_there_now(planted: Planted) -> None:
    findings = audit_repository(planted.repo).findings
    assert found(findings) == {("dvc-credential", "sub/.dvc/config", None), ("detect-secrets", "settings.py", None)}


def test_history_finds_each_secret_once_at_the_commit_that_introduced_it(planted: Planted) -> None:
    commits = planted.commits
    findings = audit_repository(planted.repo, history=True).findings
    assert found(findings) == {
        ("dvc-credential", ".dvc/config", commits["password"]),
        ("dvc-credential", "sub/.dvc/config", commits["subrepo"]),
        ("tracked-config-local", ".dvc/config.local", commits["config.local"]),
        ("dvc-credential", ".dvc/config.local", commits["config.local"]),
        ("private-key", "deploy/id_ed25519", commits["key"]),
        ("detect-secrets", "settings.py", commits["token"]),
        ("url-credential", "README.md", commits["stash url"]),
        ("env-file", ".env", commits["stash env"]),
    }
    assert len(findings) == 8
    lines = {f.path: f.line for f in findings}
    assert lines[".dvc/config"] == 5 and lines["sub/.dvc/config"] == 3 and lines[".env"] == 2


def test_findings_never_show_the_secret(planted: Planted) -> None:
    findings = audit_repository(planted.repo, history=True).findings
    shown = json.dumps([f.document() for f in findings]) + "\n".join(f.text() for f in findings)
    for secret in (HISTORY_PASSWORD, LOCAL_PASSWORD, S3_SECRET, STASH_TOKEN, ENV_SECRET, GITHUB_TOKEN, "OPENSSH"):
        assert secret not in shown or secret == "OPENSSH"
    assert f"password = {MASK}" in shown
    assert f"https://alice:{MASK}@" in shown
    assert all(f.fix for f in findings)
    assert "provision rotate password" in next(f for f in findings if f.rule == "dvc-credential").fix


def test_baseline_marks_false_positives_for_detect_secrets_and_our_rules(planted: Planted) -> None:
    executable = Path(sys.executable).with_name("detect-secrets")
    baseline = json.loads(subprocess.run([str(executable), "scan"], cwd=planted.repo, capture_output=True,
                                         text=True, check=True).stdout)
    assert "settings.py" in baseline["results"]
    for entry in baseline["results"]["settings.py"]:
        entry["is_secret"] = False  # what `detect-secrets audit` writes for a false positive
    baseline["results"]["sub/.dvc/config"] = [{"type": "Secret Keyword", "filename": "sub/.dvc/config",
                                               "hashed_secret": secret_hash(S3_SECRET), "is_verified": False,
                                               "line_number": 3, "is_secret": False}]
    (planted.repo / BASELINE).write_text(json.dumps(baseline))
    assert audit_repository(planted.repo).findings == []
    baseline["results"]["sub/.dvc/config"][0]["is_secret"] = True  # audited as real: reported again
    (planted.repo / BASELINE).write_text(json.dumps(baseline))
    assert found(audit_repository(planted.repo).findings) == {("dvc-credential", "sub/.dvc/config", None)}


def test_staged_content_is_checked_not_the_work_tree(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    commit(repo, {".dvc/config": DVC_CONFIG}, "clean")
    (repo / ".dvc/config").write_text(DVC_CONFIG + f"    password = {HISTORY_PASSWORD}\n")
    git(repo, "add", ".dvc/config")
    (repo / ".dvc/config").write_text(DVC_CONFIG)  # the work tree is clean again, the index is not
    assert found(audit_repository(repo, staged=True).findings) == {("dvc-credential", ".dvc/config", None)}
    assert audit_repository(repo).findings == []
    git(repo, "add", ".dvc/config")
    (repo / "notes.txt").write_text(f"https://bob:{STASH_TOKEN}@example.org/\n")  # not staged
    assert audit_repository(repo, staged=True).findings == []


def test_repositories_made_by_bootstrap_and_onboard_have_no_findings(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, auth="password")
    repo = new_repo(tmp_path / "repo")
    commit(repo, {".dvc/config": committed_config(settings, hardlink_lock=True),
                  ".dvc/.gitignore": "/config.local\n/tmp\n/cache\n", ".dvcignore": "# ignore\n",
                  "data.dvc": "outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  path: data\n"}, "bootstrap")
    info = type("Info", (), {"key": "/home/alice/.ssh/id_ed25519_demo", "home": "/home/alice"})()
    local = merge_config(None, managed_settings(settings, info, None), {})  # type: ignore[arg-type]
    (repo / ".dvc/config.local").write_text((local or "") + f"    password = {LOCAL_PASSWORD}\n")
    assert audit_repository(repo, history=True).findings == []


def test_not_a_repository_is_an_input_error(tmp_path: Path) -> None:
    from provision.errors import InputError
    with pytest.raises(InputError, match="not inside a git work tree"):
        audit_repository(tmp_path)


def test_log_parser_numbers_added_lines_and_follows_paths() -> None:
    log = (b"\x01commit aaaa\n\ndiff --git a/x.txt b/x.txt\nnew file mode 100644\n--- /dev/null\n+++ b/x.txt\n"
           b"@@ -0,0 +1,2 @@\n+one\n+two\ndiff --git a/gone b/gone\ndeleted file mode 100644\n--- a/gone\n"
           b"+++ /dev/null\n@@ -1 +0,0 @@\n-old\n\x01commit bbbb\n\ndiff --git a/x.txt b/x.txt\n--- a/x.txt\n"
           b"+++ b/x.txt\n@@ -2 +7,0 @@\n-two\n@@ -9,0 +10 @@\n+ten\n")
    changes = [(c.commit, c.path, c.added) for c in parse_log(log.splitlines(keepends=True))]
    assert changes == [("aaaa", "x.txt", [(1, "one"), (2, "two")]), ("bbbb", "x.txt", [(10, "ten")])]


def test_rules_ignore_placeholders_and_template_env_files() -> None:
    with rules_for(None) as rules:
        assert rules.scan_text("README.md", "url = ssh://${USER}:${PASSWORD}@host/x\nhttps://u:****@h/\n") == []
        assert rules.scan_text(".env.example", "DB_PASSWORD=changeme\n") == []
        assert rules.scan_text(".dvc/config", "['remote \"r\"']\n    password = ${DVC_PASSWORD}\n") == []
        assert [h.finding.rule for h in rules.scan_text(".env", "API_TOKEN='abc12345'\nNAME=x\n")] == ["env-file"]


def test_a_long_history_is_streamed_and_each_password_found_once(tmp_path: Path) -> None:
    """The benchmark's repository, small: 1,000 commits, a new password every 100 (bench/ runs 10,000)."""
    from bench.audit_history import generate_history

    repo = tmp_path / "long"
    generate_history(repo, 1000, 100)
    findings = audit_repository(repo, history=True).findings
    assert [f.rule for f in findings] == ["dvc-credential"] * 10
    messages = [git(repo, "log", "-1", "--format=%s", f.commit or "") for f in findings]
    assert messages == [f"change {number}" for number in range(100, 1001, 100)]


def test_update_baseline_accepts_what_was_found_and_keeps_audit_marks(planted: Planted) -> None:
    recorded = audit_repository(planted.repo, history=True, update_baseline=True).findings
    assert len(recorded) == 8
    baseline = json.loads((planted.repo / BASELINE).read_text())
    assert {entry["type"] for entries in baseline["results"].values() for entry in entries} >= {
        "provision dvc-credential", "provision private-key"}
    assert HISTORY_PASSWORD not in (planted.repo / BASELINE).read_text()
    assert audit_repository(planted.repo, history=True).findings == []
    entry = baseline["results"][".dvc/config"][0]
    entry["is_secret"] = True  # `detect-secrets audit` says it is real after all
    (planted.repo / BASELINE).write_text(json.dumps(baseline))
    audit_repository(planted.repo, update_baseline=True)
    again = json.loads((planted.repo / BASELINE).read_text())
    assert again["results"][".dvc/config"][0]["is_secret"] is True
    assert found(audit_repository(planted.repo, history=True).findings) == {
        ("dvc-credential", ".dvc/config", planted.commits["password"])}
