"""The keyring store against a real Secret Service (gnome-keyring on a private D-Bus session bus)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import keyring
import pytest
import secretstorage
from keyring.backends import SecretService, fail
from keyring.backends.chainer import ChainerBackend
from keyring.testing.backend import BackendBasicTests
from keyrings.alt.file import PlaintextKeyring

from provision.inventory import load_inventory
from provision.secrets import REDACTOR, SecretsError, lookup, open_store
from provision.secrets.index import SecretsIndex, index_path
from provision.secrets.inventory import SecretLookupForInventory
from provision.secrets.keyring_store import KeyringStore, find_os_keyring, keyring_service
from provision.secrets.vault import VaultStore, vault_path
from tests.keyring_session import SecretServiceSession, secret_service_session


@pytest.fixture(scope="module")
def secret_service() -> Iterator[SecretServiceSession]:
    """One gnome-keyring for the module; keyring is pointed at its SecretService backend."""
    with pytest.MonkeyPatch.context() as patch, secret_service_session(patch) as session:
        previous = keyring.get_keyring()
        keyring.set_keyring(SecretService.Keyring())
        try:
            yield session
        finally:
            keyring.set_keyring(previous)


@pytest.fixture
def inventory(tmp_path: Path, secret_service: SecretServiceSession) -> Iterator[Path]:
    """An inventory path; every provision entry in the keyring is removed after the test."""
    path = tmp_path / "site.yml"
    path.write_text("all:\n  vars: {project: demo}\n  hosts: {h1: {}}\n"
                    "  children: {storage: {hosts: {st1: {}}}}\n")
    yield path
    connection = secretstorage.dbus_init()
    with closing(connection):
        collection = secretstorage.get_default_collection(connection)
        for item in collection.get_all_items():
            if item.get_attributes().get("service", "").startswith("provision/"):
                item.delete()


def _items(service: str) -> list[dict[str, str]]:
    """What the Secret Service itself holds for `service`, read past keyring."""
    connection = secretstorage.dbus_init()
    with closing(connection):
        collection = secretstorage.get_default_collection(connection)
        return [item.get_attributes() for item in collection.search_items({"service": service})]


@pytest.mark.usefixtures("secret_service")
class TestSecretServiceContract(BackendBasicTests):
    """keyring's own backend contract, run against the same daemon the store uses."""

    def init_keyring(self) -> SecretService.Keyring:
        return SecretService.Keyring()


def test_store_is_the_os_keyring_and_round_trips(inventory: Path) -> None:
    store = open_store(inventory, "site")
    assert isinstance(store, KeyringStore)
    assert store.backend_name == "keyring (SecretService)"
    store.set("site/all/storage_password", "pw-round-trip-1")
    assert store.get("site/all/storage_password") == "pw-round-trip-1"
    assert {"service": keyring_service("site", inventory), "username": "all/storage_password"}.items() <= \
        _items(keyring_service("site", inventory))[0].items()
    assert store.delete("site/all/storage_password") is True
    assert store.get("site/all/storage_password") is None
    assert store.delete("site/all/storage_password") is False
    assert not vault_path(inventory).exists()


def test_index_lists_names_without_values(inventory: Path) -> None:
    store = open_store(inventory, "site")
    store.set("site/storage/storage_password", "index-value-one")
    store.set("site/h1/become_password", "index-value-two")
    assert store.names() == ["site/h1/become_password", "site/storage/storage_password"]
    index_text = index_path(inventory).read_text()
    assert "index-value" not in index_text
    assert json.loads(index_text)["secrets"] == [
        {"name": "site/h1/become_password", "backend": "keyring"},
        {"name": "site/storage/storage_password", "backend": "keyring"},
    ]
    store.delete("site/h1/become_password")
    assert store.names() == ["site/storage/storage_password"]


def test_values_are_registered_for_masking(inventory: Path) -> None:
    store = open_store(inventory, "site")
    store.set("site/all/become_password", "masked-on-write")
    assert REDACTOR.mask("x masked-on-write y") == "x ******** y"
    SecretService.Keyring().set_password(keyring_service("site", inventory), "h1/become_password", "written-elsewhere")
    assert store.get("site/h1/become_password") == "written-elsewhere"
    assert REDACTOR.mask("written-elsewhere") == "********"


def test_lookup_prefers_host_then_deepest_group_then_all(inventory: Path) -> None:
    store = open_store(inventory, "site")
    groups = ["gpu", "clients"]
    store.set("site/all/storage_password", "from-all")
    assert lookup(store, "site", "h1", groups, "storage_password") == "from-all"
    store.set("site/clients/storage_password", "from-clients")
    assert lookup(store, "site", "h1", groups, "storage_password") == "from-clients"
    store.set("site/gpu/storage_password", "from-gpu")
    assert lookup(store, "site", "h1", groups, "storage_password") == "from-gpu"
    store.set("site/h1/storage_password", "from-host")
    assert lookup(store, "site", "h1", groups, "storage_password") == "from-host"
    assert lookup(store, "site", "h2", groups, "storage_password") == "from-gpu"
    assert lookup(store, "site", "h1", groups, "become_password") is None


def test_inventories_do_not_share_entries(inventory: Path) -> None:
    first = open_store(inventory, "site")
    other = open_store(inventory.with_name("other.yml"), "other")
    first.set("site/all/storage_password", "only-in-site")
    assert other.get("other/all/storage_password") is None
    with pytest.raises(SecretsError, match="belongs to inventory 'site'"):
        other.get("site/all/storage_password")


def test_same_named_inventories_in_two_directories_do_not_share_entries(
        tmp_path: Path, secret_service: SecretServiceSession) -> None:
    """prod/site.yml and staging/site.yml are both inventory `site`: staging never gets prod's password."""
    inventories = {}
    for stage in ("prod", "staging"):
        (tmp_path / stage).mkdir()
        inventories[stage] = tmp_path / stage / "site.yml"
        inventories[stage].write_text("all:\n  vars: {project: demo}\n  children: {storage: {hosts: {st1: {}}}}\n")
    stored = _provision(secret_service, inventories["prod"], "set", "become_password", stdin="prod-only-sudo-pw\n")
    assert stored.returncode == 0, stored.stderr
    loaded = load_inventory(inventories["staging"])
    assert loaded.name == "site"
    assert SecretLookupForInventory(loaded)(loaded.hosts["st1"], "become_password") is None
    missing = _provision(secret_service, inventories["staging"], "get", "--reveal", "become_password")
    assert missing.returncode == 1 and "prod-only-sudo-pw" not in missing.stdout + missing.stderr
    prod = load_inventory(inventories["prod"])
    assert SecretLookupForInventory(prod)(prod.hosts["st1"], "become_password") == "prod-only-sudo-pw"
    services = {stage: keyring_service("site", path) for stage, path in inventories.items()}
    assert services["prod"] != services["staging"]
    assert all(service.startswith("provision/site/") for service in services.values())
    listed = _provision(secret_service, inventories["prod"], "list").stdout
    assert f"keyring service: {services['prod']}" in listed
    assert [item["username"] for item in _items(services["prod"])] == ["all/become_password"]
    assert _items(services["staging"]) == []


def test_entries_under_the_old_shared_service_are_never_read_silently(inventory: Path) -> None:
    """A value an older version kept under `provision/site` is not used; the error says how to move it."""
    SecretService.Keyring().set_password("provision/site", "all/storage_password", "old-shared-value")
    SecretsIndex(inventory).record("site/all/storage_password", "keyring")
    store = open_store(inventory, "site")
    with pytest.raises(SecretsError) as raised:
        store.get("site/all/storage_password")
    message = str(raised.value)
    assert "old-shared-value" not in message and "\n" not in message
    assert "keyring get provision/site all/storage_password | provision secrets set" in message
    assert store.get("site/all/become_password") is None


def test_chainer_is_looked_into_for_the_real_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chainer over a plaintext keyring and the Secret Service: only the Secret Service is used."""
    real = SecretService.Keyring()
    monkeypatch.setattr(keyring.backend, "get_all_keyring", lambda: [PlaintextKeyring(), real])
    keyring.set_keyring(ChainerBackend())
    try:
        assert find_os_keyring() is real
    finally:
        keyring.set_keyring(SecretService.Keyring())


def test_forced_vault_takes_its_password_from_the_keyring(inventory: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from provision.secrets import vault

    monkeypatch.setattr(vault, "_SCRYPT_LOG2N", vault.MIN_LOG2N)
    monkeypatch.delenv("PROVISION_VAULT_PASSWORD_FILE", raising=False)
    SecretService.Keyring().set_password(keyring_service("site", inventory), "vault-password", "vault-pw-in-keyring")
    store = open_store(inventory, "site", backend="vault")
    assert isinstance(store, VaultStore)
    store.set("site/all/storage_password", "kept-in-vault")
    reopened = open_store(inventory, "site", backend="vault", vault_password=b"vault-pw-in-keyring")
    assert reopened.get("site/all/storage_password") == "kept-in-vault"
    in_keyring = {item.get("username") for item in _items(keyring_service("site", inventory))}
    assert "site/all/storage_password" not in in_keyring


@pytest.mark.usefixtures("secret_service")
def test_locked_keyring_is_a_one_line_error(tmp_path: Path) -> None:
    """Locks the login keyring of a separate daemon: a locked keyring cannot be unlocked without a
    prompter, and the module's daemon must stay usable."""
    inventory = tmp_path / "locked.yml"
    with pytest.MonkeyPatch.context() as patch, secret_service_session(patch):
        store = open_store(inventory, "site")
        store.set("site/all/storage_password", "before-lock")
        connection = secretstorage.dbus_init()
        with closing(connection):
            secretstorage.get_default_collection(connection).lock()
        with pytest.raises(SecretsError) as raised:
            store.get("site/all/storage_password")
    message = str(raised.value)
    assert "\n" not in message and "before-lock" not in message
    assert message.startswith("keyring (SecretService) could not read site/all/storage_password")


@pytest.mark.usefixtures("secret_service")
def test_vanished_secret_service_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch, secret_service_session(patch) as session:
        store = open_store(tmp_path / "gone.yml", "site")
        store.set("site/all/storage_password", "before-the-daemon-stopped")
        session.keyring_daemon.terminate()
        session.keyring_daemon.wait(timeout=10)
        for action in (lambda: store.get("site/all/storage_password"),
                       lambda: store.set("site/all/storage_password", "after-the-daemon-stopped"),
                       lambda: store.delete("site/all/storage_password")):
            with pytest.raises(SecretsError) as raised:
                action()
            message = str(raised.value)
            assert message.startswith("keyring (SecretService) could not ")
            assert "\n" not in message and "daemon-stopped" not in message


def _run_python(code: str, session: SecretServiceSession, **env: str) -> str:
    """Run code in a fresh interpreter, so keyring detects its backend from scratch."""
    child_env = {**session.env, **env}
    child_env.pop("PYTHON_KEYRING_BACKEND", None)
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=child_env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_fresh_process_detects_secret_service_and_sees_stored_values(
        inventory: Path, secret_service: SecretServiceSession) -> None:
    code = f"""
        from pathlib import Path
        from provision.secrets import open_store
        store = open_store(Path({str(inventory)!r}), "site")
        print(store.backend_name)
        print(store.get("site/all/storage_password"))
        store.set("site/all/become_password", "set-by-child")
    """
    open_store(inventory, "site").set("site/all/storage_password", "set-by-parent")
    output = _run_python(code, secret_service).splitlines()
    assert output == ["keyring (SecretService)", "set-by-parent"]
    assert open_store(inventory, "site").get("site/all/become_password") == "set-by-child"


def test_fresh_process_without_a_bus_falls_back_to_the_vault(
        inventory: Path, secret_service: SecretServiceSession, tmp_path: Path) -> None:
    code = f"""
        from pathlib import Path
        from provision.secrets import open_store
        print(open_store(Path({str(inventory)!r}), "site").backend_name)
    """
    output = _run_python(code, secret_service, DBUS_SESSION_BUS_ADDRESS=f"unix:path={tmp_path}/no-bus",
                         XDG_RUNTIME_DIR=str(tmp_path))
    assert output.strip() == f"vault ({vault_path(inventory)})"


def _provision(session: SecretServiceSession, inventory: Path, *args: str, stdin: str = "",
               **env: str) -> subprocess.CompletedProcess[str]:
    child_env = {key: value for key, value in session.env.items()
                 if not key.startswith(("PROVISION_", "PYTHON_KEYRING"))}
    child_env.update(PROVISION_INVENTORY=str(inventory), **env)
    return subprocess.run([sys.executable, "-m", "provision", "secrets", *args], input=stdin, env=child_env,
                          capture_output=True, text=True, timeout=120, start_new_session=True, check=False)


def test_cli_uses_the_keyring(inventory: Path, secret_service: SecretServiceSession) -> None:
    stored = _provision(secret_service, inventory, "set", "--scope", "h1", "become_password",
                        stdin="cli-keyring-value\n")
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.strip() == "stored site/h1/become_password in keyring (SecretService)"
    service = keyring_service("site", inventory)
    assert SecretService.Keyring().get_password(service, "h1/become_password") == "cli-keyring-value"
    assert _provision(secret_service, inventory, "get", "--reveal", "h1/become_password").stdout == \
        "cli-keyring-value\n"
    listed = _provision(secret_service, inventory, "list").stdout
    assert listed.splitlines() == ["site/h1/become_password  keyring", f"keyring service: {service}"]
    refused = _provision(secret_service, inventory, "rekey")
    assert refused.returncode == 1
    assert "this inventory uses keyring (SecretService)" in refused.stderr
    assert _provision(secret_service, inventory, "delete", "h1/become_password").returncode == 0
    assert SecretService.Keyring().get_password(keyring_service("site", inventory), "h1/become_password") is None


def test_cli_rekey_updates_the_vault_password_kept_in_the_keyring(
        inventory: Path, secret_service: SecretServiceSession, tmp_path: Path) -> None:
    backend = SecretService.Keyring()
    backend.set_password(keyring_service("site", inventory), "vault-password", "old vault password")
    assert _provision(secret_service, inventory, "set", "storage_password", stdin="in-the-vault",
                      PROVISION_SECRETS_BACKEND="vault").returncode == 0
    new_file = tmp_path / "new.pass"
    new_file.touch(mode=0o600)
    new_file.write_text("new vault password\n")
    rekeyed = _provision(secret_service, inventory, "rekey", "--new-password-file", str(new_file),
                         PROVISION_SECRETS_BACKEND="vault")
    assert rekeyed.returncode == 0, rekeyed.stderr
    assert "updated the vault password kept in the OS keyring" in rekeyed.stdout
    assert backend.get_password(keyring_service("site", inventory), "vault-password") == "new vault password"
    assert _provision(secret_service, inventory, "get", "--reveal", "storage_password",
                      PROVISION_SECRETS_BACKEND="vault").stdout == "in-the-vault\n"


def test_fail_backend_is_not_a_keyring(inventory: Path) -> None:
    keyring.set_keyring(fail.Keyring())
    try:
        assert isinstance(open_store(inventory, "site"), VaultStore)
    finally:
        keyring.set_keyring(SecretService.Keyring())


def test_daemons_run_in_the_private_session(secret_service: SecretServiceSession) -> None:
    assert os.environ["DBUS_SESSION_BUS_ADDRESS"] == secret_service.bus_address
    assert os.environ["HOME"] == str(secret_service.home)
    assert (secret_service.home / ".local" / "share" / "keyrings").is_dir()
