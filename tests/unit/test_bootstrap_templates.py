"""The DVC config files bootstrap writes, read back the way DVC reads them (configobj)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from configobj import ConfigObj
from dvc.config import Config

from provision.errors import ProvisionError
from provision.inventory import Settings, load_inventory
from provision.tasks.accounts import git_shell_commands, served_repositories
from provision.tasks.dvc_repo import (
    committed_config,
    gc_guard,
    remote_url,
    server_config_local,
)


def settings_for(tmp_path: Path, **variables: Any) -> Settings:
    data = {"all": {"vars": {"project": "demo", **variables},
                    "children": {"storage": {"hosts": {"storage": {"ansible_host": "10.0.0.5",
                                                                   "ansible_port": 2222}}}}}}
    inventory = tmp_path / "site.yml"
    inventory.write_text(yaml.safe_dump(data))
    return load_inventory(inventory).storage.settings


def parse(text: str) -> ConfigObj:
    return ConfigObj(text.splitlines())


def test_committed_config_has_remote_cache_and_no_credentials(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    text = committed_config(settings, hardlink_lock=False)
    config = parse(text)
    assert config["core"] == {"remote": "data"}
    assert config["cache"] == {"shared": "group", "type": "reflink,symlink,hardlink,copy"}
    assert config['remote "data"'] == {"url": "ssh://10.0.0.5:2222/cache", "verify": "true"}
    assert set(config) == {"core", "cache", 'remote "data"'}
    for word in ("user", "password", "keyfile"):
        assert f"{word} =" not in text


def test_hardlink_lock_only_on_nfs(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    assert parse(committed_config(settings, hardlink_lock=True))["core"] == {
        "remote": "data", "hardlink_lock": "true"}
    assert "hardlink_lock" not in committed_config(settings, hardlink_lock=False)


def test_matches_what_dvc_itself_writes(tmp_path: Path) -> None:
    """Same layout as `dvc remote add/modify` and `dvc config` produce, so later edits do not churn."""
    text = committed_config(settings_for(tmp_path), hardlink_lock=True)
    body = "".join(line + "\n" for line in text.splitlines() if not line.startswith("#"))
    assert body == ("[core]\n    remote = data\n    hardlink_lock = true\n"
                    "[cache]\n    shared = group\n    type = \"reflink,symlink,hardlink,copy\"\n"
                    "['remote \"data\"']\n    url = ssh://10.0.0.5:2222/cache\n    verify = true\n")


def test_values_with_commas_survive_configobj(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, dvc_storage="/mnt/nfs/a,b", cache_types="symlink",
                            dvc_remote="store", storage_address="storage.example.org", storage_port=22)
    config = parse(committed_config(settings, hardlink_lock=False))
    assert config['remote "store"']["url"] == "ssh://storage.example.org:22/a,b"
    assert config["cache"]["type"] == "symlink"


def test_dvc_reads_both_files_back_as_written(tmp_path: Path) -> None:
    """DVC's own loader reads every value as provision set it (a comma inside one included)."""
    settings = settings_for(tmp_path, dvc_storage="/mnt/nfs/a,b", cache_types="reflink,copy", server_cache="shared")
    committed, local = tmp_path / "config", tmp_path / "config.local"
    committed.write_text(committed_config(settings, hardlink_lock=True))
    local.write_text(server_config_local(settings, "/home/git"))
    read = Config.load_file(str(committed))
    assert (read["core"], read["cache"]) == ({"remote": "data", "hardlink_lock": "true"},
                                             {"shared": "group", "type": "reflink,copy"})
    assert read["remote"] == {"data": {"url": "ssh://10.0.0.5:2222/a,b", "verify": "true"}}
    read = Config.load_file(str(local))
    assert (read["core"], read["cache"]) == ({"site_cache_dir": "/home/git/dvc-site-cache"}, {"dir": "/mnt/nfs/a,b"})
    assert read["remote"] == {"data": {"url": "/mnt/nfs/a,b"}}


def test_ipv6_storage_address_is_bracketed(tmp_path: Path) -> None:
    assert remote_url(settings_for(tmp_path, storage_address="fd00::5")) == "ssh://[fd00::5]:2222/cache"


@pytest.mark.parametrize(("server_cache", "cache_dir"), [("separate", None), ("shared", "/mnt/nfs/cache")])
def test_server_config_local(tmp_path: Path, server_cache: str, cache_dir: str | None) -> None:
    config = parse(server_config_local(settings_for(tmp_path, server_cache=server_cache), "/home/git"))
    assert config['remote "data"'] == {"url": "/mnt/nfs/cache"}
    assert config["core"] == {"site_cache_dir": "/home/git/dvc-site-cache"}
    assert config.get("cache", {}).get("dir") == cache_dir


def test_gc_guard_names_the_safe_form(tmp_path: Path) -> None:
    text = gc_guard(settings_for(tmp_path, server_cache="shared"))
    assert "never run a plain `dvc gc`" in text
    assert "dvc gc --all-commits --all-branches --all-tags" in text
    assert "/mnt/nfs/demo" in text and "git fetch" in text


def _dispatch(tmp_path: Path, name: str, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a rendered dispatcher as git-shell would, with /bin/echo standing in for git-shell."""
    helper = tmp_path / name
    helper.write_text(git_shell_commands("git", "/bin/echo")[name])
    (tmp_path / "git-repositories").write_text("# served\n/srv/git/demo.git\n/srv/git/other.git")
    return subprocess.run(["sh", str(helper), "-c", "$SSH_ORIGINAL_COMMAND"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SSH_ORIGINAL_COMMAND": command, **env},
                          check=False)


@pytest.mark.parametrize("command", ["git-upload-pack '/srv/git/demo.git'", "git-receive-pack '/srv/git/demo.git'",
                                     "git-upload-archive '/srv/git/other.git'"])
def test_read_write_dispatcher_hands_listed_repositories_to_git_shell(tmp_path: Path, command: str) -> None:
    done = _dispatch(tmp_path, "git-shell", command)
    assert (done.returncode, done.stdout) == (0, f"-c {command}\n")


@pytest.mark.parametrize("command", [
    "git-receive-pack '/srv/demo'",                       # a working tree git_user can write
    "git-upload-pack '/srv/git/demo.git/'",
    "git-upload-pack '/srv/git/demo.git' '/srv/demo'",
    "git-upload-pack /srv/git/demo.git",
    "git-upload-pack '# served'",
    "git upload-pack '/srv/git/demo.git'",
    "sftp",
    "",
])
def test_dispatchers_refuse_every_other_command(tmp_path: Path, command: str) -> None:
    for name in ("git-shell", "git-read-only"):
        done = _dispatch(tmp_path, name, command)
        assert done.returncode == 1 and done.stdout == "", (name, command)


def test_read_only_dispatcher_refuses_pushes(tmp_path: Path) -> None:
    assert _dispatch(tmp_path, "git-read-only", "git-upload-pack '/srv/git/demo.git'").returncode == 0
    done = _dispatch(tmp_path, "git-read-only", "git-receive-pack '/srv/git/demo.git'")
    assert done.returncode == 1 and "read-only" in done.stderr


def test_dispatcher_runs_git_shell_once(tmp_path: Path) -> None:
    done = _dispatch(tmp_path, "git-shell", "git-upload-pack '/srv/git/demo.git'", PROVISION_GIT_SHELL="1")
    assert done.returncode == 1 and done.stdout == ""
    assert git_shell_commands("git", "/bin/echo")["no-interactive-login"].rstrip().endswith("exit 128")


def test_served_repositories_adds_one_line_and_keeps_the_others() -> None:
    assert served_repositories(None, "/srv/a.git", "git") == "/srv/a.git\n"
    assert served_repositories("/srv/a.git", "/srv/a.git", "git") == "/srv/a.git\n"
    for current in ("/srv/b.git", "/srv/a.git\n/srv/b.git\n"):
        with pytest.raises(ProvisionError, match=r"git already serves /srv/b\.git"):
            served_repositories(current, "/srv/a.git", "git")
