"""`provision ping`: reach every host with pinned keys, one round trip each."""

from __future__ import annotations

from collections.abc import Sequence

from provision.engine import Phase, Play
from provision.inventory import Host
from provision.tasks.host_info import ReportHostInfo


def ping_play(hosts: Sequence[Host]) -> Play:
    """dvc_venv is read (and checked) here, before any host is contacted."""
    venvs = {host.name: host.setting("dvc_venv") for host in hosts}
    return Play("ping", [
        Phase("ping", lambda state: hosts, lambda host, state: [ReportHostInfo(venvs[host.name])]),
    ])
