"""`provision hostkeys scan`: pin host keys beside the inventory."""

from __future__ import annotations

from collections.abc import Sequence

from provision.connection import HostKeyOptions
from provision.engine import Phase, Play
from provision.inventory import Host
from provision.tasks.inventory_host_keys import PinHostKeys


def scan_play(hosts: Sequence[Host], keys: HostKeyOptions, timeout: float) -> Play:
    return Play("hostkeys scan", [
        Phase("scan", lambda state: hosts, lambda host, state: [PinHostKeys(keys, timeout)]),
    ])
