"""Backend selection, names, lookup order, the index, password sources and the `secrets` CLI."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import SecretService, fail, null
from keyring.backends.chainer import ChainerBackend
from keyrings.alt.file import PlaintextKeyring

from provision.secrets import (
    REDACTOR,
    SecretsError,
    generate_secret,
    lookup,
    open_store,
    qualify,
    secret_name,
    split_name,
    vault,
)
from provision.secrets.index import SecretsIndex, index_path
from provision.secrets.keyring_store import KeyringStore, find_os_keyring, keyring_service
from provision.secrets.store import SECRET_ALPHABET
from provision.secrets.vault import VaultStore, vault_path

INVENTORY_TEXT = """\
all:
  vars: {project: demo}
  hosts: {h1: {}}
  children:
    storage: {hosts: {st1: {}}}
    clients:
      hosts: {h2: {}}
      children:
        gpu: {hosts: {h1: {}}}
"""


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process vaults use the smallest accepted n; CLI subprocesses use the production n."""
    monkeypatch.setattr(vault, "_SCRYPT_LOG2N", vault.MIN_LOG2N)


@pytest.fixture
def keyring_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restores keyring's backend after a test replaced it; no password file leaks in from outside."""
    monkeypatch.delenv("PROVISION_SECRETS_BACKEND", raising=False)
    monkeypatch.delenv("PROVISION_VAULT_PASSWORD_FILE", raising=False)
    previous = keyring.get_keyring()
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "site.yml"
    path.write_text(INVENTORY_TEXT)
    return path


def _private_file(path: Path, data: bytes, mode: int = 0o600) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.write(fd, data)
    os.close(fd)
    os.chmod(path, mode)
    return path


# ---------------------------------------------------------------- backend selection

@pytest.mark.usefixtures("keyring_backend")
@pytest.mark.parametrize("backend", [fail.Keyring, null.Keyring, PlaintextKeyring],
                         ids=["fail", "null", "keyrings.alt-plaintext"])
def test_weak_or_absent_keyrings_fall_back_to_the_vault(inventory: Path, backend: type[KeyringBackend]
                                                        ) -> None:
    keyring.set_keyring(backend())
    assert find_os_keyring() is None
    store = open_store(inventory, "site")
    assert isinstance(store, VaultStore)
    assert store.backend_name == f"vault ({vault_path(inventory)})"
    with pytest.raises(SecretsError, match=f"no OS keyring .*{backend.__name__}.*=vault") as raised:
        open_store(inventory, "site", backend="keyring")
    assert "\n" not in str(raised.value)


@pytest.mark.usefixtures("keyring_backend")
def test_chainer_of_weak_backends_is_not_a_keyring(inventory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chainer keyring builds from every viable backend; here those are only weak ones, or none."""
    monkeypatch.setattr(keyring.backend, "get_all_keyring", lambda: [PlaintextKeyring(), fail.Keyring()])
    keyring.set_keyring(ChainerBackend())
    assert [type(member) for member in ChainerBackend.backends] == [PlaintextKeyring]
    assert find_os_keyring() is None
    assert isinstance(open_store(inventory, "site"), VaultStore)
    monkeypatch.setattr(keyring.backend, "get_all_keyring", list)
    assert ChainerBackend.backends == []
    assert isinstance(open_store(inventory, "site"), VaultStore)


@pytest.mark.usefixtures("keyring_backend")
def test_secret_service_counts_and_can_be_overridden(inventory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keyring.set_keyring(SecretService.Keyring())
    store = open_store(inventory, "site")
    assert isinstance(store, KeyringStore)
    assert store.backend_name == "keyring (SecretService)"
    monkeypatch.setenv("PROVISION_SECRETS_BACKEND", "vault")
    assert isinstance(open_store(inventory, "site"), VaultStore)
    assert isinstance(open_store(inventory, "site", backend="keyring"), KeyringStore)


@pytest.mark.usefixtures("keyring_backend")
def test_unknown_backend_is_refused(inventory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISION_SECRETS_BACKEND", "plaintext")
    with pytest.raises(SecretsError, match=r"'plaintext' .*PROVISION_SECRETS_BACKEND.* keyring, vault"):
        open_store(inventory, "site")
    with pytest.raises(SecretsError, match="'bogus' \\(from the caller\\)"):
        open_store(inventory, "site", backend="bogus")


# ---------------------------------------------------------------- names

def test_names_are_inventory_scope_key() -> None:
    assert secret_name("site", "all", "storage_password") == "site/all/storage_password"
    assert split_name("site/ws1.lab/become_password") == ("site", "ws1.lab", "become_password")
    assert qualify("site", "storage_password") == "site/all/storage_password"
    assert qualify("site", "storage_password", "gpu") == "site/gpu/storage_password"
    assert qualify("site", "h1/become_password") == "site/h1/become_password"
    assert qualify("site", "site/h1/storage_password.next") == "site/h1/storage_password.next"


@pytest.mark.parametrize(("name", "scope", "message"), [
    ("other/all/k", None, "belongs to inventory 'other'"),
    ("site/all/k", "gpu", "drop --scope"),
    ("h1/k", "gpu", "drop --scope"),
    ("a/b/c/d", None, "must be KEY, SCOPE/KEY"),
    ("k", "has space", "not a valid secret name part"),
    ("", None, "not a valid secret name part"),
    ("-k", None, "not a valid secret name part"),
    ("all/", None, "not a valid secret name part"),
])
def test_bad_names_are_refused(name: str, scope: str | None, message: str) -> None:
    with pytest.raises(SecretsError, match=message):
        qualify("site", name, scope)


# ---------------------------------------------------------------- lookup

class RecordingStore:
    """Remembers which names lookup asked for, in order."""

    backend_name = "recording"

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: list[str] = []

    def get(self, name: str) -> str | None:
        self.asked.append(name)
        return self.values.get(name)

    def set(self, name: str, value: str) -> None:
        self.values[name] = value

    def delete(self, name: str) -> bool:
        return self.values.pop(name, None) is not None

    def names(self) -> list[str]:
        return sorted(self.values)


def test_lookup_asks_host_then_groups_deepest_first_then_all_once_each() -> None:
    store = RecordingStore({})
    assert lookup(store, "site", "h1", ["gpu", "clients", "all"], "become_password") is None
    assert store.asked == ["site/h1/become_password", "site/gpu/become_password",
                           "site/clients/become_password", "site/all/become_password"]


def test_lookup_stops_at_the_first_scope_that_has_the_key() -> None:
    store = RecordingStore({"site/clients/storage_password": "from-clients",
                            "site/all/storage_password": "from-all"})
    assert lookup(store, "site", "h1", ["gpu", "clients"], "storage_password") == "from-clients"
    assert store.asked[-1] == "site/clients/storage_password"


@pytest.mark.usefixtures("keyring_backend")
def test_lookup_precedence_on_a_real_vault(inventory: Path) -> None:
    store = open_store(inventory, "site", backend="vault", vault_password=b"lookup test password")
    for scope in ("all", "clients", "gpu", "h1"):
        store.set(f"site/{scope}/storage_password", f"value-from-{scope}")
    for removed, expected in [("h1", "value-from-gpu"), ("gpu", "value-from-clients"),
                              ("clients", "value-from-all"), ("all", None)]:
        assert lookup(store, "site", "h1", ["gpu", "clients"], "storage_password") == \
            (f"value-from-{removed}")
        store.delete(f"site/{removed}/storage_password")
        assert lookup(store, "site", "h1", ["gpu", "clients"], "storage_password") == expected


# ---------------------------------------------------------------- index

def test_index_records_names_and_backends_only(inventory: Path) -> None:
    index = SecretsIndex(inventory)
    assert index.path == inventory.with_name("site.secrets-index")
    assert index.entries() == []
    index.record("site/all/storage_password", "keyring")
    index.record("site/all/storage_password", "keyring")
    index.record("site/h1/become_password", "vault")
    assert index.entries() == [("site/all/storage_password", "keyring"), ("site/h1/become_password", "vault")]
    assert index.names("keyring") == ["site/all/storage_password"]
    index.replace("vault", ["site/h2/become_password"])
    assert index.names("vault") == ["site/h2/become_password"]
    index.forget("site/all/storage_password", "keyring")
    index.forget("site/all/storage_password", "keyring")
    assert json.loads(index.path.read_text()) == {
        "format": "provision-secrets-index/1",
        "secrets": [{"name": "site/h2/become_password", "backend": "vault"}]}


@pytest.mark.parametrize("text", ["not json", "[]", '{"format": "other"}',
                                  '{"format": "provision-secrets-index/1", "secrets": [{"name": 1}]}'])
def test_damaged_index_is_a_one_line_error(inventory: Path, text: str) -> None:
    index_path(inventory).write_text(text)
    with pytest.raises(SecretsError, match="secrets-index: not a provision-secrets-index/1 file"):
        SecretsIndex(inventory).entries()


# ---------------------------------------------------------------- generated values

def test_generated_secrets_are_long_random_and_url_safe() -> None:
    values = {generate_secret() for _ in range(50)}
    assert len(values) == 50
    assert all(len(value) == 32 and set(value) <= set(SECRET_ALPHABET) for value in values)
    assert len(generate_secret(100)) == 100
    value = generate_secret(20)
    assert REDACTOR.mask(value) == "********"
    for bad_length in (0, 8, 15, 5000):
        with pytest.raises(SecretsError, match=r"outside 16\.\.4096"):
            generate_secret(bad_length)


# ---------------------------------------------------------------- vault password sources

@pytest.mark.usefixtures("keyring_backend")
def test_vault_password_from_a_private_file(inventory: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    keyring.set_keyring(fail.Keyring())
    password_file = _private_file(tmp_path / "vault.pass", b"file password\n")
    monkeypatch.setenv("PROVISION_VAULT_PASSWORD_FILE", str(password_file))
    open_store(inventory, "site").set("site/all/k", "value-behind-file-password")
    reopened = open_store(inventory, "site", vault_password=b"file password")
    assert reopened.get("site/all/k") == "value-behind-file-password"
    with pytest.raises(SecretsError, match="wrong vault password"):
        open_store(inventory, "site", vault_password=b"file password\n").get("site/all/k")


@pytest.mark.usefixtures("keyring_backend")
@pytest.mark.parametrize(("mode", "content", "message"), [
    (0o640, b"pw", "mode 0640, open to group or others"),
    (0o604, b"pw", "mode 0604"),
    (0o600, b"\xff\xfe", "must hold UTF-8 text"),
    (0o600, b"\n", "must not be empty"),
])
def test_bad_password_files_are_refused(inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        mode: int, content: bytes, message: str) -> None:
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setenv("PROVISION_VAULT_PASSWORD_FILE", str(_private_file(tmp_path / "p", content, mode)))
    with pytest.raises(SecretsError, match=message):
        open_store(inventory, "site").set("site/all/k", "never-written")
    assert not vault_path(inventory).exists()


@pytest.mark.usefixtures("keyring_backend")
def test_vault_password_through_a_pipe(inventory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As bash's `PROVISION_VAULT_PASSWORD_FILE=<(pass show vault)` passes it: never on disk."""
    keyring.set_keyring(fail.Keyring())
    read_end, write_end = os.pipe()
    os.write(write_end, b"piped password\n")
    os.close(write_end)
    try:
        monkeypatch.setenv("PROVISION_VAULT_PASSWORD_FILE", f"/dev/fd/{read_end}")
        open_store(inventory, "site").set("site/all/k", "value-behind-piped-password")
    finally:
        os.close(read_end)
    assert open_store(inventory, "site", vault_password=b"piped password").get("site/all/k") == \
        "value-behind-piped-password"


@pytest.mark.usefixtures("keyring_backend")
def test_missing_password_file_is_refused(inventory: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    keyring.set_keyring(fail.Keyring())
    monkeypatch.setenv("PROVISION_VAULT_PASSWORD_FILE", str(tmp_path / "absent"))
    with pytest.raises(SecretsError, match=r"absent: vault password file .* does not exist"):
        open_store(inventory, "site").set("site/all/k", "never-written")


# ---------------------------------------------------------------- the CLI, as a user runs it

def _cli_env(tmp_path: Path, inventory: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PROVISION_", "DBUS_", "PYTHON_KEYRING"))}
    env.update(HOME=str(tmp_path / "home"), PROVISION_INVENTORY=str(inventory),
               PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring", PROVISION_SECRETS_BACKEND="vault")
    env.update(extra)
    return env


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`provision secrets ARGS` in a new session: no controlling terminal, as in CI."""
    return subprocess.run([sys.executable, "-m", "provision", "secrets", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=120, start_new_session=True, check=False)


@pytest.fixture
def cli_env(tmp_path: Path, inventory: Path) -> dict[str, str]:
    (tmp_path / "home").mkdir()
    password_file = _private_file(tmp_path / "vault.pass", b"cli vault password\n")
    return _cli_env(tmp_path, inventory, PROVISION_VAULT_PASSWORD_FILE=str(password_file))


def test_cli_set_get_list_delete(cli_env: dict[str, str], inventory: Path) -> None:
    stored = _cli(cli_env, "set", "storage_password", stdin="s3cret-from-stdin\n")
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.strip() == f"stored site/all/storage_password in vault ({vault_path(inventory)})"
    assert _cli(cli_env, "set", "--scope", "gpu", "become_password", stdin="gpu-become-pw").returncode == 0

    shown = _cli(cli_env, "get", "storage_password")
    assert shown.returncode == 0
    assert "s3cret-from-stdin" not in shown.stdout and "********" in shown.stdout
    revealed = _cli(cli_env, "get", "--reveal", "all/storage_password")
    assert revealed.stdout == "s3cret-from-stdin\n"
    assert _cli(cli_env, "get", "--reveal", "site/gpu/become_password").stdout == "gpu-become-pw\n"

    listed = _cli(cli_env, "list")
    assert listed.returncode == 0
    assert listed.stdout.split() == ["site/all/storage_password", "vault", "site/gpu/become_password", "vault"]
    assert "s3cret" not in listed.stdout

    assert _cli(cli_env, "delete", "storage_password").stdout.startswith("deleted site/all/storage_password")
    assert "was not stored" in _cli(cli_env, "delete", "storage_password").stdout
    missing = _cli(cli_env, "get", "storage_password")
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"error: no secret site/all/storage_password in vault ({vault_path(inventory)})"]
    assert oct(vault_path(inventory).stat().st_mode & 0o777) == "0o600"


def test_cli_never_takes_a_value_from_argv(cli_env: dict[str, str], inventory: Path) -> None:
    refused = _cli(cli_env, "set", "storage_password", "value-on-the-command-line")
    assert refused.returncode == 1
    assert "unexpected extra argument" in refused.stderr.lower()
    assert not vault_path(inventory).exists()
    empty = _cli(cli_env, "set", "storage_password", stdin="")
    assert empty.returncode == 1 and "refusing to store an empty value" in empty.stderr


def test_cli_scope_must_be_in_the_inventory(cli_env: dict[str, str], inventory: Path) -> None:
    refused = _cli(cli_env, "set", "--scope", "gpus", "become_password", stdin="value-1234")
    assert refused.returncode == 1
    assert "scope 'gpus' is neither 'all' nor a group or host" in refused.stderr
    other = _cli(cli_env, "set", "other/all/k", stdin="value-1234")
    assert other.returncode == 1 and "belongs to inventory 'other'" in other.stderr
    assert not vault_path(inventory).exists()


def test_cli_generate_stores_without_printing(cli_env: dict[str, str]) -> None:
    generated = _cli(cli_env, "generate", "--length", "40", "storage_password")
    assert generated.returncode == 0, generated.stderr
    value = _cli(cli_env, "get", "--reveal", "storage_password").stdout.strip()
    assert len(value) == 40 and set(value) <= set(SECRET_ALPHABET)
    assert value not in generated.stdout + generated.stderr
    again = _cli(cli_env, "generate", "storage_password")
    assert again.returncode == 1 and "--force" in again.stderr
    assert _cli(cli_env, "get", "--reveal", "storage_password").stdout.strip() == value
    forced = _cli(cli_env, "generate", "--force", "--reveal", "storage_password")
    new_value = forced.stdout.splitlines()[-1]
    assert len(new_value) == 32 and new_value != value
    assert _cli(cli_env, "get", "--reveal", "storage_password").stdout.strip() == new_value
    too_short = _cli(cli_env, "generate", "--length", "8", "become_password")
    assert too_short.returncode == 1


def test_cli_rekey_with_password_file(cli_env: dict[str, str], tmp_path: Path, inventory: Path) -> None:
    assert _cli(cli_env, "set", "storage_password", stdin="kept-across-rekey").returncode == 0
    new_file = _private_file(tmp_path / "new.pass", b"the new vault password\n")
    loose_file = _private_file(tmp_path / "loose.pass", b"loose\n", 0o644)
    before = vault_path(inventory).read_bytes()
    loose = _cli(cli_env, "rekey", "--new-password-file", str(loose_file))
    assert loose.returncode == 1 and "chmod 600" in loose.stderr
    assert vault_path(inventory).read_bytes() == before

    rekeyed = _cli(cli_env, "rekey", "--new-password-file", str(new_file))
    assert rekeyed.returncode == 0, rekeyed.stderr
    old = _cli(cli_env, "get", "storage_password")
    assert old.returncode == 1 and "wrong vault password" in old.stderr
    new_env = {**cli_env, "PROVISION_VAULT_PASSWORD_FILE": str(new_file)}
    assert _cli(new_env, "get", "--reveal", "storage_password").stdout == "kept-across-rekey\n"


def test_cli_rekey_needs_the_vault(cli_env: dict[str, str]) -> None:
    absent = _cli(cli_env, "rekey", "--new-password-file", "/nonexistent")
    assert absent.returncode == 1 and "no vault to rekey" in absent.stderr
    keyring_env = {**cli_env, "PROVISION_SECRETS_BACKEND": "keyring"}
    refused = _cli(keyring_env, "rekey")
    assert refused.returncode == 1 and "no OS keyring" in refused.stderr


def test_cli_errors_are_one_line_and_leave_the_vault_alone(cli_env: dict[str, str], tmp_path: Path,
                                                           inventory: Path) -> None:
    assert _cli(cli_env, "set", "storage_password", stdin="untouched-value").returncode == 0
    before = vault_path(inventory).read_bytes()
    wrong_env = {**cli_env, "PROVISION_VAULT_PASSWORD_FILE": str(_private_file(tmp_path / "w", b"not-the-password"))}
    for args, stdin in [(("get", "storage_password"), ""), (("set", "storage_password"), "replacement"),
                        (("delete", "storage_password"), "")]:
        result = _cli(wrong_env, *args, stdin=stdin)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"error: {vault_path(inventory)}: wrong vault password, or the vault was altered or truncated"]
        assert "Traceback" not in result.stderr and "untouched-value" not in result.stderr
    vault_path(inventory).chmod(0o644)
    loose = _cli(cli_env, "get", "storage_password")
    assert loose.returncode == 1 and len(loose.stderr.strip().splitlines()) == 1
    assert "mode 0644" in loose.stderr
    assert vault_path(inventory).read_bytes() == before


def test_cli_without_terminal_says_how_to_supply_the_password(tmp_path: Path, inventory: Path) -> None:
    (tmp_path / "home").mkdir()
    result = _cli(_cli_env(tmp_path, inventory), "set", "storage_password", stdin="value-1234")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {vault_path(inventory)}: the vault password is needed and there is no terminal to ask on; "
        "set PROVISION_VAULT_PASSWORD_FILE to a 0600 file holding it, or keep it in the OS keyring "
        f"(service {keyring_service('site', inventory)}, entry vault-password)"]


@pytest.mark.parametrize("command", ["set", "get", "list", "delete", "generate", "rekey"])
def test_cli_help_has_a_summary_and_an_example(cli_env: dict[str, str], command: str) -> None:
    result = _cli(cli_env, command, "--help")
    assert result.returncode == 0
    assert "Example:" in result.stdout and "provision secrets " + command in result.stdout


class Terminal:
    """Drives a child on a pseudo-terminal, as a person at a keyboard would."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvpe(argv[0], argv, env)
        self.seen = b""

    def expect(self, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"waited for {text!r}, saw {self.seen!r}"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"child ended before {text!r}; saw {self.seen!r}"
                self.seen += chunk
        self.seen = self.seen[self.seen.index(text) + len(text):]

    def send(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def finish(self) -> tuple[int, bytes]:
        rest = b""
        while True:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            rest += chunk
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status), self.seen + rest


def test_cli_prompts_hidden_on_a_terminal(tmp_path: Path, inventory: Path) -> None:
    (tmp_path / "home").mkdir()
    env = _cli_env(tmp_path, inventory)
    terminal = Terminal([sys.executable, "-m", "provision", "secrets", "set", "storage_password"], env)
    terminal.expect(b"Value for site/all/storage_password: ")
    terminal.send("typed-secret-value")
    terminal.expect(b"Repeat for confirmation: ")
    terminal.send("typed-secret-value")
    terminal.expect(b"Vault password for ")
    terminal.send("typed vault password")
    terminal.expect(b"Vault password again: ")
    terminal.send("typed vault password")
    status, output = terminal.finish()
    assert status == 0, output
    assert b"stored site/all/storage_password" in output
    assert b"typed-secret-value" not in output and b"typed vault password" not in output
    password_file = _private_file(tmp_path / "typed.pass", b"typed vault password")
    check_env = {**env, "PROVISION_VAULT_PASSWORD_FILE": str(password_file)}
    assert _cli(check_env, "get", "--reveal", "storage_password").stdout == "typed-secret-value\n"

    mismatch = Terminal([sys.executable, "-m", "provision", "secrets", "rekey"], env)
    mismatch.expect(b"Vault password for ")
    mismatch.send("typed vault password")
    mismatch.expect(b"New vault password for ")
    mismatch.send("first try")
    mismatch.expect(b"New vault password again: ")
    mismatch.send("second try")
    status, output = mismatch.finish()
    assert status == 1
    assert b"the two passwords differ; nothing was changed" in output
    assert _cli(check_env, "get", "--reveal", "storage_password").stdout == "typed-secret-value\n"
