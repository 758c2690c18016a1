"""Storage's host key pinned in a client's ~/.ssh/known_hosts, from the controller's pins.

The keys come from the pins the controller itself verifies storage with (the inventory's
`<stem>.known_hosts`, else ~/.ssh/known_hosts), never from a scan made by the client, so a client
that sits behind a man in the middle cannot learn a forged key. They are pinned under the name the
client uses to reach storage, `[storage_address]:storage_port`. Entries for that name with other keys
are dropped: the controller's pins win.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import paramiko

from provision.connection import resolve_target
from provision.engine import Change, HostContext, Task
from provision.errors import ProvisionError
from provision.facts import Fact, FileFact, FileState
from provision.inventory import Host
from provision.known_hosts_file import KnownHostsText, known_hosts_name, trusted_keys
from provision.tasks.client_key import ClientInfo, shorten_keys
from provision.tasks.files import unified_diff, write_file


def storage_host_keys(pins_path: Path, storage: Host) -> list[paramiko.PKey]:
    """The keys the controller verifies storage with: its pins, else ~/.ssh/known_hosts (as connections do)."""
    target = resolve_target(storage)
    _, keys = trusted_keys(pins_path, target.hostname, target.port)
    if keys:
        return [keys[kind] for kind in sorted(keys)]
    raise ProvisionError(f"no host key of {storage.name} ({target.label}) pinned in {pins_path}: "
                         "run `provision hostkeys scan` first")


def client_ssh_options(info: ClientInfo) -> list[str]:
    """OpenSSH options that use only the client key and check storage against the client's pins."""
    return ["-F", "/dev/null", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", f"UserKnownHostsFile={info.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-i", info.key]


def pinned_known_hosts(content: str, name: str, keys: Sequence[paramiko.PKey]) -> str:
    """`content` with exactly `keys` for `name`: other hosts' entries, comments and markers kept byte for byte."""
    known_hosts = KnownHostsText(content)
    known_hosts.pin_exactly(name, keys)
    return known_hosts.text()


class PinStorageHostKey(Task):
    """Storage's pinned host keys in the client's known_hosts, under `[storage_address]:storage_port`."""

    name = "pin storage host key"

    def __init__(self, info: ClientInfo, address: str, port: int, pins_path: Path, storage: Host) -> None:
        self.info = info
        self.entry_name = known_hosts_name(address, port)
        self.pins_path = pins_path
        self.storage = storage
        self.fact = FileFact(info.known_hosts, privileged=False)

    def facts(self) -> Sequence[Fact]:
        return (self.fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        keys = storage_host_keys(self.pins_path, self.storage)
        state: FileState = ctx.fact(self.fact)
        if state.exists and not state.is_file:
            raise ProvisionError(f"{self.info.known_hosts} on {self.info.name} is not a regular file")
        before = state.content if state.exists else None
        after = pinned_known_hosts(before or "", self.entry_name, keys)
        if after == before:
            return None
        kinds = ", ".join(key.get_name() for key in keys)
        diff = unified_diff(self.info.known_hosts, shorten_keys(before) if before is not None else None,
                            shorten_keys(after))

        def apply() -> None:
            write_file(ctx, self.info.known_hosts, after.encode(), owner=self.info.user,
                       group=self.info.group, mode=None if state.exists else 0o644, privileged=False)
            ctx.forget(self.fact)

        return Change(f"pin {self.entry_name} ({kinds}) in {self.info.known_hosts}", apply, diff)
