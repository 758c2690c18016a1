"""`provision hostkeys scan|forget`: pin host keys beside the inventory."""

from __future__ import annotations

from collections.abc import Sequence

from provision.connection import HostKeyOptions, resolve_target
from provision.engine import Phase, Play
from provision.hostkeys import KnownHosts
from provision.inventory import Host
from provision.tasks.host_keys import PinHostKeys


def scan_play(hosts: Sequence[Host], keys: HostKeyOptions, timeout: float) -> Play:
    return Play("hostkeys scan", [
        Phase("scan", lambda state: hosts, lambda host, state: [PinHostKeys(keys, timeout)]),
    ])


def forget_host(host: Host, pins: KnownHosts, *, check: bool = False) -> str:
    """Remove a host's pins; returns what was (or would be) done."""
    target = resolve_target(host)
    if not pins.remove(target.hostname, target.port):
        return f"{host.name}: nothing pinned for {target.label}"
    if check:
        return f"{host.name}: would forget {target.label}"
    pins.save()
    return f"{host.name}: forgot {target.label}"
