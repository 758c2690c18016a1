"""A client's own ed25519 key pair, generated on the client: the private key never crosses the network.

The key belongs to the connecting user (the login of the SSH session, not root under sudo), so its
paths are expanded against that user's home as `getent` reports it, whatever the session's privilege.
The public key and the resolved paths are exported for the storage and checkout phases.
"""

from __future__ import annotations

import base64
import getpass
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_ssh_public_key
from paramiko.pkey import UnknownKeyType

from provision.connection import resolve_target
from provision.engine import Change, HostContext, PlayState, Task
from provision.errors import ProvisionError
from provision.facts import PATH_STATE, Fact, FileState, KeyValues
from provision.inventory import Host, Settings
from provision.remote import BatchOutput, script

#: The export that carries a client's account, paths and public key to later phases.
CLIENT_EXPORT = "client"
KEY_TYPE = "ssh-ed25519"

#: Start of a script on a client key: $1 user, $2 key path (maybe ~/...). Sets `home` and `key` (the
#: path expanded against that home on the host itself), or prints "no-such-user" and stops.
KEY_PATH_PRELUDE = r"""
entry=$(getent passwd "$1") || { echo no-such-user; exit 0; }
home=$(printf '%s\n' "$entry" | cut -d: -f6)
case $2 in "~/"*) key=$home/${2#"~/"} ;; *) key=$2 ;; esac
"""

# $1 user, $2 key path (maybe ~/...). Prints home, primary group, key path, then the state of
# ~/.ssh, the private and the public key (PATH_STATE), then the public key's line: key-value lines.
_KEY_STATE = KEY_PATH_PRELUDE + PATH_STATE + r"""
printf 'home %s\ngroup %s\nkey %s\n' "$home" "$(id -gn -- "$1")" "$key"
printf 'ssh_dir %s\n' "$(path_state "$home/.ssh")"
printf 'private %s\n' "$(path_state "$key")"
printf 'public %s\n' "$(path_state "$key.pub")"
if [ -f "$key.pub" ]; then printf 'public_text %s\n' "$(head -n 1 -- "$key.pub")"; fi
"""

#: $1 key path, $2 comment: a fresh pair (ssh-keygen writes the private half 0600).
GENERATE_KEY = r"""
set -eu
mkdir -p -- "$(dirname -- "$1")"
rm -f -- "$1.pub"
ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1"
"""

#: $1 key path: the public half written again from the private key.
DERIVE_PUBLIC_KEY = ('set -eu; ssh-keygen -y -f "$1" > "$1.pub.tmp"; chmod 0644 "$1.pub.tmp"; '
                     'mv -f "$1.pub.tmp" "$1.pub"')

# $1 directory, $2 mode: created with that mode if missing, else set to it.
_ENSURE_DIR = 'set -eu; mkdir -p -m "$2" -- "$1"; chmod -- "$2" "$1"'


def key_marker(inventory_name: str, client: str) -> str:
    """The comment that names one client of one inventory, on its key and on its lines on storage."""
    return f"provision:{inventory_name}:{client}"


def connecting_user(host: Host) -> str:
    """The account the tool logs in as: it owns the key pair, the checkout and config.local."""
    if host.connection == "local":
        return getpass.getuser()
    return resolve_target(host).user


def expand_home(path: str, home: str) -> str:
    """`~/x` against a remote home; absolute paths as they are."""
    return f"{home.rstrip('/')}/{path[2:]}" if path.startswith("~/") else path


def parse_public_key(text: str) -> str:
    """`ssh-ed25519 BASE64` from a public key line, or ProvisionError: only that reaches storage.

    cryptography reads the key and writes it out again, so storage gets OpenSSH's own form of a
    well-formed ed25519 key whatever else the line held (options, comment, stray bytes).
    """
    fields = text.split()
    if len(fields) < 2 or fields[0] != KEY_TYPE:
        raise ProvisionError(f"expected an {KEY_TYPE} public key, found {fields[0] if fields else 'nothing'}")
    try:
        key = load_ssh_public_key(f"{fields[0]} {fields[1]}".encode())
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise ProvisionError(f"the public key is not a well-formed {KEY_TYPE} key")
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


@dataclass(frozen=True)
class KeyState:
    """The connecting user's home and group, the key's path, and what exists of the pair."""

    home: str
    group: str
    key: str
    ssh_dir: FileState
    private: FileState
    public: FileState
    public_text: str

    @property
    def ssh_dir_wrong(self) -> bool:
        """~/.ssh is missing or not 0700."""
        return not self.ssh_dir.exists or self.ssh_dir.mode != 0o700


@dataclass(frozen=True)
class KeyStateFact(Fact):
    """The key pair's state, its path expanded against the user's home on the host itself."""

    user: str
    path: str

    @property
    def key(self) -> tuple[str, str, str]:
        return ("client key", self.user, self.path)

    def argv(self) -> list[str]:
        return script(_KEY_STATE, self.user, self.path)

    def parse(self, output: BatchOutput) -> KeyState | None:
        values = KeyValues.parse(output.stdout)
        if output.rc != 0 or "public" not in values:  # no such user, or cut short
            return None
        return KeyState(
            home=values.get("home"), group=values.get("group"), key=values.get("key"),
            ssh_dir=FileState.from_stat(values.get("ssh_dir")), private=FileState.from_stat(values.get("private")),
            public=FileState.from_stat(values.get("public")), public_text=values.get("public_text"),
        )


@dataclass(frozen=True)
class ClientInfo:
    """What later phases need to know of a client: who it is on the host and where its files are."""

    name: str
    user: str
    group: str
    home: str
    key: str
    workdir: str
    public_key: str | None
    has_private_key: bool = False

    @property
    def ssh_dir(self) -> str:
        return f"{self.home.rstrip('/')}/.ssh"

    @property
    def known_hosts(self) -> str:
        return f"{self.ssh_dir}/known_hosts"


class _ClientKeyTask(Task):
    """A task on the connecting user's account and key pair, read on the client itself."""

    def __init__(self, host: Host) -> None:
        self.settings: Settings = host.settings
        self.client = host.name
        self.user = connecting_user(host)
        self.fact = KeyStateFact(self.user, self.settings.client_key)

    def facts(self) -> Sequence[Fact]:
        return (self.fact,)

    def _read(self, ctx: HostContext) -> tuple[KeyState, ClientInfo]:
        """The key pair's state, and what later phases learn of the client from it (no public key yet)."""
        state: KeyState | None = ctx.fact(self.fact)
        if state is None:
            raise ProvisionError(f"no account {self.user!r} on {self.client} (the connecting user)")
        info = ClientInfo(self.client, self.user, state.group, state.home, state.key,
                          expand_home(self.settings.workdir, state.home), None, state.private.exists)
        return state, info


class ClientKeyPair(_ClientKeyTask):
    """An ed25519 pair at `client_key` (private 0600, ~/.ssh 0700), made by ssh-keygen on the client."""

    name = "client key"

    def plan(self, ctx: HostContext) -> Change | None:
        state, info = self._read(ctx)
        if state.private.exists and not state.private.is_file:
            raise ProvisionError(f"{state.key} on {self.client} is a {state.private.kind}, not a key file")
        if state.ssh_dir.exists and not state.ssh_dir.is_dir:
            raise ProvisionError(f"{info.ssh_dir} on {self.client} is a {state.ssh_dir.kind}, not a directory: "
                                 "provision never follows it; make it a directory")
        steps: list[str] = []
        if state.ssh_dir_wrong:
            steps.append(f"{info.ssh_dir} 0700")
        if not state.private.exists:
            steps.append(f"generate {KEY_TYPE} key {state.key}")
        else:
            if state.private.mode != 0o600:
                steps.append(f"mode 0600 on {state.key}")
            if not state.public.exists:
                steps.append(f"derive {state.key}.pub")
            else:
                info = replace(info, public_key=parse_public_key(state.public_text))
        ctx.export(CLIENT_EXPORT, info)
        if not steps:
            ctx.note(f"{state.key} ({key_fingerprint(state.public_text)})")
            return None

        def apply() -> None:
            self._apply(ctx, info, state)

        return Change("; ".join(steps), apply)

    def _apply(self, ctx: HostContext, info: ClientInfo, state: KeyState) -> None:
        if state.ssh_dir_wrong:
            ctx.run(script(_ENSURE_DIR, info.ssh_dir, "0700"), f"creating {info.ssh_dir}")
        if not state.private.exists:
            comment = key_marker(self.settings.inventory_name, self.client)
            ctx.run(script(GENERATE_KEY, state.key, comment), f"ssh-keygen {state.key}")
        else:
            if state.private.mode != 0o600:
                ctx.run(["chmod", "0600", "--", state.key], f"chmod {state.key}")
            if not state.public.exists:
                ctx.run(script(DERIVE_PUBLIC_KEY, state.key), f"deriving {state.key}.pub")
        public = ctx.run(["head", "-n", "1", "--", f"{state.key}.pub"], f"reading {state.key}.pub")
        ctx.export(CLIENT_EXPORT, replace(info, public_key=parse_public_key(public.stdout), has_private_key=True))
        ctx.forget(self.fact)


class ClientAccount(_ClientKeyTask):
    """Resolves the connecting user's home, group and the client's paths; changes nothing."""

    name = "client account"

    def plan(self, ctx: HostContext) -> Change | None:
        state, info = self._read(ctx)
        if state.public.is_file:
            try:
                info = replace(info, public_key=parse_public_key(state.public_text))
            except ProvisionError as error:
                ctx.note(f"{state.key}.pub: {error}")
        ctx.export(CLIENT_EXPORT, info)
        ctx.note(f"{self.user} in {info.home}")
        return None


class RemoveKeyPair(Task):
    """`offboard --purge`: the client key pair deleted from the client."""

    name = "remove client key"

    def __init__(self, info: ClientInfo) -> None:
        self.info = info

    def plan(self, ctx: HostContext) -> Change | None:
        if self.info.public_key is None and not self.info.has_private_key:
            return None
        key = self.info.key

        def apply() -> None:
            ctx.run(["rm", "-f", "--", key, f"{key}.pub"], f"removing {key}")

        return Change(f"remove key pair {key}", apply)


def client_info(state: PlayState, host: Host) -> ClientInfo:
    """The client's exported info from an earlier phase (the engine leaves failed hosts out)."""
    info = state.report(host.name).exports.get(CLIENT_EXPORT)
    if info is None:
        raise ProvisionError(f"{host.name}: its account was not resolved in an earlier phase")
    return info


def key_fingerprint(public_key: str) -> str:
    """`ssh-ed25519 SHA256:...` as ssh-keygen -l shows it, for output instead of the key itself.

    ValueError, paramiko.SSHException or UnknownKeyType for what paramiko cannot read as a key.
    """
    kind, blob = public_key.split()[:2]
    return f"{kind} {paramiko.PKey.from_type_string(kind, base64.b64decode(blob)).fingerprint}"


_KEY_IN_TEXT = re.compile(r"\b(ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp\d+|sk-[a-z0-9@.-]+) "
                          r"([A-Za-z0-9+/]{16,}={0,2})")


def shorten_keys(text: str) -> str:
    """Every public key in `text` replaced by its fingerprint, so diffs stay short and comparable."""

    def fingerprint(match: re.Match[str]) -> str:
        try:
            return key_fingerprint(match.group(0))
        except (ValueError, paramiko.SSHException, UnknownKeyType):  # binascii.Error is a ValueError
            return match.group(0)

    return _KEY_IN_TEXT.sub(fingerprint, text)
