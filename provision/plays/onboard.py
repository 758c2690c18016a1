"""`provision onboard` and `provision offboard`: clients' keys, their lines on storage, checkout, proof.

onboard, in three phases:
1. clients: git and dvc, the client's own key pair; each exports its account and public key;
2. storage, in one session for all clients of the run: their marked key lines for storage_user and
   git_user (clients that failed phase 1 are left out);
3. clients, only if storage succeeded: storage's host key pinned, checkout, config.local, shared cache
   group, proof of access, optionally `dvc pull`.
If storage is refused (e.g. its host key changed), no client gets a line or a pin.

offboard: the clients' accounts are resolved, their lines removed on storage (whether or not the
client answers), then on each client storage's refusal is proven, the remote's credentials leave
config.local and, with --purge, the key pair goes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from provision.engine import Phase, Play, PlayState, Task
from provision.errors import InputError
from provision.inventory import Host, Inventory
from provision.tasks.authorized_keys import GIT, SFTP, AuthorizeKeys, key_line
from provision.tasks.checkout import Checkout
from provision.tasks.client_key import (
    ClientAccount,
    ClientKeyPair,
    RemoveKeyPair,
    client_info,
    expand_home,
    key_marker,
)
from provision.tasks.dvc_client import (
    STORAGE_GID_EXPORT,
    DvcClientConfig,
    PrivateSiteCache,
    RemoveDvcCredentials,
    SharedCacheGroup,
    StorageGroupId,
)
from provision.tasks.packages import EnsureDvc, EnsureGit
from provision.tasks.proofs import ProveAccess, ProveRevoked, PullData, client_proof
from provision.tasks.storage_host_key import PinStorageHostKey

#: Vars that name things on storage: a client must see the same values as the storage host.
SHARED_VARS = ("storage_user", "git_user", "storage_group", "dvc_storage", "git_remote")


def select_clients(inventory: Inventory, names: Sequence[str], limit: str | None) -> list[Host]:
    """HOST arguments (default: every non-storage host), intersected with --limit."""
    unknown = [name for name in names if name not in inventory.hosts]
    if unknown:
        raise InputError(f"no such host in the inventory: {', '.join(unknown)}", file=inventory.display_path)
    storage = inventory.storage
    if storage.name in names:
        raise InputError(f"{storage.name} is the storage host, not a client: name client hosts")
    chosen = [inventory.hosts[name] for name in dict.fromkeys(names)] if names else inventory.clients
    if limit is not None:
        allowed = {host.name for host in inventory.select(limit)}
        chosen = [host for host in chosen if host.name in allowed]
    if not chosen:
        raise InputError("no client host selected: name clients or widen --limit")
    inventory.check_targets([storage, *chosen], clients=chosen)
    _check_shared_vars(storage, chosen)
    return chosen


def _check_shared_vars(storage: Host, clients: Sequence[Host]) -> None:
    for host in clients:
        for key in SHARED_VARS:
            mine, theirs = getattr(host.settings, key), getattr(storage.settings, key)
            if mine != theirs:
                file, line = host.source(key) or storage.source(key) or ("", 0)
                raise InputError(f"{host.name} has {key} {mine!r} but the storage host {storage.name} has "
                                 f"{theirs!r}: set it once for both (e.g. under all: vars:)",
                                 file=file or None, line=line or None, key=key)


def client_key_lines(host: Host, public_key: str | None) -> tuple[list[str] | None, list[str] | None]:
    """The client's wanted lines for storage_user and git_user (None: its key does not exist yet)."""
    if public_key is None:
        return None, None
    settings = host.settings
    marker = key_marker(settings.inventory_name, host.name)
    read_only = settings.access == "read"
    sftp = [key_line(SFTP, public_key, marker, read_only=read_only)]
    git = [key_line(GIT, public_key, marker, read_only=read_only)] if settings.git_remote_is_path else []
    return sftp, git


def onboard_play(inventory: Inventory, clients: Sequence[Host], *, pins_path: Path, pull: bool,
                 verify: bool = False) -> Play:
    """The three phases of onboarding for `clients` (see the module docstring); `verify` proves again
    where a recorded proof still holds."""
    inventory.check_password_access()
    storage = inventory.storage
    shared_cache_clients = [host for host in clients if host.settings.shared_cache]

    def client_tools_and_key(host: Host, state: PlayState) -> list[Task]:
        settings = host.settings
        return [EnsureGit(), EnsureDvc(settings.dvc_version, settings.dvc_venv), ClientKeyPair(host)]

    def authorize(host: Host, state: PlayState) -> list[Task]:
        sftp_lines: dict[str, list[str] | None] = {}
        git_lines: dict[str, list[str] | None] = {}
        for client in clients:
            if state.broken(client.name):
                continue
            marker = key_marker(client.settings.inventory_name, client.name)
            sftp_lines[marker], git_lines[marker] = client_key_lines(client, client_info(state, client).public_key)
        settings = host.settings
        tasks: list[Task] = [AuthorizeKeys(settings.storage_user, sftp_lines, purpose="DVC over SFTP")]
        if settings.git_remote_is_path:
            tasks.append(AuthorizeKeys(settings.git_user, git_lines, purpose="git"))
        if shared_cache_clients:
            tasks.append(StorageGroupId(settings.storage_group))
        return tasks

    def set_up_client(host: Host, state: PlayState) -> list[Task]:
        settings = host.settings
        info = client_info(state, host)
        proof = client_proof(state, host, info, storage, pins_path, verify=verify)
        shared_cache = expand_home(settings.shared_cache, info.home) if settings.shared_cache else None
        tasks: list[Task] = [
            PinStorageHostKey(info, settings.storage_address, settings.storage_port, pins_path, storage),
            Checkout(info, settings),
        ]
        if shared_cache is not None:
            storage_gid = state.exports(STORAGE_GID_EXPORT)[storage.name]
            tasks.append(SharedCacheGroup(info, settings.storage_group, storage_gid, settings.storage_gid,
                                          shared_cache))
        tasks += [PrivateSiteCache(info, settings), DvcClientConfig(info, settings, shared_cache),
                  ProveAccess(proof, dvc_by_pull=pull)]
        if pull:
            tasks.append(PullData(proof))
        return tasks

    return Play("onboard", [
        Phase("client key", lambda state: clients, client_tools_and_key),
        Phase("authorize", lambda state: [storage], authorize),
        Phase("client", lambda state: clients, set_up_client, needs=lambda host: [storage.name]),
    ], locks_hosts=True)


def offboard_play(inventory: Inventory, clients: Sequence[Host], *, purge: bool) -> Play:
    """Revoke `clients` on storage, prove it, remove their credentials (and key pairs with purge)."""
    storage = inventory.storage

    def revoke(host: Host, state: PlayState) -> list[Task]:
        markers: dict[str, list[str] | None] = {
            key_marker(client.settings.inventory_name, client.name): [] for client in clients}
        settings = host.settings
        return [AuthorizeKeys(settings.storage_user, markers, purpose="DVC over SFTP"),
                AuthorizeKeys(settings.git_user, markers, purpose="git")]

    def clean_client(host: Host, state: PlayState) -> list[Task]:
        settings = host.settings
        info = client_info(state, host)
        tasks: list[Task] = [ProveRevoked(info, settings, [settings.storage_user, settings.git_user]),
                             RemoveDvcCredentials(info, settings.dvc_remote)]
        if purge:
            tasks.append(RemoveKeyPair(info))
        return tasks

    return Play("offboard", [
        Phase("client account", lambda state: clients, lambda host, state: [ClientAccount(host)]),
        Phase("revoke", lambda state: [storage], revoke),
        Phase("client", lambda state: clients, clean_client, needs=lambda host: [storage.name]),
    ], locks_hosts=True)
