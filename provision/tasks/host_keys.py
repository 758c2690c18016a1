"""Pinning a host's SSH keys in the inventory's known_hosts file (a local change)."""

from __future__ import annotations

import threading

from provision.connection import HostKeyOptions, UnreachableError, resolve_target, scan_host_keys
from provision.engine import Change, HostContext, Task
from provision.hostkeys import KnownHosts, fingerprint

_PINS_LOCK = threading.Lock()


class PinHostKeys(Task):
    """Scan the keys a host offers and pin the new ones; a changed key is refused, never replaced."""

    name = "pin host keys"

    def __init__(self, keys: HostKeyOptions, timeout: float) -> None:
        self.keys = keys
        self.timeout = timeout

    def plan(self, ctx: HostContext) -> Change | None:
        target = resolve_target(ctx.host)
        offered = scan_host_keys(ctx.host, self.keys, timeout=self.timeout)
        for key in offered:
            ctx.note(f"{key.get_name()} {fingerprint(key)}")
        pinned = KnownHosts(self.keys.pins_path).lookup(target.hostname, target.port)
        for key in offered:
            old = pinned.get(key.get_name())
            if old is not None and old != key:
                raise UnreachableError(
                    f"host key of {target.label} CHANGED: pinned {fingerprint(old)}, "
                    f"offered {fingerprint(key)}; refusing to re-pin. "
                    f"If expected: `provision hostkeys forget {ctx.host.name}` first"
                )
        new = [key for key in offered if key.get_name() not in pinned]
        if not new:
            return None

        def apply() -> None:
            with _PINS_LOCK:
                pins = KnownHosts(self.keys.pins_path)
                for key in new:
                    pins.add(target.hostname, target.port, key)
                pins.save()

        names = ", ".join(key.get_name() for key in new)
        return Change(f"pin {names} for {target.label} in {self.keys.pins_path.name}", apply)
