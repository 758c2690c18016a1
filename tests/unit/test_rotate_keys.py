"""Key rotation's state machine: which lines storage gets at each step, and how a client's files read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from provision.connection import CommandResult
from provision.dvc_config import merge_config
from provision.engine import PlayState, changes_of
from provision.errors import ProvisionError
from provision.facts import FileState
from provision.inventory import Host, load_inventory
from provision.plays.rotate import rotate_keys_play
from provision.remote import BatchOutput
from provision.tasks.authorized_keys import GIT, SFTP, AuthorizedKeys, key_line
from provision.tasks.checkout import CheckoutFact, CheckoutState, git_ssh_command
from provision.tasks.client_key import CLIENT_EXPORT, ClientInfo
from provision.tasks.dvc_client import managed_settings
from provision.tasks.key_rotation import (
    NOT_ONBOARDED_EXPORT,
    ROTATION_EXPORT,
    KeyRotation,
    RotatedLines,
    RotationKeyLines,
    RotationKeys,
    RotationKeysFact,
    RotationSummary,
    StartKeyRotation,
    SwitchToNewKey,
    line_public_key,
    rotated_lines,
)
from tests.unit.helpers import FakeContext, write_inventory

OLD = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8UoQD7CQXPa6WZQKq7xJn03aThFlp/MY/unOaKFawL"
NEW = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMd1RpfT6mkg3Zxcv3SXptQ0rkuTaNhk7cH8WDqv3Ddh"
STRAY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq+3Yv5ZZkKb0kCqGvR0yqmVqPoTmyB4FSlr4wyZd1C"
MARKER = "provision:site:ws1"
INFO = ClientInfo("ws1", "alice", "alice", "/home/alice", "/home/alice/.ssh/id_ed25519_demo", "/home/alice/demo",
                  OLD, True)


def _inventory(tmp_path: Path) -> Path:
    return write_inventory(tmp_path, {"hosts": {"ws1": {"ansible_user": "alice"}, "ws2": {"access": "read"}}})


def test_the_key_of_every_kind_of_line_is_found() -> None:
    for kind, read_only in ((SFTP, False), (SFTP, True), (GIT, False), (GIT, True)):
        assert line_public_key(key_line(kind, OLD, MARKER, read_only=read_only)) == OLD
    assert line_public_key(f"{OLD} admin@laptop") == OLD
    assert line_public_key("# a comment") is None


def test_adding_keeps_the_old_line_as_it_is_and_puts_the_new_one_beside_it() -> None:
    old_line = key_line(SFTP, OLD, MARKER, read_only=True)  # written when the client was read-only
    new_line = key_line(SFTP, NEW, MARKER)
    assert rotated_lines([old_line], OLD, new_line, revoke_old=False) == [old_line, new_line]


def test_adding_drops_the_new_key_of_an_abandoned_rotation() -> None:
    existing = [key_line(SFTP, OLD, MARKER), key_line(SFTP, STRAY, MARKER)]
    lines = rotated_lines(existing, OLD, key_line(SFTP, NEW, MARKER), revoke_old=False)
    assert lines == [key_line(SFTP, OLD, MARKER), key_line(SFTP, NEW, MARKER)]


def test_an_old_key_already_revoked_is_never_authorized_again() -> None:
    existing = [key_line(GIT, NEW, MARKER)]
    for revoke_old in (False, True):
        assert rotated_lines(existing, OLD, key_line(GIT, NEW, MARKER), revoke_old=revoke_old) == existing


def test_revoking_leaves_only_the_new_line() -> None:
    existing = [key_line(SFTP, OLD, MARKER), key_line(SFTP, NEW, MARKER)]
    assert rotated_lines(existing, OLD, key_line(SFTP, NEW, MARKER), revoke_old=True) == existing[1:]


def test_when_the_new_key_is_in_place_already_there_is_one_line() -> None:
    existing = [key_line(SFTP, NEW, MARKER)]
    assert rotated_lines(existing, NEW, key_line(SFTP, NEW, MARKER), revoke_old=False) == existing


def test_rotation_state_is_read_from_the_private_keys() -> None:
    fact = RotationKeysFact("alice", "~/.ssh/id_ed25519_demo")
    output = BatchOutput(0, f"old {OLD}\nnew absent\nnew.pub absent\n")
    assert fact.parse(output) == RotationKeys(OLD, "absent", "absent")
    assert fact.parse(BatchOutput(0, "no-such-user\n")) is None


def _start(tmp_path: Path, keys: RotationKeys) -> tuple[StartKeyRotation, FakeContext]:
    inventory = load_inventory(_inventory(tmp_path))
    task = StartKeyRotation(inventory.hosts["ws1"])
    ctx = FakeContext("ws1", {task.fact.key: keys})
    ctx.export(CLIENT_EXPORT, INFO)
    return task, ctx


def test_a_rotation_starts_with_a_new_pair_beside_the_old(tmp_path: Path) -> None:
    task, ctx = _start(tmp_path, RotationKeys(OLD, "absent", "absent"))
    change = task.plan(ctx)
    assert change is not None and "generate a new ed25519 key /home/alice/.ssh/id_ed25519_demo.new" in change.summary
    rotation = ctx.state.report("ws1").exports[ROTATION_EXPORT]
    assert rotation.old_public == OLD and rotation.new_public is None and not rotation.consolidating
    assert rotation.new_key == "/home/alice/.ssh/id_ed25519_demo.new"


def test_a_new_key_left_by_an_earlier_run_is_taken_up_again(tmp_path: Path) -> None:
    task, ctx = _start(tmp_path, RotationKeys(OLD, NEW, f"{NEW} provision:site:ws1"))
    assert task.plan(ctx) is None  # type: ignore[arg-type]
    rotation = ctx.state.report("ws1").exports[ROTATION_EXPORT]
    assert rotation.new_public == NEW and any("begun earlier" in note for note in ctx.notes)
    task, ctx = _start(tmp_path, RotationKeys(OLD, NEW, "absent"))
    change = task.plan(ctx)
    assert change is not None and change.summary.startswith("write /home/alice/.ssh/id_ed25519_demo.new.pub")


def test_same_private_key_at_both_paths_means_only_the_clean_up_is_left(tmp_path: Path) -> None:
    task, ctx = _start(tmp_path, RotationKeys(NEW, NEW, NEW))
    assert task.plan(ctx) is None  # type: ignore[arg-type]
    assert ctx.state.report("ws1").exports[ROTATION_EXPORT].consolidating


@pytest.mark.parametrize(("keys", "message"), [
    (RotationKeys("absent", "absent", "absent"), "provision onboard ws1"),
    (RotationKeys("unreadable", "absent", "absent"), "passphrase"),
    (RotationKeys(OLD, "unreadable", "absent"), "remove it"),
])
def test_states_a_rotation_cannot_continue_from_say_why(tmp_path: Path, keys: RotationKeys, message: str) -> None:
    task, ctx = _start(tmp_path, keys)
    with pytest.raises(ProvisionError, match=message):
        task.plan(ctx)


def _lines_task(content: str, wanted: list[RotatedLines], *, revoke_old: bool,
                check: bool = False) -> tuple[RotationKeyLines, FakeContext]:
    task = RotationKeyLines("dvc", wanted, purpose="DVC over SFTP", revoke_old=revoke_old)
    ctx = FakeContext("nas", {task.fact.key: AuthorizedKeys("/home/dvc", "digest", content.encode())}, check=check)
    return task, ctx


def test_storage_step_says_what_moves_and_leaves_clients_without_lines_alone() -> None:
    content = f"{key_line(SFTP, OLD, MARKER)}\n{OLD} admin@laptop\n"
    wanted = [RotatedLines(MARKER, OLD, key_line(SFTP, NEW, MARKER)),
              RotatedLines("provision:site:ws9", STRAY, key_line(SFTP, NEW, "provision:site:ws9"))]
    task, ctx = _lines_task(content, wanted, revoke_old=False)
    change = task.plan(ctx)
    assert change is not None
    assert change.summary == "authorize the new key beside the old one for ws1 in /home/dvc/.ssh/authorized_keys"
    assert ctx.state.report("nas").exports[NOT_ONBOARDED_EXPORT] == ["ws9"]
    assert task.lines == {MARKER: [key_line(SFTP, OLD, MARKER), key_line(SFTP, NEW, MARKER)]}
    assert "ws9" in " ".join(ctx.notes)


def test_storage_step_under_check_with_no_new_key_yet() -> None:
    task, ctx = _lines_task(f"{key_line(SFTP, OLD, MARKER)}\n", [RotatedLines(MARKER, OLD, None)],
                            revoke_old=True, check=True)
    change = task.plan(ctx)
    assert change is not None and change.summary.startswith("revoke the old key of ws1")


def test_storage_step_with_nothing_left_to_do() -> None:
    content = f"{key_line(SFTP, NEW, MARKER)}\n"
    task, ctx = _lines_task(content, [RotatedLines(MARKER, OLD, key_line(SFTP, NEW, MARKER))], revoke_old=True)
    assert task.plan(ctx) is None  # type: ignore[arg-type]


def test_summary_names_the_clients_left_and_how_to_finish() -> None:
    state = PlayState()
    state.report("ws2").unreachable = True
    state.report("ws1")
    ctx = FakeContext("nas", state=state)
    RotationSummary("key rotation", ["ws1", "ws2"], ["ws3"], "provision rotate keys").plan(ctx)
    assert ctx.notes == ["key rotation: not yet done: ws2 (unreachable), ws3 (not selected); to finish: "
                         "provision rotate keys --limit ws2,ws3"]


def test_play_alternates_clients_and_storage(tmp_path: Path) -> None:
    inventory = load_inventory(_inventory(tmp_path))
    play = rotate_keys_play(inventory, inventory.clients)
    assert [phase.name for phase in play.phases] == ["new key", "authorize new key", "switch", "revoke old key",
                                                     "retire old key", "summary"]
    assert [h.name for h in play.phases[1].hosts(PlayState())] == ["nas"]
    assert list(play.phases[2].needs(inventory.hosts["ws1"])) == ["nas"]


def test_a_rotation_names_its_key_paths() -> None:
    rotation = KeyRotation(INFO, OLD, NEW, MARKER)
    assert rotation.at(rotation.new_key).key == "/home/alice/.ssh/id_ed25519_demo.new"
    assert not rotation.consolidating and KeyRotation(INFO, NEW, NEW, MARKER).consolidating


class Client:
    """A client whose files change as the tasks write them; dvc fails with the key named in `failing`."""

    label = "ws1"

    def __init__(self, config_local: str, ssh_command: str, failing: str) -> None:
        self.files = {f"{INFO.workdir}/.dvc/config.local": config_local}
        self.ssh_command = ssh_command
        self.failing = failing
        self.log: list[str] = []
        self._staged: dict[str, bytes] = {}

    def stage(self, data: bytes) -> str:
        path = f"/tmp/stage/{len(self._staged)}"
        self._staged[path] = data
        return path

    def run(self, argv: list[str], *, privileged: bool = False, timeout: float | None = None) -> CommandResult:
        if argv[:2] == ["sh", "-c"] and argv[4] in self._staged:  # sh -c INSTALL NAME STAGED TARGET ...
            self.files[argv[5]] = self._staged[argv[4]].decode()
            self.log.append(f"write {argv[5]}")
        elif "core.sshCommand" in argv:
            self.ssh_command = argv[-1]
            self.log.append("set core.sshCommand")
        elif "status" in argv:
            keyfile = next(line for line in self.files[f"{INFO.workdir}/.dvc/config.local"].splitlines()
                           if line.startswith("keyfile"))
            self.log.append(f"dvc status ({keyfile})")
            if keyfile.endswith(self.failing):
                return CommandResult(tuple(argv), 255, "", "ERROR: Permission denied for user dvc\n")
        return CommandResult(tuple(argv), 0, "", "")


class SwitchContext(FakeContext):
    """ws1, whose facts are read from the client's files as they are now."""

    def __init__(self, client: Client, host: Host) -> None:
        super().__init__(host, session=client)

    def fact(self, fact: Any) -> Any:
        client: Client = self.session  # type: ignore[assignment]
        if isinstance(fact, CheckoutFact):
            return CheckoutState("checkout", "ssh://git@10.0.0.5:22/mnt/nfs/git/demo.git", client.ssh_command, 0)
        if fact.path.endswith("/.dvc"):
            return FileState(True, "alice", "alice", 0o755, "directory")
        content = client.files.get(fact.path)
        return FileState(True, "alice", "alice", 0o600, "regular file", content) if content is not None \
            else FileState(False)


def _switch(tmp_path: Path, failing: str) -> tuple[SwitchToNewKey, SwitchContext, Client]:
    inventory = load_inventory(_inventory(tmp_path))
    settings = inventory.hosts["ws1"].settings
    rotation = KeyRotation(INFO, OLD, NEW, MARKER)
    config = merge_config(None, managed_settings(settings, INFO, None), {}) or ""
    client = Client(config, git_ssh_command(INFO), failing)
    task = SwitchToNewKey(rotation, settings, None, "/usr/local/bin/dvc")
    return task, SwitchContext(client, inventory.hosts["ws1"]), client


def _switched(task: SwitchToNewKey, ctx: SwitchContext) -> list[str]:
    """What the engine does with the proof outside --check: its changes applied in order; their diffs."""
    changes = changes_of(task.plan(ctx))  # type: ignore[arg-type]
    for change in changes:
        ctx.apply_now(change)
    return [change.diff for change in changes]


def test_switch_names_the_new_key_and_dvc_proves_it(tmp_path: Path) -> None:
    task, ctx, client = _switch(tmp_path, failing="nothing")
    assert "+keyfile = /home/alice/.ssh/id_ed25519_demo.new" in "".join(_switched(task, ctx))
    assert task.prove(ctx) == "dvc status -c works with it"  # type: ignore[arg-type]
    assert client.log == ["write /home/alice/demo/.dvc/config.local", "set core.sshCommand",
                          "dvc status (keyfile = /home/alice/.ssh/id_ed25519_demo.new)"]
    assert "-i /home/alice/.ssh/id_ed25519_demo.new" in client.ssh_command


def test_a_failed_dvc_proof_switches_back_to_the_old_key(tmp_path: Path) -> None:
    task, ctx, client = _switch(tmp_path, failing=".new")
    assert _switched(task, ctx)
    with pytest.raises(ProvisionError, match=re.escape("switched back to the old key /home/alice/.ssh/"
                                                       "id_ed25519_demo, which stays authorized")):
        task.prove(ctx)  # type: ignore[arg-type]
    assert client.log[-2:] == ["write /home/alice/demo/.dvc/config.local", "set core.sshCommand"]
    assert "keyfile = /home/alice/.ssh/id_ed25519_demo\n" in client.files[f"{INFO.workdir}/.dvc/config.local"]
    assert client.ssh_command == git_ssh_command(INFO)


def test_a_switch_made_by_an_earlier_run_is_proven_again_and_undone_if_dvc_fails(tmp_path: Path) -> None:
    task, ctx, client = _switch(tmp_path, failing="nothing")
    _switched(task, ctx)
    task.prove(ctx)  # type: ignore[arg-type]
    assert _switched(task, ctx) == []
    assert ctx.notes == ["config.local and core.sshCommand name /home/alice/.ssh/id_ed25519_demo.new"]
    assert task.prove(ctx) == "dvc status -c works with it"  # type: ignore[arg-type]
    assert client.log[-1] == "dvc status (keyfile = /home/alice/.ssh/id_ed25519_demo.new)"
    client.failing = ".new"
    assert _switched(task, ctx) == []
    with pytest.raises(ProvisionError, match="switched back"):
        task.prove(ctx)  # type: ignore[arg-type]
    assert client.ssh_command == git_ssh_command(INFO)
