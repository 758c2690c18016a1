"""The OS keyring as a secrets store, used only when a real OS backend holds the values.

keyring falls back to backends that do not protect anything (`fail`, `null`, the plaintext and weak-KDF
ones from keyrings.alt) or to a chainer over them; storing a password there would be worse than the
vault, so only the backends below count.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import keyring
from keyring.backend import KeyringBackend
from keyring.backends.chainer import ChainerBackend
from keyring.errors import PasswordDeleteError

from provision.secrets.base import SecretsError, check_inventory, check_value
from provision.secrets.index import SecretsIndex
from provision.secrets.redact import REDACTOR

BACKEND_KIND = "keyring"
VAULT_PASSWORD_ENTRY = "vault-password"
SERVICE_DIGEST_LENGTH = 12

# Modules of keyring's own backends that keep secrets in the OS's protected store.
_REAL_BACKENDS = {
    "keyring.backends.SecretService": "SecretService",
    "keyring.backends.libsecret": "libsecret",
    "keyring.backends.macOS": "macOS Keychain",
    "keyring.backends.Windows": "Windows Credential Locker",
    "keyring.backends.kwallet": "KWallet",
}


def backend_label(backend: KeyringBackend) -> str | None:
    """A short name for a real OS backend, None for anything else."""
    return _REAL_BACKENDS.get(type(backend).__module__)


def describe_backend(backend: KeyringBackend) -> str:
    """Module and class of a backend, for messages saying why it was refused."""
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def configured_backend() -> str:
    """What keyring would use, for a message saying why it was not good enough."""
    return describe_backend(keyring.get_keyring())


def find_os_keyring() -> KeyringBackend | None:
    """The keyring backend to use, or None when keyring has no real OS backend.

    A chainer is looked into: its highest-priority real member is used directly, so a value can never
    land in a plaintext member chained behind it.
    """
    configured = keyring.get_keyring()
    candidates = list(configured.backends) if isinstance(configured, ChainerBackend) else [configured]
    for candidate in candidates:
        if backend_label(candidate) is not None:
            return candidate
    return None


def keyring_service(inventory_name: str, inventory_path: Path) -> str:
    """The keyring service holding one inventory's entries: `provision/<name>/<path digest>`.

    The digest of the inventory file's absolute path keeps two inventories of the same name (say
    prod/site.yml and staging/site.yml) apart, so neither can receive the other's passwords.
    """
    digest = hashlib.sha256(str(inventory_path.resolve()).encode()).hexdigest()[:SERVICE_DIGEST_LENGTH]
    return f"provision/{inventory_name}/{digest}"


def legacy_keyring_service(inventory_name: str) -> str:
    """Where entries were kept before the service named the inventory's path: shared by same names."""
    return f"provision/{inventory_name}"


@contextlib.contextmanager
def _talking_to(backend: KeyringBackend, action: str) -> Iterator[None]:
    """Turn any failure of the backend into one line.

    Deliberately broad: backends raise their own libraries' exceptions (secretstorage, jeepney,
    the macOS and Windows bindings), not only KeyringError, and none of them may reach the user as a
    traceback. Only the exception's type goes into the message; its text and chain are dropped
    because a backend's message is not known to be free of the value being stored.
    """
    try:
        yield
    except Exception as error:
        raise SecretsError(f"keyring ({backend_label(backend)}) could not {action}: "
                           f"{type(error).__name__}; unlock the keyring or set "
                           "PROVISION_SECRETS_BACKEND=vault") from None


class KeyringStore:
    """Entries `<scope>/<key>` under the inventory's service (`keyring_service`); names kept in the index."""

    def __init__(self, backend: KeyringBackend, inventory_name: str, service: str, index: SecretsIndex) -> None:
        self._backend = backend
        self._inventory_name = inventory_name
        self.service = service
        self._index = index
        self.backend_name = f"keyring ({backend_label(backend) or describe_backend(backend)})"

    def _username(self, name: str) -> str:
        scope, key = check_inventory(name, self._inventory_name)
        return f"{scope}/{key}"

    def get(self, name: str) -> str | None:
        """The value of `name`, or None."""
        username = self._username(name)
        with _talking_to(self._backend, f"read {name}"):
            value = self._backend.get_password(self.service, username)
        if value is not None:
            REDACTOR.register(value)
        elif name in self._index.names(BACKEND_KIND):
            raise SecretsError(self._missing_message(name, username))
        return value

    def _missing_message(self, name: str, username: str) -> str:
        """Why a name the index records is not in the keyring, and how to bring the value over."""
        legacy = legacy_keyring_service(self._inventory_name)
        return (f"{name} is recorded in {self._index.path.name} but keyring service {self.service} does "
                f"not hold it: values stored by older versions are under {legacy}, shared by every "
                f"inventory named {self._inventory_name!r} (and a moved inventory has a new service). "
                f"If that value is this inventory's, move it: `keyring get {legacy} {username} | "
                f"provision secrets set -i INVENTORY {username}`, then `keyring del {legacy} {username}`; "
                f"else `provision secrets delete -i INVENTORY {username}`")

    def set(self, name: str, value: str) -> None:
        """Store `value` as `name` and record the name in the index."""
        username = self._username(name)
        check_value(name, value)
        REDACTOR.register(value)
        with _talking_to(self._backend, f"store {name}"):
            self._backend.set_password(self.service, username, value)
        self._index.record(name, BACKEND_KIND)

    def delete(self, name: str) -> bool:
        """Remove `name`; False when it was not stored."""
        username = self._username(name)
        with _talking_to(self._backend, f"delete {name}"):
            try:
                self._backend.delete_password(self.service, username)
                deleted = True
            except PasswordDeleteError:
                deleted = False
        self._index.forget(name, BACKEND_KIND)
        return deleted

    def names(self) -> list[str]:
        """Names the index records for the keyring (the keyring API cannot enumerate)."""
        return self._index.names(BACKEND_KIND)


def read_vault_password(service: str) -> str | None:
    """The vault password kept under the inventory's service in a real OS keyring, if there is one."""
    backend = find_os_keyring()
    if backend is None:
        return None
    with _talking_to(backend, "read the vault password"):
        return backend.get_password(service, VAULT_PASSWORD_ENTRY)


def store_vault_password(service: str, password: str) -> bool:
    """Keep the vault password in the OS keyring; False when there is no real backend."""
    backend = find_os_keyring()
    if backend is None:
        return False
    with _talking_to(backend, "store the vault password"):
        backend.set_password(service, VAULT_PASSWORD_ENTRY, password)
    return True
