"""`provision audit hosts`: storage and clients checked read-only, one round trip per host.

One phase: storage and every selected client at once, each host's facts read in one remote command
(see provision.tasks.audit); the findings are the tasks' results and the command's summary.
"""

from __future__ import annotations

from collections.abc import Sequence

from provision.audit.findings import Finding
from provision.engine import Phase, Play, PlayState, Task
from provision.inventory import Host, Inventory
from provision.tasks.audit import FINDINGS_EXPORT, AuditClient, storage_audit_tasks


def audit_hosts_play(inventory: Inventory, hosts: Sequence[Host]) -> Play:
    """Audit `hosts` (storage with the storage rules, the others as clients)."""
    storage = inventory.storage

    def tasks(host: Host, state: PlayState) -> list[Task]:
        if host.name == storage.name:
            return storage_audit_tasks(host, inventory)
        return [AuditClient(host, storage, inventory.known_hosts_path)]

    return Play("audit hosts", [Phase("audit", lambda state: list(hosts), tasks)])


def host_findings(state: PlayState) -> list[Finding]:
    """Every host's findings, host by host in the order they were reported."""
    return [finding for report in state.reports.values() for finding in report.exports.get(FINDINGS_EXPORT, [])]
