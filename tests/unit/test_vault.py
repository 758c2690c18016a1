"""The encrypted vault: format, integrity, permissions, rekey, and that failures leave the file alone."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.secrets import REDACTOR, SecretsError, files, vault
from provision.secrets.index import SecretsIndex, index_path
from provision.secrets.vault import HEADER, MAGIC, VaultStore, decrypt_vault, encrypt_vault

PASSWORD = b"correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests write with the smallest accepted n; production writes n=2^17 (checked below)."""
    monkeypatch.setattr(vault, "_SCRYPT_LOG2N", vault.MIN_LOG2N)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "site.yml"
    path.write_text("all: {vars: {project: demo}, hosts: {h1: {}}}\n")
    return path


def _store(inventory: Path, password: bytes = PASSWORD) -> VaultStore:
    return VaultStore(vault.vault_path(inventory), "site", SecretsIndex(inventory), lambda creating: password)


@pytest.fixture
def filled(inventory: Path) -> Iterator[Path]:
    """A vault holding two secrets; yields its path."""
    store = _store(inventory)
    store.set("site/all/storage_password", "storage-secret-value")
    store.set("site/h1/become_password", "become-secret-value")
    yield vault.vault_path(inventory)


def _fields(data: bytes) -> tuple:
    return HEADER.unpack(data[:HEADER.size])


def _assert_one_line_without_secrets(error: SecretsError) -> None:
    message = str(error)
    assert "\n" not in message
    for secret in ("storage-secret-value", "become-secret-value", PASSWORD.decode()):
        assert secret not in message


def test_production_writes_scrypt_n_2_17_r_8_p_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    assert vault._SCRYPT_LOG2N == 17
    data = encrypt_vault({"site/all/k": "v"}, PASSWORD)
    magic, version, log2n, r, p, _, _ = _fields(data)
    assert (magic, version, log2n, r, p) == (MAGIC, 1, 17, 8, 1)
    assert decrypt_vault(data, PASSWORD, tmp_path / "v") == {"site/all/k": "v"}


def test_round_trip_through_a_new_store(filled: Path, inventory: Path) -> None:
    reopened = _store(inventory)
    assert reopened.get("site/all/storage_password") == "storage-secret-value"
    assert reopened.get("site/h1/become_password") == "become-secret-value"
    assert reopened.get("site/h1/storage_password") is None
    assert reopened.names() == ["site/all/storage_password", "site/h1/become_password"]
    assert reopened.delete("site/h1/become_password") is True
    assert reopened.delete("site/h1/become_password") is False
    assert _store(inventory).names() == ["site/all/storage_password"]
    assert reopened.backend_name == f"vault ({filled})"


def test_file_is_0600_whatever_the_umask(inventory: Path) -> None:
    old_umask = os.umask(0)
    try:
        _store(inventory).set("site/all/k", "value-under-umask-0")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(vault.vault_path(inventory).stat().st_mode) == 0o600


def test_plaintext_is_not_in_the_file_and_header_is_bound(filled: Path) -> None:
    data = filled.read_bytes()
    assert b"storage-secret-value" not in data and b"site/all" not in data
    assert data.startswith(MAGIC)


def test_each_write_draws_fresh_salt_and_nonce(inventory: Path) -> None:
    store = _store(inventory)
    seen = set()
    for _ in range(3):
        store.set("site/all/k", "same-value")
        data = vault.vault_path(inventory).read_bytes()
        _, _, _, _, _, salt, nonce = _fields(data)
        seen.add((salt, nonce, data[HEADER.size:]))
    assert len({salt for salt, _, _ in seen}) == 3
    assert len({nonce for _, nonce, _ in seen}) == 3
    assert len({body for _, _, body in seen}) == 3


def test_wrong_password_is_refused_and_file_untouched(filled: Path, inventory: Path) -> None:
    before = filled.read_bytes()
    wrong = _store(inventory, b"not the password")
    with pytest.raises(SecretsError, match="wrong vault password") as raised:
        wrong.get("site/all/storage_password")
    _assert_one_line_without_secrets(raised.value)
    with pytest.raises(SecretsError, match="wrong vault password"):
        wrong.set("site/all/storage_password", "overwrite-attempt")
    with pytest.raises(SecretsError, match="wrong vault password"):
        wrong.delete("site/all/storage_password")
    assert filled.read_bytes() == before


@pytest.mark.parametrize("field", ["log2n", "r", "salt", "nonce"])
def test_tampered_header_is_refused(filled: Path, inventory: Path, field: str) -> None:
    data = bytearray(filled.read_bytes())
    magic, version, log2n, r, p, salt, nonce = _fields(bytes(data))
    changed = {"log2n": (log2n + 1, r, salt, nonce), "r": (log2n, r - 1, salt, nonce),
               "salt": (log2n, r, bytes([salt[0] ^ 1]) + salt[1:], nonce),
               "nonce": (log2n, r, salt, bytes([nonce[0] ^ 1]) + nonce[1:])}[field]
    new_log2n, new_r, new_salt, new_nonce = changed
    data[:HEADER.size] = HEADER.pack(magic, version, new_log2n, new_r, p, new_salt, new_nonce)
    filled.write_bytes(bytes(data))
    with pytest.raises(SecretsError, match="wrong vault password, or the vault was altered") as raised:
        _store(inventory).get("site/all/storage_password")
    _assert_one_line_without_secrets(raised.value)
    assert filled.read_bytes() == bytes(data)


def test_bad_magic_and_unknown_version_are_refused(filled: Path, inventory: Path) -> None:
    original = filled.read_bytes()
    filled.write_bytes(b"XXXXXXXX" + original[8:])
    with pytest.raises(SecretsError, match="not a provision vault"):
        _store(inventory).get("site/all/storage_password")
    filled.write_bytes(original[:8] + bytes([2]) + original[9:])
    with pytest.raises(SecretsError, match="version 2 is not supported"):
        _store(inventory).get("site/all/storage_password")


@pytest.mark.parametrize("offset", [HEADER.size, HEADER.size + 5, -1])
def test_tampered_body_or_tag_is_refused(filled: Path, inventory: Path, offset: int) -> None:
    data = bytearray(filled.read_bytes())
    data[offset] ^= 0x01
    filled.write_bytes(bytes(data))
    store = _store(inventory)
    with pytest.raises(SecretsError, match="altered") as raised:
        store.get("site/all/storage_password")
    _assert_one_line_without_secrets(raised.value)
    with pytest.raises(SecretsError, match="altered"):
        store.set("site/all/storage_password", "must-not-be-written")
    assert filled.read_bytes() == bytes(data)


@pytest.mark.parametrize("keep", [0, 10, HEADER.size + 15, -1])
def test_truncated_vault_is_refused(filled: Path, inventory: Path, keep: int) -> None:
    data = filled.read_bytes()
    truncated = data[:keep]
    filled.write_bytes(truncated)
    with pytest.raises(SecretsError, match="truncated") as raised:
        _store(inventory).get("site/all/storage_password")
    _assert_one_line_without_secrets(raised.value)
    assert filled.read_bytes() == truncated


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o602, 0o610])
def test_loose_mode_is_refused_and_file_untouched(filled: Path, inventory: Path, mode: int) -> None:
    before = filled.read_bytes()
    filled.chmod(mode)
    store = _store(inventory)
    with pytest.raises(SecretsError, match=f"mode {mode:04o}.*chmod 600") as raised:
        store.get("site/all/storage_password")
    _assert_one_line_without_secrets(raised.value)
    with pytest.raises(SecretsError, match="chmod 600"):
        store.set("site/all/storage_password", "must-not-be-written")
    assert filled.read_bytes() == before
    assert stat.S_IMODE(filled.stat().st_mode) == mode


def test_symlinked_vault_is_not_followed(filled: Path, inventory: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.vault"
    filled.rename(elsewhere)
    filled.symlink_to(elsewhere)
    with pytest.raises(SecretsError, match="cannot read the vault"):
        _store(inventory).get("site/all/storage_password")


@pytest.mark.parametrize(("log2n", "r", "p"), [
    (40, 8, 1),          # n = 2^40: terabytes of memory
    (255, 8, 1),
    (17, 2**31, 1),      # r absurd
    (17, 8, 2**20),      # p absurd: hours of work
    (20, 16, 1),         # each in range, together 2 GiB
    (1, 8, 1),           # too weak to have been written by provision
    (17, 0, 1),
    (17, 8, 0),
])
def test_absurd_scrypt_parameters_are_refused_before_deriving(
        filled: Path, inventory: Path, monkeypatch: pytest.MonkeyPatch, log2n: int, r: int, p: int) -> None:
    data = bytearray(filled.read_bytes())
    magic, version, _, _, _, salt, nonce = _fields(bytes(data))
    data[:HEADER.size] = HEADER.pack(magic, version, log2n, r, p, salt, nonce)
    filled.write_bytes(bytes(data))

    def no_scrypt(**kwargs: object) -> None:
        raise AssertionError(f"scrypt was attempted with {kwargs}")

    monkeypatch.setattr(vault, "Scrypt", no_scrypt)
    with pytest.raises(SecretsError, match="outside the accepted bounds") as raised:
        _store(inventory).get("site/all/storage_password")
    _assert_one_line_without_secrets(raised.value)
    assert filled.read_bytes() == bytes(data)


def test_body_that_is_not_a_name_value_object_is_refused(inventory: Path) -> None:
    path = vault.vault_path(inventory)
    header = encrypt_vault({}, PASSWORD)[:HEADER.size]
    _, _, log2n, r, p, salt, nonce = _fields(header)
    key = vault._derive_key(PASSWORD, salt, log2n, r, p)
    body = vault.AESGCM(key).encrypt(nonce, json.dumps(["site/all/k"]).encode(), header)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, header + body)
    os.close(fd)
    with pytest.raises(SecretsError, match="does not hold a name -> value object"):
        _store(inventory).get("site/all/k")


def test_rekey_changes_password_and_keeps_secrets(filled: Path, inventory: Path) -> None:
    old_salt = _fields(filled.read_bytes())[5]
    store = _store(inventory)
    store.rekey(b"the new password")
    assert _fields(filled.read_bytes())[5] != old_salt
    assert stat.S_IMODE(filled.stat().st_mode) == 0o600
    with pytest.raises(SecretsError, match="wrong vault password"):
        _store(inventory).get("site/all/storage_password")
    fresh = _store(inventory, b"the new password")
    assert fresh.get("site/all/storage_password") == "storage-secret-value"
    assert fresh.get("site/h1/become_password") == "become-secret-value"
    assert store.get("site/all/storage_password") == "storage-secret-value"


def test_rekey_replaces_by_rename_leaving_the_old_file_whole(filled: Path, inventory: Path) -> None:
    old_inode = filled.stat().st_ino
    holder = os.open(filled, os.O_RDONLY)
    try:
        old_bytes = filled.read_bytes()
        _store(inventory).rekey(b"the new password")
        assert filled.stat().st_ino != old_inode
        assert os.pread(holder, len(old_bytes) + 1, 0) == old_bytes
    finally:
        os.close(holder)


def test_rekey_interrupted_before_rename_leaves_old_vault(filled: Path, inventory: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    before = filled.read_bytes()
    real_replace = os.replace

    def failing_replace(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", failing_replace)
    with pytest.raises(SecretsError, match="cannot write the vault: No space left on device"):
        _store(inventory).rekey(b"the new password")
    monkeypatch.setattr(files.os, "replace", real_replace)
    assert filled.read_bytes() == before
    assert sorted(p.name for p in filled.parent.iterdir()) == ["site.secrets-index", "site.vault", "site.yml"]
    assert _store(inventory).get("site/all/storage_password") == "storage-secret-value"


def test_rekey_with_wrong_current_password_changes_nothing(filled: Path, inventory: Path) -> None:
    before = filled.read_bytes()
    with pytest.raises(SecretsError, match="wrong vault password"):
        _store(inventory, b"guess").rekey(b"the new password")
    assert filled.read_bytes() == before


def test_rekey_without_vault_or_with_empty_password_is_refused(inventory: Path, filled: Path) -> None:
    with pytest.raises(SecretsError, match="must not be empty"):
        _store(inventory).rekey(b"")
    filled.unlink()
    with pytest.raises(SecretsError, match="no vault to rekey"):
        _store(inventory).rekey(b"the new password")


def test_empty_password_is_refused(inventory: Path) -> None:
    with pytest.raises(SecretsError, match="must not be empty"):
        _store(inventory, b"").set("site/all/k", "value-1234")
    assert not vault.vault_path(inventory).exists()


def test_reading_an_absent_vault_needs_no_password(inventory: Path) -> None:
    def no_password(creating: bool) -> bytes:
        raise AssertionError("password asked for")

    store = VaultStore(vault.vault_path(inventory), "site", SecretsIndex(inventory), no_password)
    assert store.get("site/all/storage_password") is None
    assert store.names() == []
    assert store.delete("site/all/storage_password") is False


def test_creating_asks_for_a_confirmed_password_once(inventory: Path) -> None:
    asked: list[bool] = []

    def source(creating: bool) -> bytes:
        asked.append(creating)
        return PASSWORD

    store = VaultStore(vault.vault_path(inventory), "site", SecretsIndex(inventory), source)
    store.set("site/all/a", "first-value")
    store.set("site/all/b", "second-value")
    assert asked == [True]


def test_index_follows_the_vault_without_values(filled: Path, inventory: Path) -> None:
    text = index_path(inventory).read_text()
    assert "secret-value" not in text
    assert SecretsIndex(inventory).entries() == [("site/all/storage_password", "vault"),
                                                 ("site/h1/become_password", "vault")]
    _store(inventory).delete("site/h1/become_password")
    assert SecretsIndex(inventory).names("vault") == ["site/all/storage_password"]


def test_two_stores_see_each_others_writes(filled: Path, inventory: Path) -> None:
    first, second = _store(inventory), _store(inventory)
    assert first.get("site/all/storage_password") == "storage-secret-value"
    second.set("site/all/storage_password", "changed-by-second")
    assert first.get("site/all/storage_password") == "changed-by-second"


def test_concurrent_writers_lose_no_update(inventory: Path) -> None:
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            _store(inventory).set(f"site/h{number}/become_password", f"value-of-host-{number}")
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _store(inventory).names() == sorted(f"site/h{n}/become_password" for n in range(8))


def test_names_of_other_inventories_are_refused(inventory: Path) -> None:
    with pytest.raises(SecretsError, match="belongs to inventory 'other'"):
        _store(inventory).set("other/all/k", "value-1234")
    with pytest.raises(SecretsError, match="<inventory>/<scope>/<key>"):
        _store(inventory).get("site/k")


def test_values_that_are_not_utf8_are_refused(inventory: Path) -> None:
    with pytest.raises(SecretsError, match="site/all/k: the value is not valid UTF-8 text"):
        _store(inventory).set("site/all/k", "bad-\udcff-value")
    assert not vault.vault_path(inventory).exists()


def test_values_read_and_written_are_registered(filled: Path, inventory: Path) -> None:
    assert REDACTOR.mask("storage-secret-value") == "********"
    assert REDACTOR.mask(PASSWORD.decode()) == "********"
