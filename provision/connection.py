"""SSH sessions to inventory hosts, with host keys verified on every hop.

Fabric's `Connection` auto-accepts unknown host keys (paramiko `AutoAddPolicy`), and so do the
gateway connections it builds from `ProxyJump`. Every `Connection` here is built by this module,
hops included, and given the pinned keys and a rejecting policy before it opens. `~/.ssh/config`
is read here (Host alias, HostName, User, Port, IdentityFile, ProxyJump) rather than by Fabric, so
no hop escapes that rule.
"""

from __future__ import annotations

import getpass
import hashlib
import io
import logging
import os
import random
import secrets
import socket
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import fabric
import invoke
import paramiko

from provision.errors import ProvisionError
from provision.inventory import Host
from provision.known_hosts_file import DEFAULT_KNOWN_HOSTS, changed_key_message, known_hosts_name, pin_keys
from provision.remote import privileged_line, quote_argv, script

# paramiko logs expected refusals (e.g. a key type the server lacks) with tracebacks to stderr when
# nothing else handles its logger; the tool reports failures itself, in one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

#: Concurrent connection attempts per target: below sshd's MaxStartups start (10).
CONNECT_SLOTS_PER_TARGET = 4
CONNECT_ATTEMPTS = 6


class UnreachableError(ProvisionError):
    """The host could not be reached or refused us (host key, authentication, network)."""


class HostKeyError(UnreachableError):
    """The host's key is unknown or differs from the pinned one."""


class CommandTimeout(ProvisionError):
    """A remote command ran past --timeout."""


#: How OpenSSH's client begins the line that says why a connection failed: before authentication
#: (connect, key exchange, host key), or later, when the server went away in the middle of a command
#: ("Connection to HOST closed by remote host.", "Read from remote host HOST: ...", "client_loop: send
#: disconnect: Broken pipe", "Timeout, server HOST not responding.").
_SSH_CLIENT_FAILURES = ("ssh: ", "kex_exchange_identification: ", "Connection closed by ", "Connection reset by ",
                        "Host key verification failed", "Connection to ", "Read from remote host ", "client_loop: ",
                        "Disconnected from ", "Timeout, server ")


@dataclass(frozen=True)
class CommandResult:
    """What a command returned."""

    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    @property
    def detail(self) -> str:
        """Why it failed, in one line: OpenSSH's own line when a connection it made failed (git and sftp bury
        it under advice), else the last two lines of stderr (else stdout), which name the cause."""
        lines = [line.strip() for line in (self.stderr or self.stdout).splitlines() if line.strip()]
        cause = next((line for line in lines if line.startswith(_SSH_CLIENT_FAILURES)), None)
        if cause is not None:
            return f"{cause} / {lines[-1]}" if lines[-1] != cause else cause
        return " / ".join(lines[-2:]) if lines else f"exit {self.rc}"


@dataclass(frozen=True)
class SSHTarget:
    """Where and as whom to connect, after `~/.ssh/config` and inventory vars are applied."""

    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...] = ()
    jumps: tuple[SSHTarget, ...] = ()

    @property
    def label(self) -> str:
        return known_hosts_name(self.hostname, self.port)


@dataclass
class HostKeyOptions:
    """How host keys are checked for one run."""

    pins_path: Path
    accept_new: bool = False
    check: bool = False
    newly_pinned: list[str] = field(default_factory=list)

    def load_into(self, client: paramiko.SSHClient) -> None:
        """The inventory's pins first; for a host they do not name, ~/.ssh/known_hosts (hashed too)."""
        if self.pins_path.exists():
            client.load_system_host_keys(str(self.pins_path))
        default = DEFAULT_KNOWN_HOSTS.expanduser()
        if default.exists():
            client.load_host_keys(str(default))

    def pin_new(self, name: str, key: paramiko.PKey) -> None:
        """Pin a first-seen key (`--accept-new-hostkeys`), or only say so under --check."""
        verb = "would pin" if self.check else "pinned"
        self.newly_pinned.append(f"{verb} {name} {key.get_name()} {key.fingerprint}")
        if not self.check:
            hostname, port = _split_known_hosts_name(name)
            pin_keys(self.pins_path, hostname, port, [key])


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """Refuse a host that is not pinned, saying how to pin it."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostKeyError(
            f"host key of {hostname} is not pinned ({key.get_name()} {key.fingerprint}); "
            "run `provision hostkeys scan` or pass --accept-new-hostkeys"
        )


class _PinNewHost(paramiko.MissingHostKeyPolicy):
    """Accept and pin a host seen for the first time; a changed key is still refused by paramiko."""

    def __init__(self, options: HostKeyOptions) -> None:
        self.options = options

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        self.options.pin_new(hostname, key)


def _split_known_hosts_name(name: str) -> tuple[str, int]:
    if name.startswith("[") and "]:" in name:
        host, port = name[1:].split("]:", 1)
        return host, int(port)
    return name, 22


def _ssh_config() -> paramiko.SSHConfig:
    path = Path("~/.ssh/config").expanduser()
    if path.is_file():
        return paramiko.SSHConfig.from_path(str(path))
    return paramiko.SSHConfig()


def _parse_jump(spec: str) -> tuple[str | None, str, int | None]:
    """`user@host:port` of a ProxyJump entry."""
    user = None
    if "@" in spec:
        user, spec = spec.split("@", 1)
    port = None
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif spec.count(":") == 1:
        host, port_text = spec.split(":")
        port = int(port_text)
    else:
        host = spec
    return user, host, port


def _lookup(config: paramiko.SSHConfig, name: str, user: str | None, port: int | None,
            key_file: str | None, depth: int = 0) -> SSHTarget:
    """Apply ~/.ssh/config to a name; explicit values (inventory vars) win, as with Ansible."""
    if depth > 8:
        raise ProvisionError(f"ProxyJump chain too long at {name} (~/.ssh/config)")
    entry = config.lookup(name)
    hostname = entry.get("hostname", name)
    jumps: tuple[SSHTarget, ...] = ()
    proxy_jump = entry.get("proxyjump")
    if proxy_jump and proxy_jump.lower() != "none":
        jumps = tuple(
            _lookup(config, jump_host, jump_user, jump_port, None, depth + 1)
            for jump_user, jump_host, jump_port in map(_parse_jump, proxy_jump.split(","))
        )
    keys = (key_file,) if key_file else tuple(entry.get("identityfile", ()))
    return SSHTarget(
        hostname=hostname,
        port=port or int(entry.get("port", 22)),
        user=user or entry.get("user") or getpass.getuser(),
        key_files=tuple(os.path.expanduser(k) for k in keys),
        jumps=jumps,
    )


def resolve_target(host: Host) -> SSHTarget:
    """The SSH target of an inventory host."""
    return _lookup(_ssh_config(), host.address, host.user, host.port, host.key_file)


class _TargetSlots:
    """Connection attempts in flight to one target; the cap halves whenever the target sheds load."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self._ready = threading.Condition()

    def __enter__(self) -> _TargetSlots:
        with self._ready:
            self._ready.wait_for(lambda: self.active < self.limit)
            self.active += 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._ready:
            self.active -= 1
            self._ready.notify_all()

    def shed(self) -> None:
        """sshd dropped us before authentication (MaxStartups): fewer attempts at once from now on."""
        with self._ready:
            self.limit = max(1, self.limit // 2)


class _ConnectLimiter:
    """Caps simultaneous connection attempts per target so sshd's MaxStartups never fails a run."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, int], _TargetSlots] = {}
        self._lock = threading.Lock()

    def slot(self, target: SSHTarget) -> _TargetSlots:
        key = (target.hostname, target.port)
        with self._lock:
            if key not in self._slots:
                self._slots[key] = _TargetSlots(CONNECT_SLOTS_PER_TARGET)
            return self._slots[key]


_LIMITER = _ConnectLimiter()


def _is_transient(error: BaseException) -> bool:
    """Errors sshd gives when it sheds load before authentication (MaxStartups, resets)."""
    if isinstance(error, (ConnectionResetError, EOFError, BrokenPipeError)):
        return True
    if isinstance(error, paramiko.SSHException):
        text = str(error)
        shed = "Error reading SSH protocol banner" in text and "timed out" not in text
        return shed or "Connection reset" in text
    return False


def _is_refused(error: BaseException) -> bool:
    """Nothing listens on the port: sshd re-executing itself after a reload gives this for a moment."""
    return isinstance(error, paramiko.ssh_exception.NoValidConnectionsError | ConnectionRefusedError)


class Session(Protocol):
    """What tasks may do on a host: run argv lists, stage and upload bytes."""

    label: str
    timeout: float

    def run(self, argv: Sequence[str], *, privileged: bool = False,
            timeout: float | None = None) -> CommandResult: ...

    def run_line(self, command: str, *, privileged: bool = False,
                 timeout: float | None = None) -> CommandResult: ...

    def upload(self, data: bytes, path: str, mode: int = 0o600) -> None: ...

    def stage(self, data: bytes) -> str: ...

    def start_holder(self, argv: Sequence[str]) -> Holder: ...

    def close(self) -> None: ...


class Holder(Protocol):
    """A remote command that lives while its stdin is open (and no longer than the session): it holds
    a lock, and says how that went in lines of output."""

    def readline(self, timeout: float) -> str:
        """Its next line of output ("" once it ended); at most `timeout` seconds of silence."""
        ...

    def release(self) -> None:
        """Close its stdin: it ends, and whatever it held is released."""


@dataclass(frozen=True)
class _Escalation:
    """A command line as it runs, with sudo's prompt for this one command and what goes to its stdin."""

    line: str
    prompt: str | None = None
    stdin: str | None = None

    def stderr(self, label: str, rc: int, stderr: str) -> str:
        """The command's stderr without sudo's prompt; a password sudo asked for twice was refused."""
        if self.prompt is None:
            return stderr
        if rc != 0 and stderr.count(self.prompt) > 1:
            raise ProvisionError(f"{label}: sudo refused the become password")
        return stderr.replace(self.prompt, "")


@dataclass(frozen=True)
class Become:
    """`ansible_become`: privileged commands go through sudo, with the become password if known.

    The password goes to sudo's stdin, followed by end of file, under a fresh random prompt per
    command; sudo reads it before anything runs (`-k`), and the command itself starts with stdin on
    /dev/null (see provision.remote.privileged_line). No output is ever answered, so a command that
    prints the prompt (on stdout or stderr) cannot obtain the password.
    """

    enabled: bool = False
    user: str = "root"
    password: str | None = None

    def escalate(self, command: str, privileged: bool) -> _Escalation:
        if not (privileged and self.enabled):
            return _Escalation(command)
        if self.password is None:
            return _Escalation(privileged_line(command, None, self.user))
        prompt = f"[provision sudo {secrets.token_hex(8)}] "
        return _Escalation(privileged_line(command, prompt, self.user), prompt, self.password + "\n")


STAGING_PATTERN = "/tmp/.provision-stage.XXXXXXXX"

#: Makes a staging directory, locks it, prints its path, then holds the lock until stdin closes,
#: which happens when the session ends however it ends (closed, connection lost, tool killed): the
#: lock is how STALE_STAGING tells a live run's directory from a dead one's. $1 the mktemp pattern.
HOLD_STAGING = """
dir=$(mktemp -d "$1") || exit 1
exec flock -x "$dir" sh -c 'printf "%s\\n" "$1"; exec cat >/dev/null' hold "$dir"
"""

#: `stale_staging remove|list`: the connecting user's staging directories that no live run holds (not
#: locked) and that are over a minute old (a run locks its own within moments of making it).
#: Prints each one removed (or that would be).
STALE_STAGING_FUNCTION = """
stale_staging() {
  for dir in /tmp/.provision-stage.*; do
    [ -d "$dir" ] && [ ! -L "$dir" ] && [ -O "$dir" ] || continue
    [ -n "$(find "$dir" -maxdepth 0 -mmin +1)" ] || continue
    if [ "$1" = remove ]; then
      flock -n -x "$dir" rm -rf -- "$dir" && printf '%s\\n' "$dir"
    else
      flock -n -x "$dir" true && printf '%s\\n' "$dir"
    fi
  done
}
"""

#: $1 `remove` or `list`: STALE_STAGING_FUNCTION.
STALE_STAGING = STALE_STAGING_FUNCTION + """
stale_staging "$1"
exit 0
"""


#: Random bytes appended to every staged file; the file is named after the SHA-256 of content and seal.
SEAL_BYTES = 32

#: Shell function for scripts that read a file staged by `Session.stage`: `staged_content FILE` prints its
#: content, read once and never through a link, and fails unless the whole file hashes to its name. The
#: staging directory belongs to the connecting user, so any process of that user could rewrite the file
#: between upload and install (root would then install, or chpasswd, what that process chose); without
#: the seal it cannot make a file with that digest, and someone who sees the name in `ps` cannot test
#: guesses of a secret against it.
STAGED_CONTENT = f"""
staged_content() {{
  staged_sealed=$(dd if="$1" iflag=nofollow,nonblock status=none | base64 -w0)
  if [ "$(printf '%s' "$staged_sealed" | base64 -d | sha256sum)" != "${{1##*/}}  -" ]; then
    printf 'staged file %s changed after its upload: refusing it\\n' "$1" >&2
    return 1
  fi
  printf '%s' "$staged_sealed" | base64 -d | head -c -{SEAL_BYTES}
}}
"""


def seal(data: bytes) -> tuple[str, bytes]:
    """A staged file's name and bytes: `data` and a random seal, named after their SHA-256 (STAGED_CONTENT)."""
    sealed = data + secrets.token_bytes(SEAL_BYTES)
    return hashlib.sha256(sealed).hexdigest(), sealed


class _Staging:
    """A private `mktemp -d` per session for files on their way to a privileged install.

    The session holds a lock on it while it lives, so a run that was killed or lost its connection
    leaves an unlocked directory that the next connection removes (`remove_stale_staging`).
    """

    def __init__(self) -> None:
        self.directory: str | None = None
        self._release: Callable[[], None] | None = None

    def path(self, session: _SessionBase, name: str) -> str:
        if self.directory is None:
            self.directory, self._release = session.hold(script(HOLD_STAGING, STAGING_PATTERN))
            if not self.directory.startswith(STAGING_PATTERN.rstrip("X")):
                self._release()
                self.directory, self._release = None, None
                raise ProvisionError(f"{session.label}: cannot make and lock a staging directory in /tmp "
                                     "(needs mktemp and flock)")
        return f"{self.directory}/{name}"

    def remove(self, session: _SessionBase) -> None:
        try:
            if self.directory is not None:
                session.run(["rm", "-rf", "--", self.directory])
        finally:
            if self._release is not None:
                self._release()
            self.directory, self._release = None, None


def remove_stale_staging(session: Session, *, check: bool) -> list[str]:
    """Staging directories of this user that runs which are gone left behind, removed unless `check`."""
    result = session.run(script(STALE_STAGING, "list" if check else "remove"))
    return result.stdout.split() if result.ok else []


class _SessionBase(ABC):
    """Argv lists and staged files, on top of each kind of session's command lines and uploads."""

    label: str

    def __init__(self) -> None:
        self._staging = _Staging()

    @abstractmethod
    def run_line(self, command: str, *, privileged: bool = False,
                 timeout: float | None = None) -> CommandResult:
        """Run a command line built by provision.remote (already quoted)."""

    @abstractmethod
    def upload(self, data: bytes, path: str, mode: int = 0o600) -> None:
        """Write bytes to a new path as the connecting user (mode set before any byte lands)."""

    timeout: float

    @abstractmethod
    def start_holder(self, argv: Sequence[str]) -> Holder:
        """Start argv as the connecting user with an open stdin. It ends when released or when the
        session ends, however that happens."""

    def hold(self, argv: Sequence[str]) -> tuple[str, Callable[[], None]]:
        """Start a holder; its first line of output, and how to end it."""
        holder = self.start_holder(argv)
        return holder.readline(self.timeout).strip(), holder.release

    def run(self, argv: Sequence[str], *, privileged: bool = False,
            timeout: float | None = None) -> CommandResult:
        """Run an argv list; `privileged` goes through sudo when the host uses ansible_become."""
        result = self.run_line(quote_argv(argv), privileged=privileged, timeout=timeout)
        return CommandResult(tuple(argv), result.rc, result.stdout, result.stderr)

    def stage(self, data: bytes) -> str:
        """Upload bytes into this session's private staging directory; returns the staged path.

        The file holds `data` and a random seal and is named after their digest: scripts read it with
        STAGED_CONTENT, which refuses it if anything changed it after the upload.
        """
        name, sealed = seal(data)
        path = self._staging.path(self, name)
        self.upload(sealed, path, 0o600)
        return path


class LoginStrategy(Protocol):
    """How a session authenticates instead of with keys and the agent (paramiko's `auth_strategy`)."""

    def authenticate(self, transport: paramiko.Transport) -> None: ...


#: Every Fabric setting our sessions use. The Config is lazy: no /etc/fabric.* or ~/.fabric.* file (YAML,
#: JSON or Python) is read, so none can add key files, run commands under a PTY (which would echo sudo's
#: password into the output), replace the login strategy (`authentication.strategy_class`) or load ssh_config.
SESSION_CONFIG = {"load_ssh_configs": False, "run": {"hide": True, "warn": True}}


class SSHSession(_SessionBase):
    """A Fabric connection with verified host keys, retries and privilege escalation.

    `login` replaces key and agent authentication on the target itself (its jump hosts keep theirs);
    `retry_refused` also retries a refused connection, as an sshd re-executing after a reload gives.
    """

    def __init__(self, target: SSHTarget, keys: HostKeyOptions, *, timeout: float,
                 become: Become = Become(), login: LoginStrategy | None = None, retry_refused: bool = False) -> None:
        super().__init__()
        self.target = target
        self.label = target.label
        self.timeout = timeout
        self._become = become
        self._keys = keys
        self._login = login
        self._retry_refused = retry_refused
        self._hops: list[fabric.Connection] = []
        #: Holders started on this connection and not released: what they hold goes if it drops.
        self._holders: set[_ChannelHolder] = set()
        self.connection = self._chain(target, login=login)

    def _chain(self, target: SSHTarget, gateway: fabric.Connection | None = None, *,
               login: LoginStrategy | None = None) -> fabric.Connection:
        """A connection to `target` through its jump hosts (each with its own jumps), none opened yet."""
        if gateway is None:
            for jump in target.jumps:
                gateway = self._chain(jump, gateway)
        connection = self._single_connection(target, gateway, login)
        self._hops.append(connection)
        return connection

    def _single_connection(self, target: SSHTarget, gateway: fabric.Connection | None,
                           login: LoginStrategy | None) -> fabric.Connection:
        config = fabric.Config(lazy=True, overrides=SESSION_CONFIG)
        connect_kwargs: dict[str, object] = {"banner_timeout": self.timeout, "auth_timeout": self.timeout}
        if login is not None:  # paramiko then runs the strategy alone: no key file, no agent, no other method
            connect_kwargs["auth_strategy"] = login
        else:
            connect_kwargs["look_for_keys"] = not target.key_files
            if target.key_files:
                connect_kwargs["key_filename"] = list(target.key_files)
        connection = fabric.Connection(
            host=target.hostname, user=target.user, port=target.port, config=config,
            gateway=gateway if gateway is not None else False, forward_agent=False,
            connect_timeout=max(1, int(self.timeout)), connect_kwargs=connect_kwargs,
        )
        self._keys.load_into(connection.client)
        policy = _PinNewHost(self._keys) if self._keys.accept_new else _RefuseUnknownHost()
        connection.client.set_missing_host_key_policy(policy)
        return connection

    def _close_hops(self) -> None:
        for hop in reversed(self._hops):
            hop.close()
        self._hops = []

    def open(self) -> None:
        """Connect with retries and backoff, at most a few attempts per target at once."""
        last: BaseException | None = None
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                with _LIMITER.slot(self.target):
                    self.connection.open()
                return
            except paramiko.BadHostKeyException as error:
                self._close_hops()
                raise HostKeyError(changed_key_message(error.hostname, error.expected_key, error.key,
                                                       self.target.hostname)) from None
            except ProvisionError:  # host key not pinned, or the login strategy's verdict
                self._close_hops()
                raise
            except paramiko.AuthenticationException as error:
                self._close_hops()
                raise UnreachableError(f"{self.target.user}@{self.label}: authentication failed ({error})") \
                    from None
            except (OSError, EOFError, paramiko.SSHException) as error:
                last = error
                self._close_hops()
                restarting = self._retry_refused and _is_refused(error)
                if not (restarting or _is_transient(error)):
                    break
                if not restarting:
                    _LIMITER.slot(self.target).shed()
                if attempt + 1 < CONNECT_ATTEMPTS:
                    time.sleep(0.2 * 2**attempt + random.uniform(0, 0.2))
                    self.connection = self._chain(self.target, login=self._login)
        raise UnreachableError(f"{self.label}: {_describe(last)}")

    def _reconnect_if_lost(self) -> None:
        """Connect again after a lost connection, unless a lock (the host's, the staging directory's) went with it:
        another run may have changed the host meanwhile, or removed the staging directory. A holder that ended
        on a live connection (its process killed on the host) released its lock as well: nothing more runs."""
        if any(holder.ended() for holder in self._holders):
            raise UnreachableError(f"{self.label}: the command holding this run's lock on the host (or on its "
                                   "staging directory) ended before the run did: run again")
        if self.connection.is_connected:
            return
        if self._holders:
            raise UnreachableError(f"{self.label}: connection lost, and with it this run's lock on the host "
                                   "(or on its staging directory): run again")
        self.open()

    def run_line(self, command: str, *, privileged: bool = False,
                 timeout: float | None = None) -> CommandResult:
        """Run a command line built by provision.remote (already quoted)."""
        self._reconnect_if_lost()
        escalation = self._become.escalate(command, privileged)
        stdin = io.StringIO(escalation.stdin) if escalation.stdin is not None else False
        limit = timeout or self.timeout
        try:
            result = self.connection.run(escalation.line, hide=True, warn=True, in_stream=stdin, timeout=limit)
        except invoke.exceptions.CommandTimedOut:
            raise CommandTimeout(f"{self.label}: a command ran longer than {limit:g}s") from None
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise UnreachableError(f"{self.label}: connection lost ({_describe(error)})") from None
        stderr = escalation.stderr(self.label, result.exited, result.stderr)
        return CommandResult((), result.exited, result.stdout, stderr)

    def upload(self, data: bytes, path: str, mode: int = 0o600) -> None:
        """Write bytes to a new path as the connecting user (mode set before any byte lands)."""
        self._reconnect_if_lost()
        sftp = self.connection.sftp()
        with sftp.open(path, "wx") as handle:
            sftp.chmod(path, mode)
            handle.write(data)

    def start_holder(self, argv: Sequence[str]) -> Holder:
        self._reconnect_if_lost()
        try:
            channel = self.connection.transport.open_session(timeout=self.timeout)
            channel.exec_command(quote_argv(argv))
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise UnreachableError(f"{self.label}: connection lost ({_describe(error)})") from None
        holder = _ChannelHolder(channel, self.label, self._holders.discard)
        self._holders.add(holder)
        return holder

    def tunnel(self, target: SSHTarget, timeout: float) -> paramiko.Channel:
        """A direct-tcpip channel from this host to `target` (this session being its last jump host)."""
        return self.connection.transport.open_channel("direct-tcpip", (target.hostname, target.port),
                                                      ("127.0.0.1", 0), timeout=timeout)

    def close(self) -> None:
        """Remove the staging directory and close every hop."""
        try:
            if self.connection.is_connected:
                self._staging.remove(self)
        finally:
            self._close_hops()


class LocalSession(_SessionBase):
    """`ansible_connection: local`: the same interface, run on this machine."""

    def __init__(self, *, timeout: float, become: Become = Become()) -> None:
        super().__init__()
        self.label = "localhost"
        self.timeout = timeout
        self._become = become

    def run_line(self, command: str, *, privileged: bool = False,
                 timeout: float | None = None) -> CommandResult:
        escalation = self._become.escalate(command, privileged)
        stdin = escalation.stdin.encode() if escalation.stdin is not None else None
        limit = timeout or self.timeout
        try:
            done = subprocess.run(["sh", "-c", escalation.line], input=stdin,
                                  stdin=None if stdin is not None else subprocess.DEVNULL,
                                  capture_output=True, timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            raise CommandTimeout(f"localhost: a command ran longer than {limit:g}s") from None
        stderr = escalation.stderr(self.label, done.returncode, done.stderr.decode(errors="replace"))
        return CommandResult((), done.returncode, done.stdout.decode(errors="surrogateescape"), stderr)

    def start_holder(self, argv: Sequence[str]) -> Holder:
        process = subprocess.Popen(["sh", "-c", quote_argv(argv)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return _ProcessHolder(process, self.timeout)

    def upload(self, data: bytes, path: str, mode: int = 0o600) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with io.FileIO(fd, "w") as handle:
            handle.write(data)

    def close(self) -> None:
        self._staging.remove(self)


class _ChannelHolder:
    """A holder on its own channel of an SSH session."""

    def __init__(self, channel: paramiko.Channel, label: str,
                 released: Callable[[_ChannelHolder], None]) -> None:
        self._channel = channel
        self._output = channel.makefile("r")
        self._label = label
        self._released = released

    def readline(self, timeout: float) -> str:
        self._channel.settimeout(timeout)
        try:
            return self._output.readline()
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise UnreachableError(f"{self._label}: connection lost ({_describe(error)})") from None

    def ended(self) -> bool:
        """Whether the remote command ended (or closed its output) while still held: its lock is gone."""
        return self._channel.exit_status_ready() or self._channel.eof_received

    def release(self) -> None:
        self._released(self)
        self._channel.close()


class _ProcessHolder:
    """A holder run on this machine (`ansible_connection: local`)."""

    def __init__(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        self._process = process
        self._timeout = timeout

    def readline(self, timeout: float) -> str:
        assert self._process.stdout is not None
        return self._process.stdout.readline().decode(errors="replace")

    def release(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=self._timeout)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unreachable"
    if isinstance(error, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused"
    if isinstance(error, TimeoutError | OSError) and "timed out" in str(error):
        return "connection timed out"
    text = str(error) or type(error).__name__
    if "No existing session" in text or "timed out" in text or "Error reading SSH protocol banner" in text:
        return "no SSH banner in time (host hung or overloaded)"
    return text.splitlines()[0]


def open_session(host: Host, keys: HostKeyOptions, *, timeout: float,
                 become_password: str | None = None) -> Session:
    """A connected session to an inventory host."""
    become = Become(host.become, host.become_user, become_password)
    if host.connection == "local":
        return LocalSession(timeout=timeout, become=become)
    session = SSHSession(resolve_target(host), keys, timeout=timeout, become=become)
    session.open()
    return session


def open_last_jump(target: SSHTarget, keys: HostKeyOptions, *, timeout: float) -> SSHSession:
    """An open session to `target`'s last jump host (through the hops before it), to tunnel to `target`."""
    last = target.jumps[-1]
    jump = SSHSession(SSHTarget(last.hostname, last.port, last.user, last.key_files, target.jumps[:-1]),
                      keys, timeout=timeout)
    jump.open()
    return jump


class PasswordLoginDisabled(ProvisionError):
    """sshd does not offer password authentication to the account."""


class _OfferedMethods:
    """Login strategy that only asks which methods sshd offers the user (SSH's `none` authentication)."""

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
    """Login strategy: the password method alone (no keys, no agent, no keyboard-interactive)."""

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


class AccountLogin:
    """Fresh logins from the controller to a host as one of its accounts: by password alone, or only to
    ask which methods sshd offers the account now (the running sshd, not its files).

    Each login is an SSHSession with those connect arguments: the host's route (ProxyJump hops log in
    with their own keys), the pins in `pins_path` (else ~/.ssh/known_hosts) and the one retry loop,
    refused connections included. A password goes only to a host whose key was pinned before: a
    first-seen key is refused even under --accept-new-hostkeys.
    """

    def __init__(self, host: Host, pins_path: Path, *, timeout: float) -> None:
        self.host = host
        self.keys = HostKeyOptions(pins_path)
        self.timeout = timeout

    def offered_methods(self, user: str) -> list[str]:
        """The authentication methods sshd offers `user`."""
        strategy = _OfferedMethods(user)
        with self._session(user, strategy):
            return strategy.methods

    def password_accepted(self, user: str, password: str, directory: str) -> bool:
        """Whether `user` logs in with `password` and lists `directory` over SFTP.

        False when sshd refuses the password; PasswordLoginDisabled when it offers no password login.
        """
        strategy = _PasswordOnly(user, password)
        with self._session(user, strategy) as session:
            if not strategy.accepted:
                return False
            try:
                session.connection.sftp().listdir(directory)
            except (OSError, paramiko.SSHException) as error:
                raise ProvisionError(f"{user} logged in with the password but listing {directory} over SFTP "
                                     f"failed: {error}") from None
        return True

    @contextmanager
    def _session(self, user: str, strategy: LoginStrategy) -> Iterator[SSHSession]:
        target = replace(resolve_target(self.host), user=user, key_files=())
        session = SSHSession(target, self.keys, timeout=self.timeout, login=strategy, retry_refused=True)
        session.open()
        try:
            yield session
        finally:
            session.close()


#: Host key algorithms asked for one by one, so that every key a server offers is seen.
SCANNED_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512")


def scan_host_keys(host: Host, keys: HostKeyOptions, *, timeout: float) -> list[paramiko.PKey]:
    """The host keys a server offers, read without authenticating (through verified jump hosts)."""
    target = resolve_target(host)
    found: list[paramiko.PKey] = []
    jump = open_last_jump(target, keys, timeout=timeout) if target.jumps else None
    try:
        for key_type in SCANNED_KEY_TYPES:
            key = _offered_key(target, key_type, timeout, jump)
            if key is not None:
                found.append(key)
    finally:
        if jump is not None:
            jump.close()
    if not found:
        raise UnreachableError(f"{target.label}: offered no host key")
    return found


def _offered_key(target: SSHTarget, key_type: str, timeout: float,
                 jump: SSHSession | None) -> paramiko.PKey | None:
    """The server's key of one type, or None if it has none of that type."""
    with _LIMITER.slot(target):
        try:
            if jump is not None:
                sock = jump.tunnel(target, timeout)
            else:
                sock = socket.create_connection((target.hostname, target.port), timeout=timeout)
        except OSError as error:
            raise UnreachableError(f"{target.label}: {_describe(error)}") from None
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = timeout
            transport.get_security_options().key_types = [key_type]
            transport.start_client(timeout=timeout)
            return transport.get_remote_server_key()
        except paramiko.SSHException as error:
            if "Incompatible ssh" in str(error) or "no acceptable host key" in str(error):
                return None
            raise UnreachableError(f"{target.label}: {_describe(error)}") from None
        finally:
            transport.close()
