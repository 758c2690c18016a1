"""Pinning a host's SSH keys in the inventory's known_hosts file (a local change)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from provision.connection import HostKeyOptions, UnreachableError, resolve_target, scan_host_keys
from provision.engine import Change, HostContext, Task
from provision.facts import ControllerFact
from provision.inventory import Host
from provision.known_hosts_file import changed_key_message, pin_keys, trusted_keys


@dataclass(frozen=True)
class OfferedHostKeysFact(ControllerFact):
    """The host keys a host's sshd offers, one connection per key type (verified against nothing yet)."""

    host: Host = field(compare=False, repr=False)
    keys: HostKeyOptions = field(compare=False, repr=False)
    timeout: float = field(compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return ("offered host keys", self.host.name)

    def read(self) -> tuple[paramiko.PKey, ...]:
        return tuple(scan_host_keys(self.host, self.keys, timeout=self.timeout))


class PinHostKeys(Task):
    """Pin the keys of a host seen for the first time; a pinned host is only verified.

    A host the inventory's pins do not name but ~/.ssh/known_hosts does is pinned there: connections
    trust those entries, so a scan verifies against them too and refuses a mismatch.

    Once a host has pins, every pinned key type must still be offered, unchanged; key types it did not
    have when pinned are not added (one scan cannot tell them apart from a man in the middle that
    offers only a type we do not know yet): forget the host and scan again to re-pin.
    """

    name = "pin host keys"

    def __init__(self, keys: HostKeyOptions, timeout: float) -> None:
        self.keys = keys
        self.timeout = timeout

    def plan(self, ctx: HostContext) -> Change | None:
        target = resolve_target(ctx.host)
        scanned: tuple[paramiko.PKey, ...] = ctx.fact(OfferedHostKeysFact(ctx.host, self.keys, self.timeout))
        offered = {key.get_name(): key for key in scanned}
        for key in offered.values():
            ctx.note(f"{key.get_name()} {key.fingerprint}")
        source, pinned = trusted_keys(self.keys.pins_path, target.hostname, target.port)
        for key_type, old in pinned.items():
            new = offered.get(key_type)
            if new is None:
                raise UnreachableError(f"{target.label} no longer offers its pinned {key_type} key "
                                       f"({old.fingerprint}); refusing. If expected: "
                                       f"`provision hostkeys forget {ctx.host.name}` then scan again")
            if new != old:
                raise UnreachableError(changed_key_message(target.label, old, new, ctx.host.name))
        if pinned:
            if source != self.keys.pins_path:
                ctx.note(f"verified against {source}, which connections trust for this host "
                         f"(not copied into {self.keys.pins_path.name})")
            unpinned = sorted(set(offered) - set(pinned))
            if unpinned:
                ctx.note(f"not pinned: {', '.join(unpinned)} (forget and scan again to pin them)")
            return None
        pins_path: Path = self.keys.pins_path

        def apply() -> None:
            pin_keys(pins_path, target.hostname, target.port, offered.values())

        names = ", ".join(offered)
        return Change(f"pin {names} for {target.label} in {pins_path.name}", apply)
