"""Pinned SSH host keys: the `<stem>.known_hosts` file beside the inventory.

The pins are a plain OpenSSH known_hosts file, so `ssh -o UserKnownHostsFile=...` and paramiko read
the same thing. Lines this module does not manage (comments, markers, unknown key types) are kept
as they are. Writes hold a lock (threads and processes) and are atomic; nothing here touches the
network.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry

from provision.local_files import atomic_write, exclusive_lock
from provision.render import one_line

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")


def known_hosts_name(hostname: str, port: int) -> str:
    """The name OpenSSH and paramiko look up: `host` on port 22, else `[host]:port`."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def changed_key_message(label: str, pinned: paramiko.PKey, offered: paramiko.PKey, host: str) -> str:
    """The one message for a host whose key differs from its pin."""
    return (f"host key of {label} CHANGED: pinned {pinned.fingerprint}, offered {offered.fingerprint} "
            f"({offered.get_name()}); refusing. If the change is expected: "
            f"`provision hostkeys forget {host}` then `provision hostkeys scan`")


@dataclass(frozen=True)
class PinnedKey:
    """One pinned key of one host."""

    name: str
    key_type: str
    fingerprint: str


def _names_match(entry: HostKeyEntry, name: str) -> bool:
    """Whether a known_hosts entry names `name`, hashed entries included."""
    for pattern in entry.hostnames:
        if pattern.startswith("|1|"):
            if paramiko.HostKeys.hash_host(name, pattern) == pattern:
                return True
        elif pattern == name:
            return True
    return False


class KnownHosts:
    """A known_hosts file: read, extended and saved, keeping lines it does not understand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: list[tuple[str, HostKeyEntry | None]] = []
        if path.exists():
            for line in path.read_text().splitlines():
                self._lines.append((line, self._parse(line)))

    @staticmethod
    def _parse(line: str) -> HostKeyEntry | None:
        if not line.strip() or line.lstrip().startswith(("#", "@")):
            return None
        try:
            return HostKeyEntry.from_line(line)
        except (paramiko.SSHException, ValueError):
            return None

    def _entries(self) -> Iterator[HostKeyEntry]:
        return (entry for _, entry in self._lines if entry is not None and entry.key is not None)

    def lookup(self, hostname: str, port: int) -> dict[str, paramiko.PKey]:
        """The pinned keys of a host by key type; empty when the host is unknown."""
        name = known_hosts_name(hostname, port)
        return {e.key.get_name(): e.key for e in self._entries() if _names_match(e, name)}

    def pins(self, hostname: str, port: int) -> list[PinnedKey]:
        """What is pinned for a host, for display."""
        name = known_hosts_name(hostname, port)
        return [PinnedKey(name, kind, key.fingerprint) for kind, key in self.lookup(hostname, port).items()]

    def add(self, hostname: str, port: int, key: paramiko.PKey) -> None:
        """Pin a key (in memory; `save` writes it)."""
        entry = HostKeyEntry([one_line(known_hosts_name(hostname, port), "a pinned host name")], key)
        self._lines.append((entry.to_line().rstrip("\n"), entry))

    def remove(self, hostname: str, port: int) -> bool:
        """Forget every key of a host (in memory); says whether any was pinned."""
        name = known_hosts_name(hostname, port)
        kept = [(line, e) for line, e in self._lines if e is None or not _names_match(e, name)]
        removed = len(kept) != len(self._lines)
        self._lines = kept
        return removed

    def save(self) -> None:
        """Write the file atomically (same directory, fsync, rename), mode 0644."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, "".join(line + "\n" for line, _ in self._lines), 0o644)


def trusted_keys(pins_path: Path, hostname: str, port: int) -> tuple[Path, dict[str, paramiko.PKey]]:
    """The keys connections verify a host with, by key type, and the file they come from.

    The inventory's pins, else ~/.ssh/known_hosts (hashed entries too), as paramiko looks them up.
    """
    for path in (pins_path, DEFAULT_KNOWN_HOSTS.expanduser()):
        keys = KnownHosts(path).lookup(hostname, port)
        if keys:
            return path, keys
    return pins_path, {}


@contextmanager
def locked(path: Path) -> Iterator[KnownHosts]:
    """The pins file loaded under a lock held against other threads and processes until saved."""
    resolved = path.resolve()
    resolved.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(resolved.parent / f".{resolved.name}.lock"):
        yield KnownHosts(resolved)


def pin_keys(path: Path, hostname: str, port: int, keys: Iterable[paramiko.PKey]) -> None:
    """Add keys for a host to the pins file, unless already there (the one way pins are written)."""
    with locked(path) as pins:
        present = pins.lookup(hostname, port)
        new = [key for key in keys if key.get_name() not in present]
        if new:
            for key in new:
                pins.add(hostname, port, key)
            pins.save()


def forget_host(path: Path, hostname: str, port: int, *, check: bool = False) -> bool:
    """Remove a host's pins; under --check only say whether there are any (no lock file either)."""
    if check:
        return bool(KnownHosts(path).lookup(hostname, port))
    with locked(path) as pins:
        removed = pins.remove(hostname, port)
        if removed:
            pins.save()
        return removed
