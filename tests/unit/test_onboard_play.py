"""Which hosts onboard and offboard work on, and how the phases are laid out."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.engine import PlayState
from provision.errors import InputError
from provision.inventory import Inventory, load_inventory
from provision.plays.onboard import offboard_play, onboard_play, select_clients
from provision.tasks.authorized_keys import AuthorizeKeys
from provision.tasks.client_key import CLIENT_EXPORT, ClientInfo
from tests.unit.helpers import write_inventory

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8UoQD7CQXPa6WZQKq7xJn03aThFlp/MY/unOaKFawL"


def _inventory(tmp_path: Path, ws2_vars: dict[str, str] | None = None) -> Inventory:
    return load_inventory(write_inventory(tmp_path, {"hosts": {"ws1": {}, "ws2": ws2_vars or {}, "ws3": {}}}))


def _names(hosts: list) -> list[str]:
    return [host.name for host in hosts]


def test_default_is_every_client(tmp_path: Path) -> None:
    assert _names(select_clients(_inventory(tmp_path), (), None)) == ["ws1", "ws2", "ws3"]


def test_hosts_and_limit_intersect(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path)
    assert _names(select_clients(inventory, ("ws3", "ws1"), None)) == ["ws3", "ws1"]
    assert _names(select_clients(inventory, (), "clients:!ws2")) == ["ws1", "ws3"]
    assert _names(select_clients(inventory, ("ws1", "ws2"), "ws2:nas")) == ["ws2"]
    with pytest.raises(InputError, match="no client host selected"):
        select_clients(inventory, ("ws1",), "ws2")


def test_storage_and_unknown_hosts_are_refused(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path)
    with pytest.raises(InputError, match="storage host"):
        select_clients(inventory, ("nas",), None)
    with pytest.raises(InputError, match="no such host"):
        select_clients(inventory, ("ws9",), None)


def test_a_client_naming_other_storage_accounts_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="storage_user") as raised:
        select_clients(_inventory(tmp_path, {"storage_user": "other"}), (), None)
    assert raised.value.exit_status == 1


def _state_with_keys(inventory: Inventory, names: list[str]) -> PlayState:
    state = PlayState()
    for name in names:
        info = ClientInfo(name, "root", "root", "/root", "/root/.ssh/id_ed25519_demo", "/root/demo", KEY, True)
        state.report(name).exports[CLIENT_EXPORT] = info
    return state


def test_onboard_phases_and_storage_lines(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, {"access": "read"})
    clients = select_clients(inventory, (), None)
    play = onboard_play(inventory, clients, pins_path=tmp_path / "site.known_hosts", pull=False)
    assert [phase.name for phase in play.phases] == ["client key", "authorize", "client"]
    client_phase = play.phases[2]
    assert list(client_phase.needs(clients[0])) == ["nas"]
    state = _state_with_keys(inventory, ["ws1", "ws2", "ws3"])
    state.report("ws3").failed = True
    tasks = play.phases[1].tasks(inventory.storage, state)
    sftp, git = tasks
    assert isinstance(sftp, AuthorizeKeys) and isinstance(git, AuthorizeKeys)
    assert sftp.account == "dvc" and git.account == "git"
    assert set(sftp.lines) == {"provision:site:ws1", "provision:site:ws2"}
    assert sftp.lines["provision:site:ws2"] == [f'restrict,command="internal-sftp -R" {KEY} provision:site:ws2']
    assert git.lines["provision:site:ws1"] == [
        f'restrict,command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"" {KEY} provision:site:ws1']


def test_offboard_revokes_every_named_client_whether_or_not_it_answered(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path)
    clients = select_clients(inventory, ("ws2",), None)
    play = offboard_play(inventory, clients, purge=True)
    assert [phase.name for phase in play.phases] == ["client account", "revoke", "client"]
    state = PlayState()
    state.report("ws2").unreachable = True
    tasks = play.phases[1].tasks(inventory.storage, state)
    assert all(isinstance(task, AuthorizeKeys) and task.lines == {"provision:site:ws2": []} for task in tasks)
    assert {task.account for task in tasks} == {"dvc", "git"}  # type: ignore[attr-defined]
