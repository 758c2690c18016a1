"""Key rotation on one client: a new pair beside the old one, proven, switched to, the old one retired.

The rotation's state lives where its effects are, so a run can always tell where an earlier one
stopped, and carries on from there:

- `<client_key>.new` exists: a rotation is under way with that key (it is reused, never redrawn);
  its private half is the truth, read with `ssh-keygen -y`, not its `.pub` file;
- the marked lines on storage: the old key's line is kept only while it is there (a run never
  authorizes an old key again), the new key's line is added beside it;
- `.dvc/config.local` and `core.sshCommand` name the key in use: `<client_key>.new` from the switch
  until the old key is retired, then `client_key` again;
- `client_key` and `<client_key>.new` holding the same private key: the old private key is already
  gone, only the clean-up is left.

Until the new key has been proven with OpenSSH and with DVC, the old key stays authorized and in use;
a failed DVC proof switches the client back to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from provision.engine import Change, HostContext, Planned, Proof, Task, changes_of
from provision.errors import ProvisionError, command_error
from provision.facts import Fact, KeyValues
from provision.inventory import Host, Settings
from provision.remote import BatchOutput, script
from provision.tasks.authorized_keys import AuthorizeKeys, marked_lines
from provision.tasks.checkout import Checkout, CheckoutFact, CheckoutState, git_ssh_command
from provision.tasks.client_key import (
    CLIENT_EXPORT,
    DERIVE_PUBLIC_KEY,
    GENERATE_KEY,
    KEY_PATH_PRELUDE,
    ClientInfo,
    connecting_user,
    key_fingerprint,
    key_marker,
    parse_public_key,
)
from provision.tasks.dvc_client import DvcClientConfig, dvc_argv
from provision.tasks.proofs import DVC_PROOF_TIMEOUT, sftp_list_argv

NEW_KEY_SUFFIX = ".new"
#: Export of the first phase: the client's KeyRotation.
ROTATION_EXPORT = "key rotation"
#: Export of the storage phase: clients without any marked line (never onboarded, or offboarded).
NOT_ONBOARDED_EXPORT = "rotation: clients without a key line"

# $1 user, $2 client_key (maybe ~/...). Prints the public half of the private key at client_key and at
# client_key.new ("absent", or "unreadable"), then the first line of client_key.new.pub ("absent").
_ROTATION_STATE = KEY_PATH_PRELUDE + r"""
public() {
  if [ ! -e "$1" ]; then echo absent
  else ssh-keygen -y -f "$1" 2>/dev/null | head -n 1 | grep . || echo unreadable; fi
}
printf 'old %s\n' "$(public "$key")"
printf 'new %s\n' "$(public "$key.new")"
if [ -f "$key.new.pub" ]; then printf 'new.pub %s\n' "$(head -n 1 -- "$key.new.pub")"; else echo 'new.pub absent'; fi
"""

# $1 client_key, $2 client_key.new. Each file of the pair is replaced by a hard link to the new one
# and an atomic rename, public half first, so client_key always holds a whole key; the old private
# key is gone with the second rename. Safe to run again at any point.
_INSTALL_NEW_KEY = r"""
set -eu
replace() {
  if [ ! "$1" -ef "$2" ]; then ln -f -- "$2" "$1.provision-new"; mv -f -- "$1.provision-new" "$1"; fi
  rm -f -- "$1.provision-new"
}
replace "$1.pub" "$2.pub"
replace "$1" "$2"
"""

_KEY_IN_LINE = re.compile(r"(?:^|\s)(ssh-ed25519 [A-Za-z0-9+/]+={0,2})(?=\s|$)")


def line_public_key(line: str) -> str | None:
    """`ssh-ed25519 BASE64` of an authorized_keys line, or None."""
    match = _KEY_IN_LINE.search(line)
    return match.group(1) if match else None


def new_key_path(key: str) -> str:
    """Where the new pair is made, beside the old one."""
    return key + NEW_KEY_SUFFIX


@dataclass(frozen=True)
class RotationKeys:
    """The public halves of the old and the new private key, and the new key's `.pub` line."""

    old: str
    new: str
    new_pub: str


@dataclass(frozen=True)
class RotationKeysFact(Fact):
    """The rotation's state on the client (read as the connecting user, who owns the keys)."""

    user: str
    client_key: str

    @property
    def key(self) -> tuple[str, str, str]:
        return ("key rotation", self.user, self.client_key)

    def argv(self) -> list[str]:
        return script(_ROTATION_STATE, self.user, self.client_key)

    def parse(self, output: BatchOutput) -> RotationKeys | None:
        values = KeyValues.parse(output.stdout)
        if output.rc != 0 or not all(key in values for key in ("old", "new", "new.pub")):
            return None
        return RotationKeys(values.get("old"), values.get("new"), values.get("new.pub"))


@dataclass(frozen=True)
class KeyRotation:
    """One client's rotation: its paths, the old key and the new one (None under --check before it exists)."""

    info: ClientInfo
    old_public: str
    new_public: str | None
    marker: str

    @property
    def client(self) -> str:
        return self.info.name

    @property
    def new_key(self) -> str:
        return new_key_path(self.info.key)

    @property
    def consolidating(self) -> bool:
        """The private key at client_key is the new one already: only the clean-up is left."""
        return self.new_public == self.old_public

    def at(self, path: str) -> ClientInfo:
        """The client's info with its key at `path`, for the tasks that name the key in use."""
        return replace(self.info, key=path)


def rotation_of(state_exports: Mapping[str, object], host: Host) -> KeyRotation:
    """The client's rotation from the first phase's exports."""
    rotation = state_exports.get(ROTATION_EXPORT)
    if not isinstance(rotation, KeyRotation):
        raise ProvisionError(f"{host.name}: its key rotation was not started in an earlier phase")
    return rotation


class StartKeyRotation(Task):
    """`<client_key>.new` made beside the old pair, or the one an earlier run made taken up again."""

    name = "new key"

    def __init__(self, host: Host) -> None:
        self.host = host
        self.settings: Settings = host.settings
        self.fact = RotationKeysFact(connecting_user(host), self.settings.client_key)

    def facts(self) -> Sequence[Fact]:
        return (self.fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        info: ClientInfo = ctx.state.report(self.host.name).exports[CLIENT_EXPORT]
        keys: RotationKeys | None = ctx.fact(self.fact)
        if keys is None:
            raise ProvisionError(f"no account {self.fact.user!r} on {self.host.name} (the connecting user)")
        if keys.old == "absent":
            raise ProvisionError(f"no key {info.key} on {self.host.name} to rotate: run `provision onboard "
                                 f"{self.host.name}` first")
        if keys.old == "unreadable":
            raise ProvisionError(f"ssh-keygen cannot read {info.key} on {self.host.name} (a passphrase?): "
                                 "provision rotates keys it made, which have none")
        old_public = parse_public_key(keys.old)
        new_key = new_key_path(info.key)
        marker = key_marker(self.settings.inventory_name, self.host.name)

        def export(new_public: str | None) -> None:
            ctx.export(ROTATION_EXPORT, KeyRotation(info, old_public, new_public, marker))

        if keys.new == "absent":
            export(None)

            def generate() -> None:
                ctx.run(script(GENERATE_KEY, new_key, marker), f"ssh-keygen {new_key}")
                derived = ctx.run(["ssh-keygen", "-y", "-f", new_key], f"reading {new_key}")
                export(parse_public_key(derived.stdout))
                ctx.forget(self.fact)

            return Change(f"generate a new ed25519 key {new_key} beside {info.key}", generate)
        if keys.new == "unreadable":
            raise ProvisionError(f"{new_key} on {self.host.name} is not a readable key: remove it "
                                 f"(with {new_key}.pub) and run again")
        new_public = parse_public_key(keys.new)
        export(new_public)
        if new_public == old_public:
            ctx.note(f"{info.key} holds the new key already; finishing the clean-up of an earlier rotation")
        else:
            ctx.note(f"continuing the rotation begun earlier with {new_key} ({key_fingerprint(new_public)})")
        if keys.new_pub.split()[:2] == new_public.split():
            return None
        return Change(f"write {new_key}.pub from {new_key}",
                      lambda: ctx.run(script(DERIVE_PUBLIC_KEY, new_key), f"deriving {new_key}.pub"))


@dataclass(frozen=True)
class RotatedLines:
    """One client's rotation in one account: its marker, its old key, its new key's line as onboarding
    writes it (None under --check while the new key does not exist yet)."""

    marker: str
    old_public: str
    new_line: str | None


def rotated_lines(existing: Sequence[str], old_public: str, new_line: str, *, revoke_old: bool) -> list[str]:
    """The client's lines after this step: the new key's line, beside the old key's while it is there.

    The old key's line is kept as it is (never written again, so a revoked key stays revoked); lines
    of any other key with the client's marker (a new key of an abandoned rotation) go.
    """
    if revoke_old or line_public_key(new_line) == old_public:
        return [new_line]
    old_lines = [line for line in existing if line_public_key(line) == old_public]
    return [*old_lines[:1], new_line]


class RotationKeyLines(AuthorizeKeys):
    """Step 2 (`revoke_old` False): the new key authorized beside the old; step 4: the old one revoked.

    Clients without any marked line (never onboarded, or offboarded) are left alone and exported, so
    their rotation fails with that reason instead of authorizing them anew.
    """

    def __init__(self, account: str, rotations: Sequence[RotatedLines], *, purpose: str, revoke_old: bool) -> None:
        super().__init__(account, {}, purpose=purpose)
        self.rotations = list(rotations)
        self.revoke_old = revoke_old

    @property
    def name(self) -> str:  # type: ignore[override]
        step = "revoke old keys" if self.revoke_old else "authorize new keys"
        return f"{step} for {self.account} ({self.purpose})"

    def plan(self, ctx: HostContext) -> Change | None:
        content = self._read(ctx).content
        self.lines = {}
        missing, moving = [], []
        for wanted in self.rotations:
            client = wanted.marker.rsplit(":", 1)[-1]
            existing = marked_lines(content, wanted.marker)
            if not existing:
                missing.append(client)
                continue
            if wanted.new_line is None:
                self.lines[wanted.marker] = None
                moving.append(client)
                continue
            self.lines[wanted.marker] = rotated_lines(existing, wanted.old_public, wanted.new_line,
                                                      revoke_old=self.revoke_old)
            if self.lines[wanted.marker] != existing:
                moving.append(client)
        ctx.export(NOT_ONBOARDED_EXPORT, sorted(set(missing) | set(ctx.state.exports(NOT_ONBOARDED_EXPORT)
                                                                   .get(ctx.host.name, []))))
        if missing:
            ctx.note(f"no line of {', '.join(missing)} to rotate (not onboarded)")
        change = super().plan(ctx)
        if change is None:
            return None
        what = "revoke the old key of" if self.revoke_old else "authorize the new key beside the old one for"
        return replace(change, summary=f"{what} {', '.join(moving)} in {self._read(ctx).path}")


class ProveNewKey(Proof):
    """OpenSSH with only the new key: sftp lists dvc_storage as storage_user, git ls-remote works."""

    name = "prove new key"

    def __init__(self, rotation: KeyRotation, settings: Settings, storage: str) -> None:
        self.rotation = rotation
        self.settings = settings
        self.storage = storage

    def plan(self, ctx: HostContext) -> Planned:
        client = self.rotation.client
        if client in ctx.state.exports(NOT_ONBOARDED_EXPORT).get(self.storage, []):
            raise ProvisionError(f"storage has no key line of {client}: onboard it first (`provision onboard "
                                 f"{client}`)")
        return None

    def prove(self, ctx: HostContext) -> str:
        settings, new_key = self.settings, self.rotation.new_key
        info = self.rotation.at(new_key)
        steps = [(sftp_list_argv(info, settings, settings.storage_user, settings.sftp_dvc_storage),
                  f"sftp as {settings.storage_user} with {new_key}")]
        if settings.git_remote_is_path:
            steps.append((["git", "-C", info.workdir, "-c", f"core.sshCommand={git_ssh_command(info)}", "ls-remote",
                           "--quiet", "origin"], f"git ls-remote with {new_key}"))
        for argv, what in steps:
            result = ctx.storage_run(argv)
            if not result.ok:
                raise ProvisionError(f"{command_error(f'proof of the new key: {what}', result)}; the old key "
                                     f"{self.rotation.info.key} stays authorized and in use")
        return f"sftp{' and git ls-remote' if settings.git_remote_is_path else ''} work with {new_key} only"


def dvc_status_cloud(ctx: HostContext, info: ClientInfo, settings: Settings, dvc: str) -> str:
    """'' when `dvc status -c` reaches the remote with the checkout's config, else what it said."""
    status = ctx.storage_run(dvc_argv(dvc, "--cd", info.workdir, "status", "--cloud", "--remote", settings.dvc_remote),
                             timeout=DVC_PROOF_TIMEOUT)
    return "" if status.ok else status.detail


class _KeyInUse:
    """config.local's keyfile and core.sshCommand naming one key path, planned with onboarding's tasks."""

    def __init__(self, rotation: KeyRotation, settings: Settings, shared_cache: str | None, path: str) -> None:
        info = rotation.at(path)
        self.path = path
        self.checkout_fact = CheckoutFact(info.workdir)
        self.tasks: list[Task] = [DvcClientConfig(info, settings, shared_cache), Checkout(info, settings)]

    def facts(self) -> list[Fact]:
        return [fact for task in self.tasks for fact in task.facts()]

    def plan(self, ctx: HostContext) -> list[Change]:
        """The changes onboarding's tasks would make; their notes (checkout found...) are not this step's."""
        checkout: CheckoutState = ctx.fact(self.checkout_fact)
        if checkout.kind != "checkout":
            raise ProvisionError(f"no checkout in {self.checkout_fact.workdir} ({checkout.kind}): run "
                                 "`provision onboard` first")
        notes = list(ctx.notes)
        changes = [change for task in self.tasks for change in changes_of(task.plan(ctx))]
        ctx.notes = notes
        return changes

    def switch(self, ctx: HostContext) -> None:
        """Plan against the current files and apply."""
        for change in self.plan(ctx):
            ctx.apply_now(change)


class SwitchToNewKey(Proof):
    """config.local's keyfile and core.sshCommand switched to the new key, then `dvc status -c` proves it.

    A failed proof switches back to the old key, which is still authorized, and fails the client.
    """

    name = "switch to new key"

    def __init__(self, rotation: KeyRotation, settings: Settings, shared_cache: str | None, dvc: str) -> None:
        self.rotation = rotation
        self.settings = settings
        self.dvc = dvc
        self.new = _KeyInUse(rotation, settings, shared_cache, rotation.new_key)
        self.old = _KeyInUse(rotation, settings, shared_cache, rotation.info.key)

    def facts(self) -> Sequence[Fact]:
        return self.new.facts()

    def plan(self, ctx: HostContext) -> Planned:
        changes = self.new.plan(ctx)
        if not changes:
            ctx.note(f"config.local and core.sshCommand name {self.rotation.new_key}")
        return changes

    def prove(self, ctx: HostContext) -> str:
        """`dvc status -c` with the new key; when it fails, back to the old key, and the client fails."""
        problem = dvc_status_cloud(ctx, self.rotation.at(self.rotation.new_key), self.settings, self.dvc)
        if not problem:
            return "dvc status -c works with it"
        self.old.switch(ctx)
        raise ProvisionError(f"proof of the new key: dvc status -c -r {self.settings.dvc_remote} with "
                             f"{self.rotation.new_key} failed: {problem}; switched back to the old key "
                             f"{self.rotation.info.key}, which stays authorized and in use")


class RetireOldKey(Task):
    """The new pair moved to client_key (the old private key is deleted with it), config.local and
    core.sshCommand back on client_key, `<client_key>.new` removed."""

    name = "retire old key"

    def __init__(self, rotation: KeyRotation, settings: Settings, shared_cache: str | None) -> None:
        self.rotation = rotation
        self.final = _KeyInUse(rotation, settings, shared_cache, rotation.info.key)

    def facts(self) -> Sequence[Fact]:
        return self.final.facts()

    def plan(self, ctx: HostContext) -> Planned:
        """The move, config.local and core.sshCommand naming client_key again, the `.new` files gone."""
        key, new_key = self.rotation.info.key, self.rotation.new_key

        def remove_new_key() -> None:
            ctx.run(["rm", "-f", "--", new_key, f"{new_key}.pub"], f"removing {new_key}")
            ctx.note(f"{key} is {key_fingerprint(self.rotation.new_public or '')}")

        return [Change(f"move {new_key} to {key} (the old private key is deleted)",
                       lambda: ctx.run(script(_INSTALL_NEW_KEY, key, new_key), f"moving {new_key} to {key}")),
                *self.final.plan(ctx),
                Change(f"remove {new_key}", remove_new_key)]


@dataclass
class RotationSummary(Task):
    """What this run left undone, so nobody has to read the whole log: which clients and how to finish."""

    subject: str
    selected: Sequence[str]
    left_out: Sequence[str]
    rerun: str

    name = "summary"

    def plan(self, ctx: HostContext) -> Change | None:
        pending = [f"{client} ({ctx.state.report(client).status})" for client in self.selected
                   if ctx.state.broken(client)]
        pending += [f"{client} (not selected)" for client in self.left_out]
        if ctx.check:
            ctx.note(f"{self.subject}: nothing done under --check")
            return None
        if not pending:
            ctx.note(f"{self.subject}: all {len(self.selected)} client(s) done")
            return None
        names = ",".join(entry.split(" ", 1)[0] for entry in pending)
        ctx.note(f"{self.subject}: not yet done: {', '.join(pending)}; to finish: {self.rerun} --limit {names}")
        return None
