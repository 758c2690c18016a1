"""Choosing the store for an inventory, finding the vault password, looking values up by scope."""

from __future__ import annotations

import getpass
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from provision.secrets.base import ALL_SCOPE, SecretsError, SecretStore, check_name_part, secret_name
from provision.secrets.files import read_private_file
from provision.secrets.index import SecretsIndex
from provision.secrets.keyring_store import (
    VAULT_PASSWORD_ENTRY,
    KeyringStore,
    configured_backend,
    find_os_keyring,
    keyring_service,
    read_vault_password,
)
from provision.secrets.redact import REDACTOR
from provision.secrets.vault import PasswordSource, VaultStore, vault_path

BACKEND_ENV = "PROVISION_SECRETS_BACKEND"
PASSWORD_FILE_ENV = "PROVISION_VAULT_PASSWORD_FILE"
BACKENDS = ("keyring", "vault")
SECRET_ALPHABET = string.ascii_letters + string.digits + "-_"
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 4096


def generate_secret(length: int = 32) -> str:
    """A random URL-safe value of exactly `length` characters from the OS's CSPRNG (6 bits each)."""
    if not MIN_SECRET_LENGTH <= length <= MAX_SECRET_LENGTH:
        raise SecretsError(f"secret length {length} is outside {MIN_SECRET_LENGTH}..{MAX_SECRET_LENGTH}")
    value = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(length))
    REDACTOR.register(value)
    return value


@dataclass(frozen=True)
class StoredSecret:
    """A value and the full name it was found under (a rotation writes back to that name)."""

    name: str
    value: str


def find(store: SecretStore, inventory_name: str, host_name: str, groups_deepest_first: list[str],
         key: str) -> StoredSecret | None:
    """`key` for a host and where it was found: the host's own, else its groups' from deepest to `all`."""
    for scope in dict.fromkeys([host_name, *groups_deepest_first, ALL_SCOPE]):
        name = secret_name(inventory_name, scope, key)
        value = store.get(name)
        if value is not None:
            REDACTOR.register(value)
            return StoredSecret(name, value)
    return None


def lookup(store: SecretStore, inventory_name: str, host_name: str, groups_deepest_first: list[str],
           key: str) -> str | None:
    """The value of `key` for a host, as `find` finds it."""
    found = find(store, inventory_name, host_name, groups_deepest_first, key)
    return found.value if found is not None else None


def read_password_file(path: Path) -> bytes:
    """A password kept in a private file, without its final line break."""
    try:
        data, _ = read_private_file(path, "vault password file", allow_pipe=True)
    except FileNotFoundError:
        raise SecretsError(f"{path}: vault password file ({PASSWORD_FILE_ENV}) does not exist") from None
    except OSError as error:
        raise SecretsError(f"{path}: cannot read the vault password file: {error.strerror}") from None
    password = data.removesuffix(b"\n").removesuffix(b"\r")
    try:
        password.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretsError(f"{path}: the vault password file must hold UTF-8 text") from None
    return password


def _has_terminal() -> bool:
    """Whether a controlling terminal exists for getpass to ask on."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


def prompt_password(vault: Path, service: str, *, confirm: bool, label: str = "Vault password") -> bytes:
    """Ask on the terminal (twice when `confirm`); without one, say how else to supply it."""
    if not _has_terminal():
        raise SecretsError(f"{vault}: the vault password is needed and there is no terminal to ask on; "
                           f"set {PASSWORD_FILE_ENV} to a 0600 file holding it, or keep it in the OS "
                           f"keyring (service {service}, "
                           f"entry {VAULT_PASSWORD_ENTRY})")
    first = getpass.getpass(f"{label} for {vault}: ")
    if confirm and getpass.getpass(f"{label} again: ") != first:
        raise SecretsError(f"{vault}: the two passwords differ; nothing was changed")
    return first.encode("utf-8")


def vault_password_source(service: str, vault: Path, explicit: bytes | None) -> PasswordSource:
    """Where the vault password comes from: the caller, the password file, the OS keyring (under the
    inventory's `service`), a prompt."""

    def source(creating: bool) -> bytes:
        if explicit is not None:
            return explicit
        password_file = os.environ.get(PASSWORD_FILE_ENV)
        if password_file:
            return read_password_file(Path(password_file))
        from_keyring = read_vault_password(service)
        if from_keyring:
            return from_keyring.encode("utf-8")
        return prompt_password(vault, service, confirm=creating)

    return source


def chosen_backend(backend: str | None) -> str | None:
    """'keyring', 'vault', or None for automatic: the argument, else PROVISION_SECRETS_BACKEND."""
    choice = backend or os.environ.get(BACKEND_ENV) or None
    if choice is not None and choice not in BACKENDS:
        raise SecretsError(f"secrets backend {choice!r} (from {'the caller' if backend else BACKEND_ENV}) "
                           f"must be one of: {', '.join(BACKENDS)}")
    return choice


def open_store(inventory_path: Path, inventory_name: str, *, backend: str | None = None,
               vault_password: bytes | None = None) -> SecretStore:
    """The store for an inventory: the OS keyring when a real one is present, else the vault.

    `backend` (or PROVISION_SECRETS_BACKEND) forces one; forcing `keyring` without a real OS keyring
    is an error rather than a silent fallback to something weaker.
    """
    check_name_part(inventory_name, "inventory name")
    choice = chosen_backend(backend)
    index = SecretsIndex(inventory_path)
    service = keyring_service(inventory_name, inventory_path)
    if choice != "vault":
        os_keyring = find_os_keyring()
        if os_keyring is not None:
            return KeyringStore(os_keyring, inventory_name, service, index)
        if choice == "keyring":
            raise SecretsError(f"secrets backend 'keyring' was asked for, but keyring offers no OS keyring "
                               f"(it has {configured_backend()}); start a Secret "
                               f"Service (e.g. gnome-keyring) or set {BACKEND_ENV}=vault")
    vault = vault_path(inventory_path)
    return VaultStore(vault, inventory_name, index, vault_password_source(service, vault, vault_password))
