"""storage_user's password: where the password comes from, how it reaches chpasswd,
and the rotation's recoverable steps (a store and a login stand in for the real ones here; the lab
tests run the real thing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provision.connection import CommandResult, PasswordLoginDisabled
from provision.errors import InputError, ProvisionError
from provision.inventory import Inventory, load_inventory
from provision.plays.bootstrap import PasswordLogin
from provision.plays.rotate import rotate_password_play
from provision.remote import BatchOutput
from provision.secrets import REDACTOR, sibling_name
from provision.secrets.inventory import SecretLookupForInventory
from provision.tasks.password_login import (
    NEXT_PASSWORD_KEY,
    PASSWORD_KEY,
    PasswordHash,
    PasswordHashFact,
    RotateStoragePassword,
    SamePassword,
    StoragePassword,
    set_password,
)
from tests.unit.helpers import FakeContext, write_inventory


def _inventory(tmp_path: Path, ws1: dict[str, str] | None = None, ws2: dict[str, str] | None = None) -> Inventory:
    """ws1 on `auth: password` unless told otherwise, both in the clients' subgroup `lab`."""
    hosts = {"ws1": {"auth": "password"} if ws1 is None else ws1, "ws2": ws2 or {}}
    return load_inventory(write_inventory(tmp_path, {"children": {"lab": {"hosts": hosts}}}))


def test_password_clients_and_read_only_clients_cannot_share_an_inventory(tmp_path: Path) -> None:
    assert [h.name for h in _inventory(tmp_path).password_clients] == ["ws1"]
    _inventory(tmp_path).check_password_access()
    _inventory(tmp_path, ws1={}, ws2={"access": "read"}).check_password_access()
    with pytest.raises(InputError, match=r"site\.yml:\d+: access: ws2 has access: read, but ws1 uses auth: password"):
        _inventory(tmp_path, ws2={"access": "read"}).check_password_access()


class Store:
    backend_name = "test store"

    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def set(self, name: str, value: str) -> None:
        self.values[name] = value

    def delete(self, name: str) -> bool:
        return self.values.pop(name, None) is not None


class Secrets(SecretLookupForInventory):
    """The inventory's lookup over a dict instead of the OS keyring or a vault."""

    def __init__(self, inventory: Inventory, values: dict[str, str]) -> None:
        super().__init__(inventory)
        self._values = Store(values)

    def store(self) -> Store:  # type: ignore[override]
        return self._values


def test_lookup_order_is_host_groups_all_and_names_where_it_found_the_value(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path)
    secrets = Secrets(inventory, {"site/all/storage_password": "from-all-1234", "site/lab/storage_password":
                                  "from-lab-1234", "site/clients/storage_password": "from-clients"})
    found = secrets.find(inventory.hosts["ws1"], PASSWORD_KEY)
    assert found is not None and (found.name, found.value) == ("site/lab/storage_password", "from-lab-1234")
    assert secrets(inventory.hosts["ws1"], PASSWORD_KEY) == "from-lab-1234"
    found = secrets.find(inventory.hosts["nas"], PASSWORD_KEY)
    assert found is not None and found.name == "site/all/storage_password"
    assert secrets.find(inventory.hosts["nas"], NEXT_PASSWORD_KEY) is None
    assert sibling_name("site/lab/storage_password", NEXT_PASSWORD_KEY) == "site/lab/storage_password.next"


def test_a_client_must_find_the_value_storage_finds(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path)
    ws1, nas = inventory.hosts["ws1"], inventory.hosts["nas"]
    same = Secrets(inventory, {"site/all/storage_password": "from-all-1234"})
    assert SamePassword(ws1, nas, same).plan(Context()) is None  # type: ignore[arg-type]
    apart = Secrets(inventory, {"site/all/storage_password": "from-all-1234", "site/lab/storage_password": "other"})
    with pytest.raises(ProvisionError, match="ws1 finds site/lab/storage_password but the storage host nas finds "
                                             "site/all/storage_password") as refused:
        SamePassword(ws1, nas, apart).plan(Context())  # type: ignore[arg-type]
    assert "from-all-1234" not in str(refused.value) and "other" not in str(refused.value).split(";")[0]
    with pytest.raises(ProvisionError, match="no storage_password for ws1"):
        SamePassword(ws1, nas, Secrets(inventory, {})).plan(Context())  # type: ignore[arg-type]


class Session:
    label = "nas"

    def __init__(self) -> None:
        self.staged: list[bytes] = []
        self.argv: list[list[str]] = []

    def stage(self, data: bytes) -> str:
        self.staged.append(data)
        return f"/tmp/.provision-stage.x/{len(self.staged)}"

    def run(self, argv: list[str], *, privileged: bool = False, timeout: float | None = None) -> CommandResult:
        self.argv.append(list(argv))
        return CommandResult(tuple(argv), 0, "", "")


class Context(FakeContext):
    """Storage's context, with a session that records what would run."""

    def __init__(self, facts: dict[Any, Any] | None = None, *, check: bool = False) -> None:
        super().__init__("nas", facts, check=check, session=Session())


def test_chpasswd_reads_a_staged_file_and_no_argv_holds_the_password() -> None:
    ctx = Context()
    set_password(ctx, "dvc", "s3cret-Value-xyz")  # type: ignore[arg-type]
    assert ctx.session.staged == [b"dvc:s3cret-Value-xyz\n"]
    assert len(ctx.session.argv) == 1 and "chpasswd" in ctx.session.argv[0][2]
    assert ctx.session.argv[0][-1] == "/tmp/.provision-stage.x/1"
    assert not any("s3cret" in arg for arg in ctx.session.argv[0])
    with pytest.raises(ProvisionError, match="line break"):
        set_password(ctx, "dvc", "two\nlines")  # type: ignore[arg-type]


class Login:
    """AccountLogin with the server's answers given up front."""

    def __init__(self, accepts: set[str], methods: tuple[str, ...] = ("publickey", "password")) -> None:
        self.accepts = set(accepts)
        self.methods = list(methods)
        self.tried: list[str] = []

    def offered_methods(self, user: str) -> list[str]:
        return self.methods

    def password_accepted(self, user: str, password: str, directory: str) -> bool:
        if "password" not in self.methods:
            raise PasswordLoginDisabled("no password login")
        self.tried.append(password)
        return password in self.accepts


class AcceptsAnything(Login):
    """A server that takes whatever chpasswd just set (the generated value is not known beforehand)."""

    def password_accepted(self, user: str, password: str, directory: str) -> bool:
        self.tried.append(password)
        return True


def _rotation(tmp_path: Path, values: dict[str, str], login: Login,
              check: bool = False) -> tuple[RotateStoragePassword, Context, Secrets]:
    inventory = _inventory(tmp_path)
    secrets = Secrets(inventory, values)
    return RotateStoragePassword(inventory.hosts["nas"], secrets, login), Context(check=check), secrets  # type: ignore[arg-type]


def test_rotation_generates_sets_proves_and_promotes(tmp_path: Path) -> None:
    task, ctx, secrets = _rotation(tmp_path, {"site/all/storage_password": "old-password-1"}, AcceptsAnything(set()))
    change = task.plan(ctx)  # type: ignore[arg-type]
    assert change is not None and change.summary.startswith("generate site/all/storage_password.next")
    assert secrets.store().values == {"site/all/storage_password": "old-password-1"}, "planning stores nothing"
    change.apply()
    new = secrets.store().values["site/all/storage_password"]
    assert set(secrets.store().values) == {"site/all/storage_password"} and new != "old-password-1"
    assert ctx.session.staged == [f"dvc:{new}\n".encode()]
    assert REDACTOR.mask(f"x {new} y") == "x ******** y"


def test_a_next_value_storage_accepts_already_is_only_promoted(tmp_path: Path) -> None:
    values = {"site/all/storage_password": "old-password-1", "site/all/storage_password.next": "next-password-1"}
    task, ctx, secrets = _rotation(tmp_path, values, Login({"next-password-1"}))
    change = task.plan(ctx)  # type: ignore[arg-type]
    assert change is not None and change.summary == ("promote site/all/storage_password.next to "
                                                     "site/all/storage_password")
    change.apply()
    assert secrets.store().values == {"site/all/storage_password": "next-password-1"}
    assert ctx.session.staged == [], "storage had it already: no chpasswd"


def test_a_next_value_storage_does_not_accept_yet_is_set_then_promoted(tmp_path: Path) -> None:
    values = {"site/lab/storage_password": "old-password-1", "site/all/storage_password.next": "next-password-1"}
    login = Login(set())
    task, ctx, secrets = _rotation(tmp_path, values, login)
    change = task.plan(ctx)  # type: ignore[arg-type]
    assert change is not None and change.summary.startswith("set site/all/storage_password.next")
    login.accepts.add("next-password-1")
    change.apply()
    assert ctx.session.staged == [b"dvc:next-password-1\n"]
    assert secrets.store().values["site/all/storage_password"] == "next-password-1"
    assert "site/all/storage_password.next" not in secrets.store().values


def test_rotation_needs_a_password_and_a_server_that_takes_one(tmp_path: Path) -> None:
    task, ctx, _ = _rotation(tmp_path, {}, Login(set()))
    with pytest.raises(ProvisionError, match="provision bootstrap"):
        task.plan(ctx)  # type: ignore[arg-type]
    task, ctx, _ = _rotation(tmp_path, {"site/all/storage_password": "old-password-1"}, Login(set(), ("publickey",)))
    with pytest.raises(ProvisionError, match="offers no password login"):
        task.plan(ctx)  # type: ignore[arg-type]


def test_the_hash_probe_says_only_whether_a_usable_hash_is_set() -> None:
    fact = PasswordHashFact("dvc")
    assert fact.privileged and fact.argv()[-1] == "dvc"
    assert fact.parse(BatchOutput(0, "set\n")) == PasswordHash(usable=True)
    assert fact.parse(BatchOutput(0, "unset\n")) == PasswordHash(usable=False)
    assert fact.parse(BatchOutput(1, "set\n")) == PasswordHash(usable=False), "a failed probe is no hash"


def _storage_password(tmp_path: Path, values: dict[str, str], login: Login, hash_usable: bool,
                      check: bool = False) -> tuple[StoragePassword, Context, Secrets]:
    inventory = _inventory(tmp_path)
    secrets = Secrets(inventory, values)
    task = StoragePassword(inventory.hosts["nas"], secrets, login)  # type: ignore[arg-type]
    return task, Context({task.hash_fact.key: PasswordHash(hash_usable)}, check=check), secrets


def test_bootstrap_generates_a_missing_password_but_not_under_check(tmp_path: Path) -> None:
    task, ctx, secrets = _storage_password(tmp_path, {}, Login(set()), False, check=True)
    change = task.plan(ctx)  # type: ignore[arg-type]
    assert change is not None and change.summary.startswith("generate site/all/storage_password")
    assert secrets.store().values == {}
    task, ctx, secrets = _storage_password(tmp_path, {}, AcceptsAnything(set()), False)
    change = task.plan(ctx)  # type: ignore[arg-type]
    assert change is not None
    change.apply()
    assert list(secrets.store().values) == ["site/all/storage_password"]


def test_bootstrap_knows_the_password_is_set_by_logging_in_with_it(tmp_path: Path) -> None:
    values = {"site/all/storage_password": "stored-password-1"}
    task, ctx, _ = _storage_password(tmp_path, values, Login({"stored-password-1"}), True)
    assert task.plan(ctx) is None  # type: ignore[arg-type]
    assert "fresh login" in ctx.notes[0]
    task, ctx, _ = _storage_password(tmp_path, values, Login({"something-else"}), True)
    change = task.plan(ctx)  # type: ignore[arg-type]
    assert change is not None and "storage refused it" in change.summary
    login = Login(set())
    task, ctx, _ = _storage_password(tmp_path, values, login, False)
    assert task.plan(ctx) is not None and login.tried == [], "no login is tried for an account without one"


def test_bootstrap_under_check_before_sshd_takes_passwords(tmp_path: Path) -> None:
    values = {"site/all/storage_password": "stored-password-1"}
    task, ctx, _ = _storage_password(tmp_path, values, Login(set(), ("publickey",)), True, check=True)
    change = task.plan(ctx)  # type: ignore[arg-type]
    assert change is not None and "not verifiable" in change.summary
    task, ctx, _ = _storage_password(tmp_path, values, Login(set(), ("publickey",)), True)
    with pytest.raises(PasswordLoginDisabled):
        task.plan(ctx)  # type: ignore[arg-type]


def test_password_play_rotates_storage_only_when_the_limit_keeps_it(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path)
    secrets = Secrets(inventory, {})
    clients = inventory.password_clients
    password = PasswordLogin(True, secrets, Login(set()))  # type: ignore[arg-type]
    play = rotate_password_play(inventory, clients, rotate_storage=True, password=password)
    assert [phase.name for phase in play.phases] == ["client account", "storage password", "client password",
                                                     "summary"]
    play = rotate_password_play(inventory, clients, rotate_storage=False, password=password)
    assert [phase.name for phase in play.phases] == ["client account", "client password"]
    assert list(play.phases[1].needs(inventory.hosts["ws1"])) == []


def _provision(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISION_")}
    return subprocess.run([sys.executable, "-m", "provision", *args], capture_output=True, text=True, env=env,
                          check=False)


def test_refusals_come_before_any_host_is_contacted(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, ws1={})
    done = _provision("rotate", "password", "-i", str(inventory.path))
    assert done.returncode == 1 and "no client has auth: password" in done.stderr
    inventory = _inventory(tmp_path, ws2={"access": "read"})
    for command in (["bootstrap"], ["onboard"], ["rotate", "password"]):
        done = _provision(*command, "-i", str(inventory.path))
        assert done.returncode == 1, done.stderr
        assert "ws2 has access: read, but ws1 uses auth: password" in done.stderr
    inventory = _inventory(tmp_path)
    done = _provision("rotate", "password", "-i", str(inventory.path), "--limit", "ws2")
    assert done.returncode == 1 and "--limit keeps neither the storage host nor a client" in done.stderr
