"""Pinned SSH host keys: the `<stem>.known_hosts` file beside the inventory.

The pins are a plain OpenSSH known_hosts file, so `ssh -o UserKnownHostsFile=...` and paramiko read
the same thing. Lines this module does not manage (comments, markers, unknown key types) are kept
as they are. Writes hold a lock (threads and processes) and are atomic; nothing here touches the
network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
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


def _pattern_matches(pattern: str, name: str) -> bool:
    """Whether one host pattern of a known_hosts line is `name`: plain, or hashed (`|1|salt|hash`)."""
    if pattern.startswith("|1|"):
        return paramiko.HostKeys.hash_host(name, pattern) == pattern
    return pattern == name


def _names_match(entry: HostKeyEntry, name: str) -> bool:
    """Whether a known_hosts entry names `name`, hashed entries included."""
    return any(_pattern_matches(pattern, name) for pattern in entry.hostnames)


def known_hosts_lines(content: str) -> list[str]:
    """The lines of a known_hosts file as OpenSSH reads them: split on newlines only.

    (`str.splitlines` also splits on \\v, \\f, \\x1c-\\x1e, \\x85 and \\u2028, which OpenSSH
    keeps inside a line: a foreign line must neither be cut in two nor become an entry.)
    """
    lines = content.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _fields(line: str) -> list[str]:
    """A line's fields as OpenSSH separates them: runs of spaces and tabs, leading ones skipped."""
    return [field for field in re.split("[ \t]+", line) if field]


class KnownHostsText:
    """The lines of a known_hosts file: looked up and changed, keeping every line it does not manage as is."""

    def __init__(self, content: str = "") -> None:
        self._lines: list[tuple[str, HostKeyEntry | None]] = [
            (line, self._parse(line)) for line in known_hosts_lines(content)]

    @staticmethod
    def _parse(line: str) -> HostKeyEntry | None:
        fields = _fields(line)
        if len(fields) < 3 or fields[0].startswith(("#", "@")):
            return None
        try:
            return HostKeyEntry.from_line(" ".join(fields[:3]))
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
        self._add_entry(known_hosts_name(hostname, port), key)

    def _add_entry(self, name: str, key: paramiko.PKey) -> None:
        entry = HostKeyEntry([one_line(name, "a pinned host name")], key)
        self._lines.append((entry.to_line().rstrip("\n"), entry))

    def remove(self, hostname: str, port: int) -> bool:
        """Forget every key of a host (in memory); says whether any was pinned."""
        name = known_hosts_name(hostname, port)
        kept = [(line, e) for line, e in self._lines if e is None or not _names_match(e, name)]
        removed = len(kept) != len(self._lines)
        self._lines = kept
        return removed

    def pin_exactly(self, name: str, keys: Sequence[paramiko.PKey]) -> None:
        """Exactly `keys` for `name`: its entries with other keys lose that name (a line naming other hosts
        too keeps them), missing keys are added; every other line stays byte for byte."""
        one_line(name, "a pinned host name")
        wanted = [(key.get_name(), key.get_base64()) for key in keys]
        present: set[tuple[str, str]] = set()
        result: list[tuple[str, HostKeyEntry | None]] = []
        for line, entry in self._lines:
            if entry is None or not _names_match(entry, name):
                result.append((line, entry))
                continue
            kind_and_blob = (entry.key.get_name(), entry.key.get_base64())
            if kind_and_blob in wanted:
                present.add(kind_and_blob)
                result.append((line, entry))
                continue
            others = [pattern for pattern in entry.hostnames if not _pattern_matches(pattern, name)]
            if others:
                rest = re.split("[ \t]+", line.lstrip(" \t"), maxsplit=1)[1]
                rewritten = ",".join(others) + " " + rest
                result.append((rewritten, self._parse(rewritten)))
        self._lines = result
        for key in keys:
            if (key.get_name(), key.get_base64()) not in present:
                self._add_entry(name, key)

    def text(self) -> str:
        """The file's content: every line and a final newline."""
        return "".join(line + "\n" for line, _ in self._lines)


class KnownHosts(KnownHostsText):
    """A known_hosts file on this machine: read, extended and saved atomically."""

    def __init__(self, path: Path) -> None:
        super().__init__(path.read_text() if path.exists() else "")
        self.path = path

    def save(self) -> None:
        """Write the file atomically (same directory, fsync, rename), mode 0644."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, self.text(), 0o644)


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
