"""The encrypted vault file `<stem>.vault`: the store used when no real OS keyring is present.

Layout (big-endian): the header, then AES-256-GCM ciphertext with its 16-byte tag. The header is
    magic "PRVSNVLT" | version 1 (1 byte) | log2(scrypt n) (1) | r (4) | p (4) | salt (16) | nonce (12)
and is the GCM associated data, so changing any parameter, the salt or the nonce breaks decryption.
The plaintext is a JSON object mapping full secret names to values. Every write draws a fresh salt and
nonce and replaces the file atomically with mode 0600.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from provision.local_files import atomic_write, exclusive_lock
from provision.secrets.base import SecretsError, check_inventory, check_value
from provision.secrets.files import read_private_file
from provision.secrets.index import SecretsIndex
from provision.secrets.redact import REDACTOR

VAULT_SUFFIX = ".vault"
VAULT_MODE = 0o600
BACKEND_KIND = "vault"

MAGIC = b"PRVSNVLT"
VERSION = 1
HEADER = struct.Struct(">8sBBII16s12s")
TAG_SIZE = 16
SALT_SIZE = 16
NONCE_SIZE = 12
KEY_SIZE = 32

# What every vault is written with. Tests lower _SCRYPT_LOG2N (to the floor below) for speed only.
_SCRYPT_LOG2N = 17
SCRYPT_R = 8
SCRYPT_P = 1

# What a header may ask for before the KDF runs: a damaged or hostile header must not make scrypt
# allocate gigabytes or run for minutes. 128 * r * n bytes is scrypt's memory.
MIN_LOG2N = 14
MAX_LOG2N = 20
MAX_R = 16
MAX_P = 4
MAX_KDF_MEMORY = 256 * 1024 * 1024

PasswordSource = Callable[[bool], bytes]
"""Returns the vault password; its argument says the vault is being created (so confirm it)."""


def vault_path(inventory_path: Path) -> Path:
    """`<stem>.vault` beside the inventory."""
    return inventory_path.with_suffix(VAULT_SUFFIX)


def check_kdf_params(log2n: int, r: int, p: int, path: Path) -> None:
    """Refuse scrypt parameters outside sane bounds before spending memory or time on them."""
    in_bounds = (MIN_LOG2N <= log2n <= MAX_LOG2N and 1 <= r <= MAX_R and 1 <= p <= MAX_P
                 and 128 * r * (1 << log2n) <= MAX_KDF_MEMORY)
    if not in_bounds:
        raise SecretsError(f"{path}: scrypt parameters n=2^{log2n} r={r} p={p} are outside the accepted "
                           f"bounds (n 2^{MIN_LOG2N}..2^{MAX_LOG2N}, r<={MAX_R}, p<={MAX_P}, "
                           f"{MAX_KDF_MEMORY >> 20} MiB); the file is damaged or not written by provision")


def _derive_key(password: bytes, salt: bytes, log2n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=KEY_SIZE, n=1 << log2n, r=r, p=p).derive(password)


def encrypt_vault(secrets: dict[str, str], password: bytes) -> bytes:
    """The bytes of a vault holding `secrets`, with a fresh salt and nonce."""
    salt = os.urandom(SALT_SIZE)
    nonce = os.urandom(NONCE_SIZE)
    header = HEADER.pack(MAGIC, VERSION, _SCRYPT_LOG2N, SCRYPT_R, SCRYPT_P, salt, nonce)
    key = _derive_key(password, salt, _SCRYPT_LOG2N, SCRYPT_R, SCRYPT_P)
    body = json.dumps(secrets, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return header + AESGCM(key).encrypt(nonce, body, header)


def decrypt_vault(data: bytes, password: bytes, path: Path) -> dict[str, str]:
    """The secrets in vault bytes; one-line errors for every way the bytes can be wrong."""
    if len(data) < HEADER.size + TAG_SIZE:
        raise SecretsError(f"{path}: vault is truncated ({len(data)} bytes); restore it from a backup")
    header = data[:HEADER.size]
    magic, version, log2n, r, p, salt, nonce = HEADER.unpack(header)
    if magic != MAGIC:
        raise SecretsError(f"{path}: not a provision vault (bad magic); restore it from a backup")
    if version != VERSION:
        raise SecretsError(f"{path}: vault format version {version} is not supported (this provision "
                           f"reads version {VERSION})")
    check_kdf_params(log2n, r, p, path)
    key = _derive_key(password, salt, log2n, r, p)
    try:
        body = AESGCM(key).decrypt(nonce, data[HEADER.size:], header)
    except InvalidTag:
        raise SecretsError(f"{path}: wrong vault password, or the vault was altered or truncated"
                           ) from None
    try:
        secrets = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        secrets = None
    if not isinstance(secrets, dict) or not all(
            isinstance(name, str) and isinstance(value, str) for name, value in secrets.items()):
        raise SecretsError(f"{path}: vault decrypted but does not hold a name -> value object")
    return secrets


def _identity(file_stat: os.stat_result, password: bytes) -> tuple[int, int, int, int, bytes]:
    """What must match for a cached decryption to stand for the file: the same file and password."""
    return (file_stat.st_dev, file_stat.st_ino, file_stat.st_size, file_stat.st_mtime_ns, password)


class VaultFile:
    """Reads and writes one vault file, decrypting only when the file changed since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[tuple[int, int, int, int, bytes], dict[str, str]] | None = None
        self._cache_lock = threading.Lock()

    def exists(self) -> bool:
        """Whether a vault file is there (a symlink counts, and is refused when read)."""
        return self.path.is_file() or self.path.is_symlink()

    def read(self, password: bytes) -> dict[str, str]:
        """The secrets in the vault; an absent vault holds none."""
        try:
            data, file_stat = read_private_file(self.path, "vault")
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise SecretsError(f"{self.path}: cannot read the vault: {error.strerror}") from None
        identity = _identity(file_stat, password)
        with self._cache_lock:
            if self._cache is not None and self._cache[0] == identity:
                return dict(self._cache[1])
        secrets = decrypt_vault(data, password, self.path)
        with self._cache_lock:
            self._cache = (identity, secrets)
        return dict(secrets)

    def write(self, secrets: dict[str, str], password: bytes) -> None:
        """Replace the vault with `secrets` encrypted under `password` (fresh salt and nonce)."""
        data = encrypt_vault(secrets, password)
        try:
            file_stat = atomic_write(self.path, data, VAULT_MODE)
        except OSError as error:
            raise SecretsError(f"{self.path}: cannot write the vault: {error.strerror}") from None
        with self._cache_lock:
            self._cache = (_identity(file_stat, password), dict(secrets))

    def rekey(self, old_password: bytes, new_password: bytes) -> None:
        """Re-encrypt under a new password; the old file stays whole until the rename."""
        with exclusive_lock(self.path.parent):
            if not self.exists():
                raise SecretsError(f"{self.path}: no vault to rekey")
            secrets = self.read(old_password)
            self.write(secrets, new_password)


class VaultStore:
    """Secrets of one inventory in `<stem>.vault`; the password is asked for only when needed."""

    def __init__(self, path: Path, inventory_name: str, index: SecretsIndex,
                 password_source: PasswordSource) -> None:
        self.vault = VaultFile(path)
        self._inventory_name = inventory_name
        self._index = index
        self._password_source = password_source
        self._password: bytes | None = None
        self._password_lock = threading.Lock()
        self.backend_name = f"vault ({path})"

    def password(self, creating: bool = False) -> bytes:
        """The vault password, asked for once per store even when hosts run in parallel threads."""
        with self._password_lock:
            if self._password is None:
                password = self._password_source(creating)
                if not password:
                    raise SecretsError(f"{self.vault.path}: the vault password must not be empty")
                REDACTOR.register(password.decode("utf-8", "replace"))
                self._password = password
            return self._password

    def _read(self) -> dict[str, str]:
        if not self.vault.exists():
            return {}
        return self.vault.read(self.password())

    def _write(self, secrets: dict[str, str]) -> None:
        self.vault.write(secrets, self.password(creating=not self.vault.exists()))
        self._index.replace(BACKEND_KIND, sorted(secrets))

    def get(self, name: str) -> str | None:
        """The value of `name`, or None."""
        check_inventory(name, self._inventory_name)
        value = self._read().get(name)
        if value is not None:
            REDACTOR.register(value)
        return value

    def set(self, name: str, value: str) -> None:
        """Store `value` as `name` (read, change, write under the directory lock)."""
        check_inventory(name, self._inventory_name)
        check_value(name, value)
        REDACTOR.register(value)
        with exclusive_lock(self.vault.path.parent):
            secrets = self._read()
            secrets[name] = value
            self._write(secrets)

    def delete(self, name: str) -> bool:
        """Remove `name`; False when it was not stored (the file is then left as it was)."""
        check_inventory(name, self._inventory_name)
        with exclusive_lock(self.vault.path.parent):
            secrets = self._read()
            if name not in secrets:
                return False
            del secrets[name]
            self._write(secrets)
        return True

    def names(self) -> list[str]:
        """Names of this inventory held in the vault."""
        prefix = f"{self._inventory_name}/"
        return sorted(name for name in self._read() if name.startswith(prefix))

    def rekey(self, new_password: bytes) -> None:
        """Change the vault password atomically."""
        if not new_password:
            raise SecretsError(f"{self.vault.path}: the new vault password must not be empty")
        self.vault.rekey(self.password(), new_password)
        REDACTOR.register(new_password.decode("utf-8", "replace"))
        with self._password_lock:
            self._password = new_password
