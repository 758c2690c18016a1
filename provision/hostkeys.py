"""Pinned SSH host keys: the `<stem>.known_hosts` file beside the inventory.

The pins are a plain OpenSSH known_hosts file, so `ssh -o UserKnownHostsFile=...` and paramiko read
the same thing. Writes are atomic; nothing here talks to the network.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import paramiko

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")


def known_hosts_name(hostname: str, port: int) -> str:
    """The name OpenSSH and paramiko look up: `host` on port 22, else `[host]:port`."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint, as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class PinnedKey:
    """One pinned key of one host."""

    name: str
    key_type: str
    fingerprint: str


class KnownHosts:
    """A known_hosts file, hashed entries included, that can be read, extended and saved."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys = paramiko.HostKeys()
        if path.exists():
            self.keys.load(str(path))

    def lookup(self, hostname: str, port: int) -> dict[str, paramiko.PKey]:
        """The pinned keys of a host by key type; empty when the host is unknown."""
        found = self.keys.lookup(known_hosts_name(hostname, port))
        return dict(found) if found else {}

    def pins(self, hostname: str, port: int) -> list[PinnedKey]:
        """What is pinned for a host, for display."""
        name = known_hosts_name(hostname, port)
        return [PinnedKey(name, kind, fingerprint(key)) for kind, key in self.lookup(hostname, port).items()]

    def add(self, hostname: str, port: int, key: paramiko.PKey) -> None:
        """Pin a key (in memory; `save` writes it)."""
        self.keys.add(known_hosts_name(hostname, port), key.get_name(), key)

    def remove(self, hostname: str, port: int) -> bool:
        """Forget every key of a host (in memory); says whether any was pinned."""
        name = known_hosts_name(hostname, port)
        before = len(self.keys._entries)
        self.keys._entries = [e for e in self.keys._entries if not _matches(e, name)]
        return len(self.keys._entries) != before

    def save(self) -> None:
        """Write the file atomically (same directory, fsync, rename), mode 0644."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = [entry.to_line() for entry in self.keys._entries]
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write("".join(line for line in lines if line))
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _matches(entry: paramiko.hostkeys.HostKeyEntry, name: str) -> bool:
    """Whether a known_hosts entry names `name`, hashed entries included."""
    for pattern in entry.hostnames:
        if pattern.startswith("|1|"):
            if paramiko.HostKeys.hash_host(name, pattern) == pattern:
                return True
        elif pattern == name:
            return True
    return False
