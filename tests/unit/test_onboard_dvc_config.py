"""config.local: rendered settings merged into the user's own, read back as DVC reads it; secrets masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dvc.config import Config

from provision.dvc_config import merge_config
from provision.engine import Change, Task
from provision.errors import ProvisionError
from provision.facts import FileState
from provision.inventory import Settings, load_inventory
from provision.secrets import MASK
from provision.tasks.client_key import ClientInfo
from provision.tasks.dvc_client import (
    DvcClientConfig,
    PrivateSiteCache,
    RemoveDvcCredentials,
    credential_keys,
    managed_settings,
    mask_credentials,
)
from provision.tasks.proofs import DataTotals, data_totals, workspace_changes
from tests.unit.helpers import FakeContext, write_inventory

INFO = ClientInfo("ws1", "alice", "alice", "/home/alice", "/home/alice/.ssh/id_ed25519_demo", "/home/alice/demo",
                  None)
REMOTE = 'remote "data"'
SITE_CACHE = "/home/alice/.cache/provision-dvc-site/demo"


def _settings(tmp_path: Path, **variables: str) -> Settings:
    return load_inventory(write_inventory(tmp_path, {"hosts": {"ws1": {}}}, **variables)).hosts["ws1"].settings


def _as_dvc_reads_it(tmp_path: Path, text: str) -> dict[str, Any]:
    path = tmp_path / "config.local"
    path.write_text(text)
    return Config.load_file(str(path))


def test_fresh_file_has_user_absolute_keyfile_and_private_site_cache(tmp_path: Path) -> None:
    text = merge_config(None, managed_settings(_settings(tmp_path), INFO, None), {REMOTE: ["password"]})
    assert text is not None
    config = _as_dvc_reads_it(tmp_path, text)
    assert config["remote"]["data"] == {"user": "dvc", "keyfile": "/home/alice/.ssh/id_ed25519_demo"}
    assert config["core"] == {"site_cache_dir": SITE_CACHE}


def test_other_local_settings_and_comments_are_kept(tmp_path: Path) -> None:
    existing = ("# my settings\n[core]\n    autostage = true\n"
                "['remote \"data\"']\n    user = olduser\n    ask_password = false\n"
                "['remote \"backup\"']\n    url = /srv/backup\n")
    text = merge_config(existing, managed_settings(_settings(tmp_path), INFO, None), {REMOTE: ["password"]})
    assert text is not None and "# my settings" in text
    config = _as_dvc_reads_it(tmp_path, text)
    assert config["core"] == {"autostage": "true", "site_cache_dir": SITE_CACHE}
    assert config["remote"]["data"] == {"user": "dvc", "ask_password": "false",
                                        "keyfile": "/home/alice/.ssh/id_ed25519_demo"}
    assert config["remote"]["backup"] == {"url": "/srv/backup"}


def test_nothing_to_do_is_none_whatever_the_formatting(tmp_path: Path) -> None:
    existing = (f'[remote "data"]\nuser=dvc\nkeyfile=/home/alice/.ssh/id_ed25519_demo\n'
                f'[ core ]\n  site_cache_dir={SITE_CACHE}\n')
    assert merge_config(existing, managed_settings(_settings(tmp_path), INFO, None), {REMOTE: ["password"]}) is None


def test_key_auth_drops_a_password_and_other_spellings(tmp_path: Path) -> None:
    existing = "['remote \"data\"']\nUser = x\npassword = hunter22\n"
    text = merge_config(existing, managed_settings(_settings(tmp_path), INFO, None), {REMOTE: ["password"]})
    assert text is not None and "hunter22" not in text and "User" not in text
    assert _as_dvc_reads_it(tmp_path, text)["remote"]["data"]["user"] == "dvc"


def test_shared_cache_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path, shared_cache="/mnt/nfs/cache")
    text = merge_config(None, managed_settings(settings, INFO, "/mnt/nfs/cache"), {})
    assert text is not None
    assert _as_dvc_reads_it(tmp_path, text)["cache"] == \
        {"dir": "/mnt/nfs/cache", "shared": "group", "type": "reflink,symlink,hardlink,copy"}


def test_removing_credentials_keeps_the_rest_and_drops_an_empty_section(tmp_path: Path) -> None:
    existing = "[core]\nautostage = true\n['remote \"data\"']\nuser = dvc\nkeyfile = /k\npassword = pw12\n"
    text = merge_config(existing, {}, {REMOTE: ["user", "keyfile", "password"]})
    assert text is not None and "remote" not in text and "pw12" not in text
    assert _as_dvc_reads_it(tmp_path, text)["core"] == {"autostage": "true"}
    assert merge_config(text, {}, {REMOTE: ["user"]}) is None


def test_unparseable_file_is_an_error_that_quotes_no_line() -> None:
    with pytest.raises(ProvisionError, match=r"cannot parse \.dvc/config\.local at line 1"):
        merge_config("[unclosed\n", {}, {})
    with pytest.raises(ProvisionError) as raised:
        merge_config("['remote \"data\"']\npassword hunter2-secret\n", {}, {})
    assert "hunter2" not in str(raised.value) and "line 2" in str(raised.value)


def test_passwords_are_masked_in_diffs() -> None:
    diff = "--- a\n+++ a\n-password = old secret\n+password = 'new # secret'\n user = dvc\n"
    masked = mask_credentials(diff)
    assert "secret" not in masked and masked.count(MASK) == 2 and " user = dvc" in masked


def test_credential_keys_come_from_dvcs_schema() -> None:
    keys = credential_keys()
    for name in ("password", "passphrase", "oss_key_secret", "secret_access_key", "session_token", "token",
                 "sas_token", "account_key", "connection_string", "client_secret", "gdrive_client_secret",
                 "access_key_id", "sse_customer_key"):
        assert name in keys, name
    for name in ("url", "user", "keyfile", "port", "key_path", "ask_password", "verify", "site_cache_dir"):
        assert name not in keys, name


def test_every_credential_of_other_remotes_is_masked_in_context_lines() -> None:
    diff = ("--- c\n+++ c\n ['remote \"s3\"']\n     secret_access_key = AKIA-top\n   Passphrase=unlock-me\n"
            "   oss_key_secret = oss-top\n-  token = tok-top\n   url = s3://bucket/path\n   keyfile = /k/id\n")
    masked = mask_credentials(diff)
    for secret in ("AKIA-top", "unlock-me", "oss-top", "tok-top"):
        assert secret not in masked
    assert masked.count(MASK) == 4
    assert "url = s3://bucket/path" in masked and "keyfile = /k/id" in masked


def _config_context(task: Task, states: dict[str, FileState], secret: str | None = None) -> FakeContext:
    """The client with these files (by path), and the storage password `secret` in the secrets store."""
    return FakeContext.answering(task, lambda fact: states[fact.path],  # type: ignore[attr-defined]
                                 secrets={"storage_password": secret} if secret is not None else None)


def _states(content: str | None, mode: int = 0o600) -> dict[str, FileState]:
    local = FileState(True, "alice", "alice", mode, "regular file", content) if content is not None \
        else FileState(False)
    return {"/home/alice/demo/.dvc": FileState(True, "alice", "alice", 0o755, "directory"),
            "/home/alice/demo/.dvc/config.local": local}


def test_password_auth_sets_a_quoted_password_masked_in_the_diff(tmp_path: Path) -> None:
    settings = _settings(tmp_path, auth="password")
    password = "p'w\"#1, x"
    task = DvcClientConfig(INFO, settings, None)
    ctx = _config_context(task, _states(None), secret=password)
    change = task.plan(ctx)
    assert change is not None and password not in change.diff and MASK in change.diff
    assert any("host key" in note for note in ctx.notes)


@pytest.mark.parametrize("password", ["p'w\"#1, x", "'''q", "a = b ; c", " lead"])
def test_a_password_reads_back_as_dvc_reads_it(tmp_path: Path, password: str) -> None:
    text = merge_config(None, {REMOTE: {"user": "dvc", "password": password}}, {})
    assert text is not None
    assert _as_dvc_reads_it(tmp_path, text)["remote"]["data"]["password"] == password


def test_password_auth_without_secret_fails(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match="storage_password"):
        task = DvcClientConfig(INFO, _settings(tmp_path, auth="password"), None)
        task.plan(_config_context(task, _states(None)))


def test_wrong_mode_alone_is_fixed(tmp_path: Path) -> None:
    text = merge_config(None, managed_settings(_settings(tmp_path), INFO, None), {})
    task = DvcClientConfig(INFO, _settings(tmp_path), None)
    change = task.plan(_config_context(task, _states(text, 0o644)))
    assert change is not None and change.summary.startswith("mode 0600")
    assert task.plan(_config_context(task, _states(text))) is None


def test_private_site_cache_is_made_0700_and_never_taken_over(tmp_path: Path) -> None:
    settings = _settings(tmp_path)

    def plan(state: FileState) -> Change | None:
        task = PrivateSiteCache(INFO, settings)
        return task.plan(_config_context(task, {SITE_CACHE: state}))

    created = plan(FileState(False))
    assert created is not None and created.summary == f"create {SITE_CACHE} (0700)"
    loose = plan(FileState(True, "alice", "alice", 0o755, "directory"))
    assert loose is not None and loose.summary == f"mode 0700 on {SITE_CACHE}"
    assert plan(FileState(True, "alice", "alice", 0o700, "directory")) is None
    with pytest.raises(ProvisionError, match="symbolic link, not a directory"):
        plan(FileState(True, "alice", "alice", 0o777, "symbolic link"))
    with pytest.raises(ProvisionError, match="belongs to mallory, not alice"):
        plan(FileState(True, "mallory", "mallory", 0o700, "directory"))


def test_offboarding_without_config_local_is_nothing_to_do() -> None:
    task = RemoveDvcCredentials(INFO, "data")
    assert task.plan(_config_context(task, _states(None))) is None


def test_data_totals_from_dvc_files_and_lock() -> None:
    stream = """---
outs:
- md5: abc.dir
  size: 1000
  nfiles: 3
  hash: md5
  path: data
---
outs:
- md5: def
  size: 24
  path: model.pkl
---
schema: '2.0'
stages:
  train:
    outs:
    - path: out.bin
      md5: x
      size: 10
"""
    totals = data_totals(stream)
    assert totals == DataTotals(5, 1034)
    assert str(totals) == "5 files, 1034 bytes (1.0 KiB)"
    assert data_totals("") == DataTotals(0, 0)


def test_workspace_changes() -> None:
    assert workspace_changes("{}") == {}
    status = ('{"data.dvc": [{"changed outs": {"data": "not in cache"}}], '
              '"m.dvc": [{"changed outs": {"m": "modified"}}]}')
    assert workspace_changes(status) == {"data": "not in cache", "m": "modified"}
    with pytest.raises(ProvisionError):
        workspace_changes("ERROR: something")
