"""Bootstrap decisions without a host: dvc versions, accounts, repository and dataset steps, arguments."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

from provision.engine import changes_of, joined_summary
from provision.errors import InputError, ProvisionError
from provision.facts import FileFact, FileState
from provision.inventory import load_inventory
from provision.plays.bootstrap import bootstrap_play, check_data_path, check_settings, check_tag, storage_tasks
from provision.remote import BatchOutput
from provision.tasks.accounts import AccountFact, AccountState, account_problems
from provision.tasks.dvc_repo import (
    DatasetState,
    EnsureDataset,
    EnsureSiteCache,
    dataset_steps,
    legacy_site_cache_dir,
    server_repo_steps,
)
from provision.tasks.git_repo import WorkTreeFact, WorkTreeState
from provision.tasks.packages import DvcState, decide_dvc, in_range, parse_version
from tests.unit.helpers import FakeContext

VENV = "/opt/provision/dvc"
SPEC = ">=3.50,<4"


def storage_host(tmp_path: Path, **variables: Any):
    data = {"all": {"vars": {"project": "demo", **variables},
                    "children": {"storage": {"hosts": {"storage": {"ansible_host": "127.0.0.1"}}}}}}
    inventory = tmp_path / "site.yml"
    inventory.write_text(yaml.safe_dump(data))
    return load_inventory(inventory).storage


# -- dvc ---------------------------------------------------------------------------------------------

def test_version_parsing_and_range() -> None:
    assert parse_version("3.67.1\n") == Version("3.67.1")
    assert parse_version("") is None and parse_version("command not found") is None
    assert in_range(Version("3.67.1"), SPEC)
    assert not in_range(Version("3.49.0"), SPEC) and not in_range(Version("4.0.0"), SPEC)
    assert in_range(Version("3.60.0rc1"), SPEC)  # an installed pre-release is not reinstalled
    assert not in_range(None, SPEC)


def test_probe_output_parses() -> None:
    state = DvcState.parse(f"venv-dvc yes\nvenv 3.67.1\nvenv-python yes\nlink {VENV}/bin/dvc\n"
                           "path /usr/bin/dvc 2.58.2\npython 3.11.2\n")
    assert state.venv_version == Version("3.67.1") and state.venv_python
    assert state.link_target == f"{VENV}/bin/dvc" and not state.link_is_file
    assert (state.path_dvc, state.path_version) == ("/usr/bin/dvc", Version("2.58.2"))
    assert state.system_python == "3.11.2"
    assert DvcState.parse("") == DvcState()
    # dvc's version comes from the package metadata, but counts only while its entry point is there.
    assert DvcState.parse("venv 3.67.1\nvenv-python yes\n").venv_version is None


def test_venv_dvc_in_range_is_used_and_linked() -> None:
    decision = decide_dvc(DvcState(venv_version=Version("3.67.1")), SPEC, VENV)
    assert (decision.executable, decision.install, decision.link) == (f"{VENV}/bin/dvc", False, True)
    linked = decide_dvc(DvcState(venv_version=Version("3.67.1"), link_target=f"{VENV}/bin/dvc"), SPEC, VENV)
    assert not linked.install and not linked.link


def test_dvc_on_path_in_range_is_used_as_is() -> None:
    decision = decide_dvc(DvcState(path_dvc="/usr/bin/dvc", path_version=Version("3.55.0")), SPEC, VENV)
    assert (decision.executable, decision.install, decision.link) == ("/usr/bin/dvc", False, False)


@pytest.mark.parametrize("state", [
    DvcState(),
    DvcState(venv_version=Version("3.10.0"), venv_python=True),
    DvcState(path_dvc="/usr/bin/dvc", path_version=Version("2.58.2")),
])
def test_missing_or_out_of_range_dvc_is_installed_into_the_venv(state: DvcState) -> None:
    decision = decide_dvc(state, SPEC, VENV)
    assert (decision.executable, decision.install, decision.link) == (f"{VENV}/bin/dvc", True, True)


# -- accounts ------------------------------------------------------------------------------------------

PROBE = ("passwd git:x:995:995:provision git:/home/git:/usr/bin/git-shell\nhash star\ngroups dvc\n"
         "stat root root 755 directory\nstat root root 755 directory\nstat root root 644 regular empty file\n")


def test_account_probe_parses_and_a_right_account_needs_nothing() -> None:
    state = AccountState.parse(PROBE)
    assert (state.uid, state.home, state.shell, state.hash_is_star) == (995, "/home/git", "/usr/bin/git-shell", True)
    assert state.paths[2] == FileState(True, "root", "root", 0o644, "regular empty file")
    assert account_problems(state, "dvc", "/usr/bin/git-shell") == []
    assert not AccountState.parse("absent").exists and not AccountFact("git").parse(BatchOutput(1, "")).exists


def test_account_problems_name_each_difference() -> None:
    probe = ("passwd git:x:995:995::/home/git:/usr/bin/git-shell\nhash other\ngroups git\n"
             "stat root root 755 directory\nstat git git 700 directory\nstat absent\n")
    problems = account_problems(AccountState.parse(probe), "dvc", "/usr/sbin/nologin")
    assert problems == ["shell /usr/bin/git-shell -> /usr/sbin/nologin", "password hash -> *", "add to group dvc",
                        "~/.ssh git:git 0700 -> root:root 0755", "create ~/.ssh/authorized_keys"]


# -- server repository --------------------------------------------------------------------------------

def worktree(**values: str) -> WorkTreeState:
    lines = [f"{key} {value}" for key, value in values.items()]
    return WorkTreeState.parse("\n".join(lines) + "\n")


def test_worktree_probe_parses_files_as_base64() -> None:
    text = "[core]\n    remote = data\n"
    state = WorkTreeState.parse(f"fstype nfs\ndir repo\nbranch main\npushed yes\ndvc yes\nuncommitted 0\n"
                                f"file .dvc/config {base64.b64encode(text.encode()).decode()}\n")
    assert state.is_repo and state.pushed and state.dvc_initialised and state.fstype == "nfs"
    assert state.files == {".dvc/config": text}
    assert not WorkTreeFact("/srv/demo", "git").parse(BatchOutput(1, "")).readable


def test_fresh_server_repo_needs_every_step() -> None:
    steps = server_repo_steps(worktree(fstype="ext2/ext3", dir="absent"), "/srv/git/demo.git", "C", "L")
    assert steps == ["clone /srv/git/demo.git", "dvc init", "write .dvc/config", "write .dvc/config.local",
                     "commit .dvc/config, .dvc/.gitignore, .dvcignore", "push to git_remote"]
    kept = server_repo_steps(worktree(dir="files"), "/srv/git/demo.git", "C", "L")
    assert kept[0] == "git init (keeping the files there) with origin /srv/git/demo.git"


def test_settled_server_repo_needs_nothing_and_unpushed_needs_a_push() -> None:
    files = {".dvc/config": "C", ".dvc/config.local": "L"}
    settled = WorkTreeState(readable=True, dir="repo", pushed=True, dvc_initialised=True, files=files)
    assert server_repo_steps(settled, "/r", "C", "L") == []
    unpushed = WorkTreeState(readable=True, dir="repo", pushed=False, dvc_initialised=True, files=files)
    assert server_repo_steps(unpushed, "/r", "C", "L") == ["push to git_remote"]
    edited = WorkTreeState(readable=True, dir="repo", pushed=True, dvc_initialised=True, files=files)
    assert server_repo_steps(edited, "/r", "C2", "L") == ["write .dvc/config", "commit .dvc/config, "
                                                          ".dvc/.gitignore, .dvcignore", "push to git_remote"]


def test_server_repo_behind_git_remote_is_fast_forwarded() -> None:
    files = {".dvc/config": "C", ".dvc/config.local": "L"}
    behind = WorkTreeState(readable=True, dir="repo", behind=True, dvc_initialised=True, files=files)
    assert server_repo_steps(behind, "/r", "C", "L") == ["fast-forward to git_remote's branch"]
    assert server_repo_steps(behind, "/r", "C2", "L") == [
        "fast-forward to git_remote's branch", "write .dvc/config",
        "commit .dvc/config, .dvc/.gitignore, .dvcignore", "push to git_remote"]
    probe = "dir repo\nbranch main\npushed yes\nbehind yes\n"
    assert WorkTreeState.parse(probe).behind and WorkTreeState.parse(probe).pushed


# -- dataset ------------------------------------------------------------------------------------------

DONE = DatasetState(readable=True, repo=True, data_present=True, dvcfile=True, committed=True,
                    objects={"62f0.dir": True}, tag_commit="abc", tag_matches=True, tag_object="t1",
                    remote_tag="t1", pushed=True)


def test_dataset_done_needs_nothing() -> None:
    assert dataset_steps(DONE, "data", "v1.0", "git") == []


def test_new_dataset_needs_add_push_commit_tag_push() -> None:
    state = DatasetState(readable=True, repo=True, data_present=True, pushed=True)
    assert dataset_steps(state, "data", "v1.0", "git") == [
        "dvc add data", "dvc push", "commit data.dvc and .gitignore", "tag v1.0", "git push with tag v1.0"]


def test_dataset_partial_states() -> None:
    missing_object = DatasetState(**{**DONE.__dict__, "objects": {"62f0.dir": False}})
    assert dataset_steps(missing_object, "data", "v1.0", "git") == ["dvc push", "git push with tag v1.0"]
    unpushed_tag = DatasetState(**{**DONE.__dict__, "remote_tag": ""})
    assert dataset_steps(unpushed_tag, "data", "v1.0", "git") == ["git push with tag v1.0"]


def test_dataset_refusals() -> None:
    with pytest.raises(ProvisionError, match="nothing at data"):
        dataset_steps(DatasetState(readable=True, repo=True), "data", None, "git")
    with pytest.raises(ProvisionError, match="not owned by git"):
        dataset_steps(DatasetState(readable=True, repo=True, data_present=True, foreign="data/x"), "data", None, "git")
    elsewhere = DatasetState(**{**DONE.__dict__, "tag_matches": False})
    with pytest.raises(ProvisionError, match=r"tag v1\.0 already exists"):
        dataset_steps(elsewhere, "data", "v1.0", "git")


# -- arguments and settings ----------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "normalised"), [("data", "data"), ("./data/", "data"), ("raw/images", "raw/images")])
def test_data_paths_accepted(given: str, normalised: str) -> None:
    assert check_data_path(given) == normalised


@pytest.mark.parametrize("bad", ["/etc", "../data", "data/../../x", ".git", ".dvc/cache", "da ta", "d;id", "-rf",
                                 "$(id)", "."])
def test_data_paths_refused(bad: str) -> None:
    with pytest.raises(InputError):
        check_data_path(bad)


@pytest.mark.parametrize("bad", ["v1.0;id", "-v1", "v1..0", "v1.lock", "v1/", ".v1", "a/.b", "v 1", "v1.0$"])
def test_tags_refused(bad: str) -> None:
    with pytest.raises(InputError):
        check_tag(bad)
    assert check_tag("v1.0") == "v1.0" and check_tag("release/2024-01") == "release/2024-01"


@pytest.mark.parametrize(("variables", "key"), [
    ({"git_user": "dvc"}, "git_user"),
    ({"server_repo": "/mnt/nfs"}, "server_repo"),
    ({"dvc_storage": "/mnt"}, "dvc_storage"),
    ({"server_repo": "/mnt/nfs/cache/repo"}, "server_repo"),
    ({"git_remote": "/mnt/nfs"}, "git_remote"),
])
def test_settings_that_would_hand_over_the_export_are_refused(tmp_path: Path, variables: dict[str, str],
                                                               key: str) -> None:
    with pytest.raises(InputError, match=key):
        check_settings(storage_host(tmp_path, **variables))


def test_play_orders_tasks_and_adds_dataset_only_when_asked(tmp_path: Path) -> None:
    host = storage_host(tmp_path)
    names = [task.name for task in storage_tasks(host, None, None)]
    assert names[0] == "export /mnt/nfs"
    assert names[1:3] == ["SFTP chroot /mnt/nfs", "sshd settings of dvc"]  # before any account is touched
    assert names.index("directory /mnt/nfs/demo") < names.index("entries of the SFTP chroot /mnt/nfs") < names.index(
        "DVC site cache of git") < names.index("server repository /mnt/nfs/demo")
    assert names.index("account git") < names.index("directory /mnt/nfs/git") < names.index(
        "bare repository /mnt/nfs/git/demo.git") < names.index("server repository /mnt/nfs/demo")
    assert not any(isinstance(task, EnsureDataset) for task in storage_tasks(host, None, None))
    assert isinstance(storage_tasks(host, "data", "v1.0")[-1], EnsureDataset)
    assert bootstrap_play(host).command == "bootstrap"


def test_git_remote_url_means_no_bare_repository(tmp_path: Path) -> None:
    host = storage_host(tmp_path, git_remote="ssh://git.example.org/team/demo.git")
    names = [task.name for task in storage_tasks(host, None, None)]
    assert not any(name.startswith("bare repository") for name in names)
    assert "directory /mnt/nfs/git" not in names


def test_git_remote_directly_in_the_export_gets_its_own_directory(tmp_path: Path) -> None:
    host = storage_host(tmp_path, git_remote="/mnt/nfs/demo.git")
    names = [task.name for task in storage_tasks(host, None, None)]
    assert "directory /mnt/nfs/demo.git" in names and "directory /mnt/nfs" not in names


def _site_cache_context(tmp_path: Path, site_cache: FileState, legacy: FileState) -> tuple[EnsureSiteCache, Any]:
    settings = storage_host(tmp_path).settings
    entry = "passwd git:x:998:998::/srv/git-home:/usr/bin/git-shell\nhash star\ngroups dvc\n"
    facts = {AccountFact("git").key: AccountState.parse(entry),
             FileFact("/srv/git-home/dvc-site-cache").key: site_cache,
             FileFact("/srv/git-home/dvc-site-cache/repo").key: site_cache,
             FileFact(legacy_site_cache_dir(settings)).key: legacy}
    return EnsureSiteCache(settings), FakeContext("storage", facts)


def test_site_cache_is_private_in_git_users_home_and_the_var_tmp_one_goes(tmp_path: Path) -> None:
    private = FileState(True, "git", "dvc", 0o700, "directory")
    task, ctx = _site_cache_context(tmp_path, FileState(False), FileState(False))
    summary = joined_summary(changes_of(task.plan(ctx)))  # type: ignore[arg-type]
    assert summary == ("create /srv/git-home/dvc-site-cache (git:dvc 0700), "
                       "create /srv/git-home/dvc-site-cache/repo (git:dvc 0700)")
    task, ctx = _site_cache_context(tmp_path, FileState(True, "git", "dvc", 0o2775, "directory"),
                                    FileState(True, "nobody", "nogroup", 0o777, "directory"))
    summary = joined_summary(changes_of(task.plan(ctx)))  # type: ignore[arg-type]
    assert "mode 2775 -> 0700" in summary
    assert summary.endswith("remove /var/tmp/dvc-site-cache-demo (any account could create or change it there)")
    task, ctx = _site_cache_context(tmp_path, private, FileState(False))
    assert changes_of(task.plan(ctx)) == []  # type: ignore[arg-type]
