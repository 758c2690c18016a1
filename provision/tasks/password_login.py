"""storage_user's password: kept in the secrets store, set by chpasswd, proven by fresh logins.

Only inventories with a client on `auth: password` get it. sshd then accepts a password for
storage_user alone, through the account's `Match User` drop-in (provision.tasks.sshd_config), whose
`ForceCommand` keeps password sessions to SFTP as the account's key lines do; it also overrides their
`internal-sftp -R`, which is why read-only clients and password clients cannot share an inventory
(`Inventory.check_password_access`).

The password comes from the secrets store (`storage_password`, looked up for the storage host, its
groups, then `all`; generated and stored under `all` when absent). It reaches the host only as the
content of a file staged by SFTP into the session's private directory, which `chpasswd` reads as its
stdin: never an argument, never sudo's stdin. Whether storage already has it is known without
reading it back: a fresh login as storage_user with that password (provision.connection.AccountLogin:
the password method alone, to the pinned host key) must succeed and list `dvc_storage` over SFTP.
Logins that are refused are told apart from a server that offers no password login at all, so a
missing drop-in is never taken for a wrong password.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from provision.connection import STAGED_CONTENT, AccountLogin, PasswordLoginDisabled
from provision.engine import Change, HostContext, Task
from provision.errors import ProvisionError
from provision.facts import Fact, LoginMethodsFact, PasswordLoginFact, PasswordLoginOutcome
from provision.inventory import Host, Settings
from provision.remote import BatchOutput, script
from provision.render import LINE_BREAKS
from provision.secrets import ALL_SCOPE, StoredSecret, generate_secret, secret_name, sibling_name
from provision.secrets.inventory import SecretLookupForInventory

PASSWORD_KEY = "storage_password"
NEXT_PASSWORD_KEY = "storage_password.next"

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


@dataclass(frozen=True)
class PasswordHash:
    """Whether an account has a usable password hash (not `*`, not locked with `!`, not empty)."""

    usable: bool


@dataclass(frozen=True)
class PasswordHashFact(Fact):
    """An account's password hash, read for whether it is usable (never the hash itself)."""

    user: str
    privileged: bool = True

    @property
    def key(self) -> tuple[str, str]:
        return ("password hash", self.user)

    def argv(self) -> list[str]:
        return script(_HASH_STATE, self.user)

    def parse(self, output: BatchOutput) -> PasswordHash:
        return PasswordHash(usable=output.rc == 0 and output.stdout.strip() == "set")


def check_password_value(password: str) -> None:
    """chpasswd and config.local both take one line: refuse line breaks and NUL before anything runs."""
    if any(c in password for c in LINE_BREAKS):
        raise ProvisionError("storage_password holds a line break or NUL, which chpasswd and config.local "
                             "cannot take: store another value (`provision secrets generate --force`)")


def set_password(ctx: HostContext, user: str, password: str) -> None:
    """`chpasswd` reads `user:password` from a file staged privately by SFTP, removed right after."""
    check_password_value(password)
    staged = ctx.session.stage(f"{user}:{password}\n".encode())
    ctx.run(script(_CHPASSWD, staged), f"chpasswd for {user}", privileged=True)


def prove_password(ctx: HostContext, login: AccountLogin, settings: Settings, password: str, label: str) -> None:
    """A fresh login with `password` must succeed and list dvc_storage; the proof becomes a note."""
    user = settings.storage_user
    if not login.password_accepted(user, password, settings.sftp_dvc_storage):
        raise ProvisionError(f"storage refuses {label} for {user} right after chpasswd set it: check its "
                             "PAM and sshd settings (e.g. AuthenticationMethods)")
    ctx.note(f"{user} logs in with {label} (fresh login, SFTP listing of {settings.sftp_dvc_storage})")


class _PasswordTask(Task):
    """A task on storage_user's password: kept in the secrets store, proven by fresh logins to storage."""

    def __init__(self, storage: Host, secrets: SecretLookupForInventory, login: AccountLogin) -> None:
        self.storage = storage
        self.settings = storage.settings
        self.secrets = secrets
        self.login = login
        self.user = self.settings.storage_user

    def _login_fact(self, secret: StoredSecret) -> PasswordLoginFact:
        """A fresh login to storage with `secret`, listing dvc_storage."""
        return PasswordLoginFact(self.user, self.settings.sftp_dvc_storage, secret, self.login)


class StoragePassword(_PasswordTask):
    """storage_user's password is the stored `storage_password`, proven by a fresh login."""

    def __init__(self, storage: Host, secrets: SecretLookupForInventory, login: AccountLogin) -> None:
        super().__init__(storage, secrets, login)
        self.hash_fact = PasswordHashFact(self.user)
        self.name = f"password of {self.user}"

    def facts(self) -> Sequence[Fact]:
        return (self.hash_fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        found = self.secrets.find(self.storage, PASSWORD_KEY)
        if found is None:
            name = secret_name(self.secrets.inventory.name, ALL_SCOPE, PASSWORD_KEY)
            return Change(f"generate {name}, store it, set it as {self.user}'s password",
                          lambda: self._generate(ctx, name))
        check_password_value(found.value)
        hash_state: PasswordHash = ctx.fact(self.hash_fact)
        if not hash_state.usable:
            return Change(f"set {self.user}'s password from {found.name}", lambda: self._set(ctx, found))
        login: PasswordLoginOutcome = ctx.fact(self._login_fact(found))
        if not login.offered:
            if not ctx.check:
                raise PasswordLoginDisabled(login.refusal)
            return Change(f"set {self.user}'s password from {found.name} (not verifiable before sshd offers "
                          "password login)", lambda: None)
        if login.accepted:
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

    def __init__(self, storage: Host, secrets: SecretLookupForInventory, login: AccountLogin) -> None:
        super().__init__(storage, secrets, login)
        self.name = f"rotate password of {self.user}"

    def plan(self, ctx: HostContext) -> Change | None:
        current = self.secrets.find(self.storage, PASSWORD_KEY)
        pending = self.secrets.find(self.storage, NEXT_PASSWORD_KEY)
        if current is not None:
            target = current.name
        elif pending is not None:
            target = sibling_name(pending.name, PASSWORD_KEY)
        else:
            raise ProvisionError(f"no {PASSWORD_KEY} is stored for {self.storage.name}: run `provision bootstrap` "
                                 "(with an auth: password client in the inventory) first")
        if "password" not in ctx.fact(LoginMethodsFact(self.user, self.login)):
            raise ProvisionError(f"sshd on {self.storage.name} offers no password login to {self.user}: run "
                                 "`provision bootstrap` (with an auth: password client in the inventory) first")
        if pending is None:
            next_name = sibling_name(target, NEXT_PASSWORD_KEY)
            return Change(f"generate {next_name}, set it as {self.user}'s password, prove a login, promote it to "
                          f"{target}", lambda: self._rotate(ctx, next_name, target))
        check_password_value(pending.value)
        login: PasswordLoginOutcome = ctx.fact(self._login_fact(pending))
        if not login.offered:
            raise PasswordLoginDisabled(login.refusal)
        if login.accepted:
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


class SamePassword(Task):
    """The client looks storage_password up where storage does: one account has one password."""

    name = "storage_password lookup"

    def __init__(self, client: Host, storage: Host, secrets: SecretLookupForInventory) -> None:
        self.client = client
        self.storage = storage
        self.secrets = secrets

    def plan(self, ctx: HostContext) -> Change | None:
        mine = self.secrets.find(self.client, PASSWORD_KEY)
        storage = self.secrets.find(self.storage, PASSWORD_KEY)
        if mine is None or storage is None:
            raise ProvisionError(f"no {PASSWORD_KEY} for {self.client.name if mine is None else self.storage.name}: "
                                 "run `provision bootstrap` first")
        if mine.value != storage.value:
            raise ProvisionError(f"{self.client.name} finds {mine.name} but the storage host {self.storage.name} finds "
                                 f"{storage.name}, a different value; storage_user has one password: delete "
                                 f"{mine.name} (`provision secrets delete {mine.name}`)")
        return None
