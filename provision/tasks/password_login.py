"""Password login for storage_user: the password, and its proof.

Only inventories with a client on `auth: password` get it. sshd then accepts a password for
storage_user alone, through the account's `Match User` drop-in (provision.tasks.sshd_config), whose
`ForceCommand` keeps password sessions to SFTP as the account's key lines do; it also overrides their
`internal-sftp -R`, which is why read-only clients and password clients cannot share an inventory
(`check_password_access`).

The password comes from the secrets store (`storage_password`, looked up for the storage host, its
groups, then `all`; generated and stored under `all` when absent). It reaches the host only as the
content of a file staged by SFTP into the session's private directory, which `chpasswd` reads as its
stdin: never an argument, never sudo's stdin. Whether storage already has it is known without
reading it back: a fresh login as storage_user with that password, over SSH to the pinned host key
(paramiko, RejectPolicy), must succeed and list `dvc_storage` over SFTP. Logins that are refused are
told apart from a server that offers no password login at all (the methods it offers for the
account, asked with SSH's `none` authentication), so a missing drop-in is never taken for a wrong
password.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko

from provision.connection import (
    STAGED_CONTENT,
    HostKeyError,
    HostKeyOptions,
    SSHSession,
    UnreachableError,
    open_last_jump,
    resolve_target,
)
from provision.engine import Change, HostContext, Task
from provision.errors import InputError, ProvisionError, command_error
from provision.facts import CommandFact, Fact
from provision.inventory import Host, Inventory, Settings
from provision.known_hosts_file import changed_key_message
from provision.remote import script
from provision.secrets import ALL_SCOPE, REDACTOR, generate_secret, secret_name, split_name
from provision.secrets_lookup import SecretLookupForInventory

PASSWORD_KEY = "storage_password"
NEXT_PASSWORD_KEY = "storage_password.next"
#: After a reload sshd re-executes itself and refuses connections for a moment: logins retry this often.
LOGIN_ATTEMPTS = 10
LOGIN_RETRY_SECONDS = 0.3

# $1 user: whether the account has a usable password hash ("set") or none ("*", "!...", empty).
_HASH_STATE = """
case $(getent shadow "$1" | cut -d: -f2) in
  ''|'*'|'!'*) echo unset ;;
  *) echo set ;;
esac
"""

# $1 staged file holding `user:password`: chpasswd reads it (never rewritten since the upload) on stdin;
# the file goes whatever happens.
_CHPASSWD = STAGED_CONTENT + """
content=$(staged_content "$1") && printf '%s\\n' "$content" | chpasswd
status=$?
rm -f -- "$1"
exit "$status"
"""

def password_clients(inventory: Inventory) -> list[Host]:
    """Clients whose DVC remote authenticates with storage_user's password."""
    return [host for host in inventory.clients if host.setting("auth") == "password"]


def check_password_access(inventory: Inventory) -> None:
    """InputError when password clients and read-only clients share the inventory.

    The drop-in's ForceCommand applies to every session of storage_user, key logins included, and
    sshd lets it win over a key line's own command: `internal-sftp -R` would become read-write.
    """
    password = password_clients(inventory)
    readers = [host for host in inventory.clients if host.setting("access") == "read"]
    if password and readers:
        file, line = readers[0].source("access") or ("", 0)
        raise InputError(f"{', '.join(h.name for h in readers)} has access: read, but "
                         f"{', '.join(h.name for h in password)} uses auth: password; storage_user's password "
                         "login forces SFTP read-write for every session of the account, so read-only key "
                         "lines could write: use auth: key for all clients (recommended), or no read-only "
                         "clients", file=file or None, line=line or None, key="access")


def check_password_value(password: str) -> None:
    """chpasswd and config.local both take one line: refuse line breaks and NUL before anything runs."""
    if any(c in password for c in "\r\n\0"):
        raise ProvisionError("storage_password holds a line break or NUL, which chpasswd and config.local "
                             "cannot take: store another value (`provision secrets generate --force`)")


@dataclass(frozen=True)
class StoredSecret:
    """A value and the full name it was found under."""

    name: str
    value: str


def find_secret(secrets: SecretLookupForInventory, host: Host, key: str) -> StoredSecret | None:
    """`key` for `host` in the lookup order of docs/security.md (host, its groups deepest first, all), with its name."""
    store = secrets.store()
    for scope in dict.fromkeys([host.name, *secrets.groups_deepest_first(host), ALL_SCOPE]):
        name = secret_name(secrets.inventory.name, scope, key)
        value = store.get(name)
        if value is not None:
            REDACTOR.register(value)
            return StoredSecret(name, value)
    return None


def sibling_name(name: str, key: str) -> str:
    """The name of `key` in the same inventory and scope as `name`."""
    inventory_name, scope, _ = split_name(name)
    return secret_name(inventory_name, scope, key)


class PasswordLoginDisabled(ProvisionError):
    """sshd does not offer password authentication to the account."""


class _OfferedMethods:
    """paramiko auth strategy that only asks which methods sshd offers the user (`none` auth)."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.methods: list[str] = []

    def authenticate(self, transport: paramiko.Transport) -> None:
        try:
            transport.auth_none(self.user)
        except paramiko.BadAuthenticationType as refusal:
            self.methods = list(refusal.allowed_types)
            return
        self.methods = ["none"]


class _PasswordOnly:
    """paramiko auth strategy: the password method alone (no keys, no agent, no keyboard-interactive)."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.accepted = False

    def authenticate(self, transport: paramiko.Transport) -> None:
        try:
            transport.auth_password(self.user, self.password, fallback=False)
        except paramiko.BadAuthenticationType as refusal:
            raise PasswordLoginDisabled(f"sshd does not offer password login to {self.user} "
                                        f"(offers: {', '.join(refusal.allowed_types) or 'nothing'})") from None
        except paramiko.AuthenticationException:
            return
        self.accepted = True


def _restarting(error: BaseException) -> bool:
    """Errors of an sshd that is re-executing after a reload: worth another attempt."""
    if isinstance(error, paramiko.ssh_exception.NoValidConnectionsError | ConnectionError | EOFError):
        return True
    text = str(error)
    return isinstance(error, paramiko.SSHException) and ("banner" in text or "reset" in text)


class StorageLogin:
    """Fresh SSH logins to storage from the controller, as a service account, host key pinned.

    The route is the controller's (ansible_host, ProxyJump hops verified by provision.connection);
    the host key must match the inventory's pins, else ~/.ssh/known_hosts (paramiko RejectPolicy).
    """

    def __init__(self, storage: Host, pins_path: Path, timeout: float) -> None:
        self.storage = storage
        self.pins_path = pins_path
        self.timeout = timeout

    def offered_methods(self, user: str) -> list[str]:
        """The authentication methods sshd offers `user` now (the running sshd, not its files)."""
        strategy = _OfferedMethods(user)
        with self._connected(user, strategy):
            return strategy.methods

    def password_accepted(self, user: str, password: str, directory: str) -> bool:
        """Whether `user` logs in with `password` and lists `directory` over SFTP.

        False when sshd refuses the password; PasswordLoginDisabled when it offers no password login.
        """
        strategy = _PasswordOnly(user, password)
        with self._connected(user, strategy) as client:
            if not strategy.accepted:
                return False
            try:
                sftp = client.open_sftp()
                sftp.listdir(directory)
                sftp.close()
            except (OSError, paramiko.SSHException) as error:
                raise ProvisionError(f"{user} logged in with the password but listing {directory} over SFTP "
                                     f"failed: {error}") from None
        return True

    @contextmanager
    def _connected(self, user: str, strategy: _OfferedMethods | _PasswordOnly) -> Iterator[paramiko.SSHClient]:
        target = resolve_target(self.storage)
        for attempt in range(LOGIN_ATTEMPTS):
            client = paramiko.SSHClient()
            HostKeyOptions(self.pins_path).load_into(client)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            jump = None
            try:
                sock = None
                if target.jumps:
                    jump = open_last_jump(target, HostKeyOptions(self.pins_path), timeout=self.timeout)
                    sock = jump.tunnel(target, self.timeout)
                client.connect(target.hostname, target.port, username=user, sock=sock, timeout=self.timeout,
                               banner_timeout=self.timeout, auth_timeout=self.timeout, look_for_keys=False,
                               allow_agent=False, auth_strategy=strategy)
            except paramiko.BadHostKeyException as error:
                _close(client, jump)
                raise HostKeyError(changed_key_message(error.hostname, error.expected_key, error.key,
                                                       self.storage.name)) from None
            except ProvisionError:  # the strategy's verdict (no password login offered), or the jump host's
                _close(client, jump)
                raise
            except (OSError, EOFError, paramiko.SSHException) as error:
                _close(client, jump)
                if "not found in known_hosts" in str(error):
                    raise HostKeyError(f"host key of {target.label} is not pinned: run `provision hostkeys "
                                       "scan`") from None
                if attempt + 1 < LOGIN_ATTEMPTS and _restarting(error):
                    time.sleep(LOGIN_RETRY_SECONDS)
                    continue
                refused = isinstance(error, paramiko.ssh_exception.NoValidConnectionsError)
                detail = "connection refused" if refused else next(iter(str(error).splitlines()), "")
                raise UnreachableError(f"{user}@{target.label}: {detail or type(error).__name__}") from None
            try:
                yield client
            finally:
                _close(client, jump)
            return


def _close(client: paramiko.SSHClient, jump: SSHSession | None) -> None:
    client.close()
    if jump is not None:
        jump.close()


def set_password(ctx: HostContext, user: str, password: str) -> None:
    """`chpasswd` reads `user:password` from a file staged privately by SFTP, removed right after."""
    check_password_value(password)
    staged = ctx.session.stage(f"{user}:{password}\n".encode())
    result = ctx.session.run(script(_CHPASSWD, staged), privileged=True)
    if not result.ok:
        raise command_error(f"chpasswd for {user}", result)


def prove_password(ctx: HostContext, login: StorageLogin, settings: Settings, password: str, label: str) -> None:
    """A fresh login with `password` must succeed and list dvc_storage; the proof becomes a note."""
    user = settings.storage_user
    if not login.password_accepted(user, password, settings.sftp_dvc_storage):
        raise ProvisionError(f"storage refuses {label} for {user} right after chpasswd set it: check its "
                             "PAM and sshd settings (e.g. AuthenticationMethods)")
    ctx.note(f"{user} logs in with {label} (fresh login, SFTP listing of {settings.sftp_dvc_storage})")


@dataclass(frozen=True)
class PasswordLogin:
    """What bootstrap does about storage_user's password login for one inventory."""

    enabled: bool
    secrets: SecretLookupForInventory
    login: StorageLogin


def password_login(inventory: Inventory, secrets: SecretLookupForInventory, timeout: float) -> PasswordLogin:
    """Enabled when some client has `auth: password`; InputError for combinations it cannot keep safe."""
    check_password_access(inventory)
    return PasswordLogin(bool(password_clients(inventory)), secrets,
                         StorageLogin(inventory.storage, inventory.known_hosts_path, timeout))


class _PasswordTask(Task):
    """A task on storage_user's password: kept in the secrets store, proven by fresh logins to storage."""

    def __init__(self, storage: Host, secrets: SecretLookupForInventory, login: StorageLogin) -> None:
        self.storage = storage
        self.settings = storage.settings
        self.secrets = secrets
        self.login = login
        self.user = self.settings.storage_user


class StoragePassword(_PasswordTask):
    """storage_user's password is the stored `storage_password`, proven by a fresh login."""

    def __init__(self, storage: Host, secrets: SecretLookupForInventory, login: StorageLogin) -> None:
        super().__init__(storage, secrets, login)
        self.hash_fact = CommandFact(tuple(script(_HASH_STATE, self.user)), privileged=True)
        self.name = f"password of {self.user}"

    def facts(self) -> Sequence[Fact]:
        return (self.hash_fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        found = find_secret(self.secrets, self.storage, PASSWORD_KEY)
        if found is None:
            name = secret_name(self.secrets.inventory.name, ALL_SCOPE, PASSWORD_KEY)
            return Change(f"generate {name}, store it, set it as {self.user}'s password",
                          lambda: self._generate(ctx, name))
        check_password_value(found.value)
        if (ctx.fact(self.hash_fact) or "").strip() != "set":
            return Change(f"set {self.user}'s password from {found.name}", lambda: self._set(ctx, found))
        try:
            accepted = self.login.password_accepted(self.user, found.value, self.settings.sftp_dvc_storage)
        except PasswordLoginDisabled:
            if not ctx.check:
                raise
            return Change(f"set {self.user}'s password from {found.name} (not verifiable before sshd offers "
                          "password login)", lambda: None)
        if accepted:
            ctx.note(f"{self.user} logs in with {found.name} (fresh login, SFTP listing of "
                     f"{self.settings.sftp_dvc_storage})")
            return None
        return Change(f"set {self.user}'s password from {found.name} (storage refused it)",
                      lambda: self._set(ctx, found))

    def _generate(self, ctx: HostContext, name: str) -> None:
        value = generate_secret()
        store = self.secrets.store()
        store.set(name, value)
        ctx.note(f"stored in {store.backend_name}")
        self._set(ctx, StoredSecret(name, value))

    def _set(self, ctx: HostContext, secret: StoredSecret) -> None:
        set_password(ctx, self.user, secret.value)
        ctx.forget(self.hash_fact)
        prove_password(ctx, self.login, self.settings, secret.value, secret.name)


class RotateStoragePassword(_PasswordTask):
    """A new storage_password: stored as `.next`, set by chpasswd, proven by a login, then promoted.

    Each step can be interrupted: a `.next` in the store means a rotation is under way, so a run
    continues with it (setting it only when storage does not accept it yet) instead of drawing another.
    Promotion writes the value under the name storage's lookup finds, then deletes `.next`.
    """

    def __init__(self, storage: Host, secrets: SecretLookupForInventory, login: StorageLogin) -> None:
        super().__init__(storage, secrets, login)
        self.name = f"rotate password of {self.user}"

    def plan(self, ctx: HostContext) -> Change | None:
        current = find_secret(self.secrets, self.storage, PASSWORD_KEY)
        pending = find_secret(self.secrets, self.storage, NEXT_PASSWORD_KEY)
        if current is not None:
            target = current.name
        elif pending is not None:
            target = sibling_name(pending.name, PASSWORD_KEY)
        else:
            raise ProvisionError(f"no {PASSWORD_KEY} is stored for {self.storage.name}: run `provision bootstrap` "
                                 "(with an auth: password client in the inventory) first")
        if "password" not in self.login.offered_methods(self.user):
            raise ProvisionError(f"sshd on {self.storage.name} offers no password login to {self.user}: run "
                                 "`provision bootstrap` (with an auth: password client in the inventory) first")
        if pending is None:
            next_name = sibling_name(target, NEXT_PASSWORD_KEY)
            return Change(f"generate {next_name}, set it as {self.user}'s password, prove a login, promote it to "
                          f"{target}", lambda: self._rotate(ctx, next_name, target))
        check_password_value(pending.value)
        if self.login.password_accepted(self.user, pending.value, self.settings.sftp_dvc_storage):
            ctx.note(f"storage already accepts {pending.name}: continuing the rotation begun earlier")
            return Change(f"promote {pending.name} to {target}", lambda: self._promote(ctx, pending, target))
        ctx.note(f"continuing the rotation begun earlier with {pending.name}")
        return Change(f"set {pending.name} as {self.user}'s password, prove a login, promote it to {target}",
                      lambda: self._set_and_promote(ctx, pending, target))

    def _rotate(self, ctx: HostContext, next_name: str, target: str) -> None:
        value = generate_secret()
        self.secrets.store().set(next_name, value)
        self._set_and_promote(ctx, StoredSecret(next_name, value), target)

    def _set_and_promote(self, ctx: HostContext, pending: StoredSecret, target: str) -> None:
        set_password(ctx, self.user, pending.value)
        prove_password(ctx, self.login, self.settings, pending.value, pending.name)
        self._promote(ctx, pending, target)

    def _promote(self, ctx: HostContext, pending: StoredSecret, target: str) -> None:
        store = self.secrets.store()
        store.set(target, pending.value)
        store.delete(pending.name)
        ctx.note(f"{target} holds the new password ({store.backend_name}); {pending.name} deleted")
