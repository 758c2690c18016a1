"""`provision rotate keys` and `provision rotate password`: credential rotation across the fleet."""

from __future__ import annotations

import click

from provision.cli.common import PlayArgs, play_options, run_play
from provision.errors import InputError
from provision.plays.bootstrap import password_login
from provision.plays.onboard import select_clients
from provision.plays.rotate import rotate_keys_play, rotate_password_play
from provision.secrets.inventory import SecretLookupForInventory


@click.group()
def rotate() -> None:
    """Rotate client keys or storage_user's password without locking a machine out.

    \b
    Example:
      provision rotate keys -i site.yml --check
      provision rotate password -i site.yml
    """


@rotate.command("keys")
@play_options
@click.argument("hosts", nargs=-1)
def keys(play_args: PlayArgs, hosts: tuple[str, ...]) -> None:
    """Give client HOSTS (default: every non-storage host) new SSH keys.

    Each client makes a new ed25519 pair beside its old one; storage authorizes it beside the old key;
    it is proven with OpenSSH, config.local and core.sshCommand switch to it and `dvc status -c` proves
    it; only then is the old key revoked, proven refused and deleted. A client that fails or is down
    keeps its old key authorized and in use; a rerun completes its rotation.

    \b
    Example:
      provision rotate keys -i site.yml --check --diff
      provision rotate keys -i site.yml --limit 'clients:!ws2'
    """
    inventory = play_args.load()
    clients = select_clients(inventory, hosts, play_args.limit)
    run_play(play_args, inventory, lambda engine: rotate_keys_play(inventory, clients))


@rotate.command("password")
@play_options
def password(play_args: PlayArgs) -> None:
    """Give storage_user a new password and every `auth: password` client its config.local.

    The new value is stored as storage_password.next, set on storage, proven by a login, promoted to
    storage_password, then written into each client's .dvc/config.local and proven with
    `dvc status -c`. Clients are without access between the two steps: `auth: key` avoids that. An
    interrupted run is continued by the next one; clients not yet updated are listed, and
    `--limit CLIENTS` (leaving storage out) brings them to the current password without rotating again.

    \b
    Example:
      provision rotate password -i site.yml
      provision rotate password -i site.yml --limit ws2
    """
    inventory = play_args.load()
    inventory.check_password_access()
    candidates = inventory.password_clients
    if not candidates:
        raise InputError("no client has auth: password, so storage_user has no password to rotate; "
                         "`provision rotate keys` rotates keys", file=inventory.display_path)
    selected = {host.name for host in inventory.select(play_args.limit)}
    rotate_storage = inventory.storage.name in selected
    chosen = [host.name for host in candidates if host.name in selected]
    if not chosen and not rotate_storage:
        raise InputError("--limit keeps neither the storage host nor a client with auth: password", key="--limit")
    clients = select_clients(inventory, chosen, None) if chosen else []
    inventory.check_targets([inventory.storage])
    login = password_login(inventory, SecretLookupForInventory(inventory), play_args.timeout)
    run_play(play_args, inventory,
             lambda engine: rotate_password_play(inventory, clients, rotate_storage=rotate_storage, password=login),
             secrets=login.secrets)
