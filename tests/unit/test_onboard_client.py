"""Client side of onboarding: key state parsing, public key checks, known_hosts pins, git URL, checkout."""

from __future__ import annotations

import base64
import shlex
import subprocess
from pathlib import Path
from typing import Any

import paramiko
import pytest

from provision.errors import ProvisionError
from provision.facts import FileState
from provision.inventory import load_inventory
from provision.remote import BatchOutput
from provision.tasks.checkout import Checkout, CheckoutFact, CheckoutState, git_ssh_command, git_url
from provision.tasks.client_key import (
    CLIENT_EXPORT,
    ClientInfo,
    ClientKeyPair,
    KeyState,
    KeyStateFact,
    expand_home,
    key_marker,
    parse_public_key,
)
from provision.tasks.storage_host_key import client_ssh_options, pinned_known_hosts
from tests.unit.helpers import FakeContext, write_inventory

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8UoQD7CQXPa6WZQKq7xJn03aThFlp/MY/unOaKFawL"
INFO = ClientInfo("ws1", "alice", "alice", "/home/alice", "/home/alice/.ssh/id_ed25519_demo", "/home/alice/demo",
                  KEY, True)


def _inventory(tmp_path: Path, **variables: str) -> Path:
    return write_inventory(tmp_path, {"hosts": {"ws1": {"ansible_host": "10.0.0.11", "ansible_user": "alice"}}},
                           storage={"ansible_host": "10.0.0.5", "ansible_port": 2222}, **variables)


def test_marker_names_inventory_and_client() -> None:
    assert key_marker("site", "ws1") == "provision:site:ws1"


def test_public_key_accepts_ed25519_and_drops_the_comment() -> None:
    assert parse_public_key(KEY + " provision:site:ws1\n") == KEY


@pytest.mark.parametrize("text", [
    "",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7",
    'command="sh" ' + KEY,
    KEY.replace("AAAAC3", "AAAA!3"),
    "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQC7",
    KEY[:-8],
])
def test_anything_but_a_well_formed_ed25519_key_is_refused(text: str) -> None:
    with pytest.raises(ProvisionError):
        parse_public_key(text)


def test_a_key_from_ssh_keygen_passes(tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "provision:site:ws1",
                    "-f", str(tmp_path / "id")], check=True)
    public = (tmp_path / "id.pub").read_text()
    assert parse_public_key(public) == " ".join(public.split()[:2])


def test_expand_home() -> None:
    assert expand_home("~/.ssh/k", "/home/alice") == "/home/alice/.ssh/k"
    assert expand_home("/srv/k", "/home/alice") == "/srv/k"
    assert expand_home("~/x", "/") == "/x"


def test_key_state_parses_and_expands_on_the_host(tmp_path: Path) -> None:
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "id").write_text("private")
    (ssh_dir / "id").chmod(0o600)
    (ssh_dir / "id.pub").write_text(KEY + " c\n")
    fact = KeyStateFact("root", str(ssh_dir / "id"))
    done = subprocess.run(fact.argv(), capture_output=True, text=True, check=False)
    state = fact.parse(BatchOutput(done.returncode, done.stdout))
    assert state is not None
    assert state.key == str(ssh_dir / "id")
    assert state.private == FileState(True, "root", "root", 0o600, "regular file")
    assert state.public.exists and state.public_text == KEY + " c"
    assert fact.parse(BatchOutput(0, "no-such-user\n")) is None
    relative = KeyStateFact("root", "~/.ssh/id_x")
    done = subprocess.run(relative.argv(), capture_output=True, text=True, check=False)
    state = relative.parse(BatchOutput(done.returncode, done.stdout))
    assert state is not None and state.key.endswith("/.ssh/id_x") and not state.key.startswith("~")
    assert not state.private.exists


def _key_context(task: ClientKeyPair, state: KeyState) -> FakeContext:
    """The client under --check, with its key pair in `state`."""
    return FakeContext.answering(task, lambda fact: state, host=task.client, check=True)


ABSENT = FileState(exists=False)


def _alice(mode: int, kind: str) -> FileState:
    return FileState(True, "alice", "alice", mode, kind)


def _key_state(**changes: Any) -> KeyState:
    values: dict[str, Any] = {
        "home": "/home/alice", "group": "staff", "key": "/home/alice/.ssh/id_ed25519_demo",
        "ssh_dir": _alice(0o700, "directory"), "private": _alice(0o600, "regular file"),
        "public": _alice(0o644, "regular file"), "public_text": KEY + " provision:site:ws1",
    }
    values.update(changes)
    return KeyState(**values)


def test_key_pair_in_place_exports_and_changes_nothing(tmp_path: Path) -> None:
    task = ClientKeyPair(load_inventory(_inventory(tmp_path)).hosts["ws1"])
    ctx = _key_context(task, _key_state())
    assert task.plan(ctx) is None
    info = ctx.exports[CLIENT_EXPORT]
    assert (info.user, info.group, info.public_key, info.workdir) == ("alice", "staff", KEY, "/home/alice/demo")


@pytest.mark.parametrize(("changes", "summary"), [
    ({"private": ABSENT, "public": ABSENT, "public_text": ""},
     "generate ssh-ed25519 key /home/alice/.ssh/id_ed25519_demo"),
    ({"ssh_dir": _alice(0o755, "directory")}, "/home/alice/.ssh 0700"),
    ({"private": _alice(0o644, "regular file")}, "mode 0600 on /home/alice/.ssh/id_ed25519_demo"),
    ({"public": ABSENT, "public_text": ""}, "derive /home/alice/.ssh/id_ed25519_demo.pub"),
])
def test_key_pair_changes(tmp_path: Path, changes: dict[str, Any], summary: str) -> None:
    task = ClientKeyPair(load_inventory(_inventory(tmp_path)).hosts["ws1"])
    change = task.plan(_key_context(task, _key_state(**changes)))
    assert change is not None and change.summary == summary


def test_an_existing_rsa_key_is_refused_not_replaced(tmp_path: Path) -> None:
    task = ClientKeyPair(load_inventory(_inventory(tmp_path)).hosts["ws1"])
    with pytest.raises(ProvisionError, match="ed25519"):
        task.plan(_key_context(task, _key_state(public_text="ssh-rsa AAAAB3NzaC1yc2E x")))


# -------------------------------------------------------------- known_hosts


def _ed25519() -> paramiko.PKey:
    return paramiko.PKey.from_type_string("ssh-ed25519", base64.b64decode(KEY.split()[1]))


def test_pins_are_added_under_the_client_facing_name() -> None:
    result = pinned_known_hosts("", "[10.0.0.5]:2222", [_ed25519()])
    assert result == f"[10.0.0.5]:2222 {KEY}\n"
    assert pinned_known_hosts(result, "[10.0.0.5]:2222", [_ed25519()]) == result


def test_other_hosts_comments_and_markers_stay() -> None:
    content = f"# mine\nother.example {KEY}\n@cert-authority *.example {KEY}\n"
    result = pinned_known_hosts(content, "[10.0.0.5]:2222", [_ed25519()])
    assert result == content + f"[10.0.0.5]:2222 {KEY}\n"


def test_a_different_key_for_the_name_is_replaced_and_shared_lines_keep_other_names() -> None:
    stale = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMd1RpfT6mkg3Zxcv3SXptQ0rkuTaNhk7cH8WDqv3Ddh"
    hashed = paramiko.HostKeys.hash_host("[10.0.0.5]:2222")
    content = f"[10.0.0.5]:2222,nas {stale}\n{hashed} {stale}\n"
    result = pinned_known_hosts(content, "[10.0.0.5]:2222", [_ed25519()])
    assert result == f"nas {stale}\n[10.0.0.5]:2222 {KEY}\n"


def test_a_hashed_entry_with_the_pinned_key_counts() -> None:
    hashed = paramiko.HostKeys.hash_host("[10.0.0.5]:2222")
    content = f"{hashed} {KEY}\n"
    assert pinned_known_hosts(content, "[10.0.0.5]:2222", [_ed25519()]) == content


STALE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMd1RpfT6mkg3Zxcv3SXptQ0rkuTaNhk7cH8WDqv3Ddh"


@pytest.mark.parametrize("separator", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r"])
def test_foreign_lines_split_only_on_newlines_as_openssh_does(separator: str) -> None:
    """OpenSSH reads known_hosts line by line on \\n only: a comment or a malformed line holding another
    line break character is one line, kept byte for byte, and never read as an entry of the name."""
    content = (f"# note{separator}[10.0.0.5]:2222 {STALE}\n"
               f"[10.0.0.5]:2222{separator}{STALE}\n"
               f"other.example {KEY}{separator}trailing\n")
    result = pinned_known_hosts(content, "[10.0.0.5]:2222", [_ed25519()])
    assert result == content + f"[10.0.0.5]:2222 {KEY}\n"


def test_entries_separated_by_tabs_and_runs_of_spaces_are_entries() -> None:
    kind, blob = STALE.split()
    content = f"  [10.0.0.5]:2222 \t{kind}  {blob}\n[10.0.0.5]:2222\t{KEY.replace(' ', chr(9))} comment\n"
    result = pinned_known_hosts(content, "[10.0.0.5]:2222", [_ed25519()])
    assert result == f"[10.0.0.5]:2222\t{KEY.replace(' ', chr(9))} comment\n"


def test_a_line_without_a_final_newline_and_a_non_key_field_are_kept() -> None:
    content = f"@revoked [10.0.0.5]:2222 {STALE}\n[10.0.0.5]:2222 ssh-unknown AAAA\nnas {STALE}"
    result = pinned_known_hosts(content, "[10.0.0.5]:2222", [_ed25519()])
    assert result == content + f"\n[10.0.0.5]:2222 {KEY}\n"


# -------------------------------------------------------------- git


def test_git_url_for_a_path_remote(tmp_path: Path) -> None:
    settings = load_inventory(_inventory(tmp_path)).hosts["ws1"].settings
    assert git_url(settings) == "ssh://git@10.0.0.5:2222/mnt/nfs/git/demo.git"


def test_git_url_brackets_ipv6_and_keeps_urls(tmp_path: Path) -> None:
    settings = load_inventory(_inventory(tmp_path, storage_address="::1")).hosts["ws1"].settings
    assert git_url(settings) == "ssh://git@[::1]:2222/mnt/nfs/git/demo.git"
    settings = load_inventory(_inventory(tmp_path, git_remote="https://git.example/demo.git")).hosts["ws1"].settings
    assert git_url(settings) == "https://git.example/demo.git"


def test_ssh_command_uses_only_the_client_key_and_its_pins() -> None:
    argv = shlex.split(git_ssh_command(INFO))
    assert argv == ["ssh", *client_ssh_options(INFO)]
    assert argv[1:3] == ["-F", "/dev/null"]
    for option in ("IdentitiesOnly=yes", "IdentityAgent=none", "StrictHostKeyChecking=yes",
                   "UserKnownHostsFile=/home/alice/.ssh/known_hosts"):
        assert option in argv
    assert argv[argv.index("-i") + 1] == INFO.key


def test_checkout_fact_reads_states(tmp_path: Path) -> None:
    def state(path: Path) -> CheckoutState:
        fact = CheckoutFact(str(path))
        done = subprocess.run(fact.argv(), capture_output=True, text=True, check=False)
        return fact.parse(BatchOutput(done.returncode, done.stdout))

    assert state(tmp_path / "missing").kind == "absent"
    (tmp_path / "empty").mkdir()
    assert state(tmp_path / "empty").kind == "empty"
    (tmp_path / "file").write_text("x")
    assert state(tmp_path / "file").kind == "not-a-directory"
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", "ssh://git@h:22/r.git"], check=True)
    (repo / "new.txt").write_text("x")
    found = state(repo)
    assert (found.kind, found.origin, found.ssh_command, found.changed_paths) == \
        ("checkout", "ssh://git@h:22/r.git", "", 1)
    (repo / "sub").mkdir()
    assert state(repo / "sub").kind == "empty"


def _checkout_context(task: Checkout, state: CheckoutState) -> FakeContext:
    """ws1 under --check, with its checkout in `state`."""
    return FakeContext.answering(task, lambda fact: state, check=True)


def test_checkout_decisions(tmp_path: Path) -> None:
    settings = load_inventory(_inventory(tmp_path)).hosts["ws1"].settings
    url = git_url(settings)
    task = Checkout(INFO, settings)
    change = task.plan(_checkout_context(task, CheckoutState("absent")))
    assert change is not None and change.summary == f"clone {url} into /home/alice/demo"
    with pytest.raises(ProvisionError, match="not a checkout"):
        task.plan(_checkout_context(task, CheckoutState("not-a-checkout")))
    with pytest.raises(ProvisionError, match="left as it is"):
        task.plan(_checkout_context(task, CheckoutState("checkout", "ssh://elsewhere/r.git", "", 0)))
    ctx = _checkout_context(task, CheckoutState("checkout", url, git_ssh_command(INFO), 3))
    assert task.plan(ctx) is None
    assert any("3 locally changed path(s)" in note for note in ctx.notes)
    change = task.plan(_checkout_context(task, CheckoutState("checkout", url, "", 0)))
    assert change is not None and "core.sshCommand" in change.summary
