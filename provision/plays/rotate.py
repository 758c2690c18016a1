"""`provision rotate keys` and `provision rotate password`: new credentials without locking anyone out.

rotate keys, per client, in phases that alternate between the clients and storage (one storage
session for all clients of the run):
1. clients: a new ed25519 pair `<client_key>.new` made on the client (or the one an interrupted run
   left, taken up again);
2. storage: the new key's lines beside the old ones, for storage_user and git_user;
3. clients: the new key proven with OpenSSH alone (sftp, git ls-remote), then config.local and
   core.sshCommand switched to it and `dvc status -c` proving it (else switched back);
4. storage: the old key's lines revoked, for the clients that got through step 3 only;
5. clients: storage proven to refuse the old key, the new pair moved to `client_key` (the old private
   key is deleted), config.local and core.sshCommand back on `client_key`, access proven again.
A client that fails or cannot be reached keeps its old key authorized and in use; the summary names
it, and a rerun carries its rotation on from where it stopped (see provision.tasks.key_rotation).

rotate password (one account has one password, so clients on `auth: password` lose access between
storage's change and their own update; `auth: key` is the path without that gap):
1. clients: their accounts and dvc;
2. storage: a new value stored as `storage_password.next`, set by chpasswd, proven by a fresh login,
   promoted to `storage_password`; a `.next` left by an interrupted run is continued, not redrawn;
3. clients: config.local gets the new value, `dvc status -c` proves it;
4. storage: the summary names the clients still on the old password.
Storage is rotated only when --limit keeps it: `--limit ws2` brings ws2 to the current password
without rotating again.
"""

from __future__ import annotations

from collections.abc import Sequence

from provision.engine import Phase, Play, PlayState, Task
from provision.inventory import Host, Inventory
from provision.plays.bootstrap import PasswordLogin
from provision.plays.onboard import client_key_lines
from provision.tasks.client_key import ClientAccount, ClientInfo, client_info, expand_home
from provision.tasks.dvc_client import NewPasswordInConfig
from provision.tasks.key_rotation import (
    ProveNewKey,
    RetireOldKey,
    RotatedLines,
    RotationKeyLines,
    RotationSummary,
    StartKeyRotation,
    SwitchToNewKey,
    rotation_of,
)
from provision.tasks.packages import DVC_EXPORT, FindDvc
from provision.tasks.password_login import RotateStoragePassword, SamePassword
from provision.tasks.proofs import ProveAccess, ProveDvcPassword, ProveRevoked, client_proof


def _shared_cache(host: Host, info: ClientInfo) -> str | None:
    settings = host.settings
    return expand_home(settings.shared_cache, info.home) if settings.shared_cache else None


def _client_tools(host: Host) -> list[Task]:
    """The client's account and its dvc (rotations prove with dvc, they never install it)."""
    settings = host.settings
    return [ClientAccount(host), FindDvc(settings.dvc_version, settings.dvc_venv)]


def rotate_keys_play(inventory: Inventory, clients: Sequence[Host]) -> Play:
    """The five steps of key rotation for `clients`, then a summary (see the module docstring)."""
    storage = inventory.storage
    git_on_storage = storage.settings.git_remote_is_path

    def key_lines(host: Host, state: PlayState, *, revoke_old: bool) -> list[Task]:
        """Each client's new lines as onboarding writes them, beside (step 2) or instead of (step 4) the old."""
        sftp: list[RotatedLines] = []
        git: list[RotatedLines] = []
        for client in clients:
            if state.broken(client.name):
                continue
            rotation = rotation_of(state.report(client.name).exports, client)
            sftp_lines, git_lines = client_key_lines(client, rotation.new_public)
            sftp.append(RotatedLines(rotation.marker, rotation.old_public, sftp_lines[0] if sftp_lines else None))
            git.append(RotatedLines(rotation.marker, rotation.old_public, git_lines[0] if git_lines else None))
        settings = host.settings
        tasks: list[Task] = [RotationKeyLines(settings.storage_user, sftp, purpose="DVC over SFTP",
                                              revoke_old=revoke_old)]
        if git_on_storage:
            tasks.append(RotationKeyLines(settings.git_user, git, purpose="git", revoke_old=revoke_old))
        return tasks

    def switch(host: Host, state: PlayState) -> list[Task]:
        rotation = rotation_of(state.report(host.name).exports, host)
        dvc = state.report(host.name).exports[DVC_EXPORT]
        shared_cache = _shared_cache(host, rotation.info)
        return [ProveNewKey(rotation, host.settings, storage.name),
                SwitchToNewKey(rotation, host.settings, shared_cache, dvc)]

    def retire(host: Host, state: PlayState) -> list[Task]:
        settings = host.settings
        rotation = rotation_of(state.report(host.name).exports, host)
        accounts = [settings.storage_user, *([settings.git_user] if git_on_storage else [])]
        tasks: list[Task] = [] if rotation.consolidating else [ProveRevoked(rotation.info, settings, accounts)]
        proof = client_proof(state, host, rotation.info, storage, inventory.known_hosts_path, verify=True)
        return [*tasks, RetireOldKey(rotation, settings, _shared_cache(host, rotation.info)),
                ProveAccess(proof, dvc_by_pull=False)]

    def summary(host: Host, state: PlayState) -> list[Task]:
        return [RotationSummary("key rotation", [client.name for client in clients], [],
                                "provision rotate keys")]

    return Play("rotate keys", [
        Phase("new key", lambda state: clients, lambda host, state: [*_client_tools(host), StartKeyRotation(host)]),
        Phase("authorize new key", lambda state: [storage],
              lambda host, state: key_lines(host, state, revoke_old=False)),
        Phase("switch", lambda state: clients, switch, needs=lambda host: [storage.name]),
        Phase("revoke old key", lambda state: [storage], lambda host, state: key_lines(host, state, revoke_old=True)),
        Phase("retire old key", lambda state: clients, retire, needs=lambda host: [storage.name]),
        Phase("summary", lambda state: [storage], summary),
    ], locks_hosts=True)


def rotate_password_play(inventory: Inventory, clients: Sequence[Host], *, rotate_storage: bool,
                         password: PasswordLogin) -> Play:
    """Rotate storage_user's password (when `rotate_storage`) and bring `clients` to it."""
    storage = inventory.storage
    secrets, login = password.secrets, password.login

    def update_client(host: Host, state: PlayState) -> list[Task]:
        info = client_info(state, host)
        dvc = state.report(host.name).exports[DVC_EXPORT]
        return [SamePassword(host, storage, secrets),
                NewPasswordInConfig(info, host.settings, _shared_cache(host, info), rotate_storage),
                ProveDvcPassword(info, host.settings, dvc)]

    chosen = {host.name for host in clients}
    left_out = [host.name for host in inventory.password_clients if host.name not in chosen]
    phases = [Phase("client account", lambda state: clients, lambda host, state: _client_tools(host))]
    if rotate_storage:
        phases.append(Phase("storage password", lambda state: [storage],
                            lambda host, state: [RotateStoragePassword(storage, secrets, login)]))
    phases.append(Phase("client password", lambda state: clients, update_client,
                        needs=lambda host: [storage.name] if rotate_storage else []))
    if rotate_storage:
        phases.append(Phase("summary", lambda state: [storage], lambda host, state: [
            RotationSummary("password rotation", sorted(chosen), left_out, "provision rotate password")]))
    return Play("rotate password", phases, locks_hosts=True)
