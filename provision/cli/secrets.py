"""`provision secrets ...`: keep credentials in the OS keyring or the encrypted vault, never in argv.

Values enter through a hidden prompt or stdin, and leave only with --reveal.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from provision.inventory import Inventory, load_inventory
from provision.secrets import MASK, SecretsError, SecretStore, generate_secret, open_store, qualify
from provision.secrets.base import ALL_SCOPE, split_name
from provision.secrets.index import SecretsIndex
from provision.secrets.keyring_store import BACKEND_KIND, keyring_service, read_vault_password, store_vault_password
from provision.secrets.store import MAX_SECRET_LENGTH, MIN_SECRET_LENGTH, prompt_password, read_password_file
from provision.secrets.vault import VaultStore

inventory_option = click.option("-i", "--inventory", envvar="PROVISION_INVENTORY", metavar="FILE",
                                help="Ansible YAML inventory (default: $PROVISION_INVENTORY).")
scope_option = click.option("--scope", metavar="all|GROUP|HOST",
                            help="Scope for a bare KEY (default: all).")


def _open(inventory_file: str | None) -> tuple[Inventory, SecretStore]:
    loaded = load_inventory(inventory_file)
    return loaded, open_store(loaded.path, loaded.name)


def _full_name(loaded: Inventory, name: str, scope: str | None, *, require_known_scope: bool) -> str:
    """The full name for NAME/--scope; a new entry's scope must be `all`, a group or a host."""
    full = qualify(loaded.name, name, scope)
    _, named_scope, _ = split_name(full)
    known = named_scope == ALL_SCOPE or named_scope in loaded.hosts or named_scope in loaded.groups
    if require_known_scope and not known:
        raise SecretsError(f"scope {named_scope!r} is neither 'all' nor a group or host of "
                           f"{loaded.display_path or loaded.path}")
    return full


def _read_value(full_name: str) -> str:
    """The value from a hidden, confirmed prompt on a terminal, else all of stdin (one final newline off)."""
    if sys.stdin.isatty():
        value = click.prompt(f"Value for {full_name}", hide_input=True, confirmation_prompt=True,
                             default="", show_default=False)
    else:
        value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if not value:
        raise SecretsError(f"{full_name}: refusing to store an empty value")
    return value


@click.group()
def secrets() -> None:
    """Keep passwords in the OS keyring or the inventory's encrypted vault.

    Names are <inventory>/<scope>/<key>; scope is a host, a group or `all`. storage_password and
    become_password are looked up for a host, then its groups (deepest first), then `all`.
    PROVISION_SECRETS_BACKEND=keyring|vault forces a backend; PROVISION_VAULT_PASSWORD_FILE
    supplies the vault password.

    \b
    Example:
      provision secrets generate storage_password -i site.yml
    """


@secrets.command("set")
@inventory_option
@scope_option
@click.argument("name")
def set_command(inventory: str | None, scope: str | None, name: str) -> None:
    """Store a value from a hidden prompt or stdin.

    The prompt asks twice; a value is never taken from the command line.

    \b
    Example:
      provision secrets set -i site.yml become_password --scope gpu
      pass show storage | provision secrets set -i site.yml storage_password
    """
    loaded, store = _open(inventory)
    full = _full_name(loaded, name, scope, require_known_scope=True)
    store.set(full, _read_value(full))
    click.echo(f"stored {full} in {store.backend_name}")


@secrets.command("get")
@inventory_option
@scope_option
@click.option("--reveal", is_flag=True, help="Print the value itself instead of a mask.")
@click.argument("name")
def get_command(inventory: str | None, scope: str | None, reveal: bool, name: str) -> None:
    """Show a secret masked, or print it with --reveal.

    \b
    Example:
      provision secrets get -i site.yml all/storage_password --reveal
    """
    loaded, store = _open(inventory)
    full = _full_name(loaded, name, scope, require_known_scope=False)
    value = store.get(full)
    if value is None:
        raise SecretsError(f"no secret {full} in {store.backend_name}")
    click.echo(value if reveal else f"{full}: {MASK}  ({store.backend_name})")


@secrets.command("list")
@inventory_option
def list_command(inventory: str | None) -> None:
    """List secret names and backends, never values, and the inventory's keyring service.

    Reads the value-free index beside the inventory, so no password is needed.

    \b
    Example:
      provision secrets list -i site.yml
    """
    loaded = load_inventory(inventory)
    index = SecretsIndex(loaded.path)
    entries = [(name, backend) for name, backend in index.entries()
               if name.startswith(f"{loaded.name}/")]
    if not entries:
        click.echo(f"no secrets recorded for inventory {loaded.name} ({index.path})")
        return
    width = max(len(name) for name, _ in entries)
    for name, backend in entries:
        click.echo(f"{name:<{width}}  {backend}")
    if any(backend == BACKEND_KIND for _, backend in entries):
        click.echo(f"keyring service: {keyring_service(loaded.name, loaded.path)}")


@secrets.command("delete")
@inventory_option
@scope_option
@click.argument("name")
def delete_command(inventory: str | None, scope: str | None, name: str) -> None:
    """Remove a secret (fine when already absent).

    \b
    Example:
      provision secrets delete -i site.yml ws1/become_password
    """
    loaded, store = _open(inventory)
    full = _full_name(loaded, name, scope, require_known_scope=False)
    if store.delete(full):
        click.echo(f"deleted {full} from {store.backend_name}")
    else:
        click.echo(f"{full} was not stored in {store.backend_name}")


@secrets.command("generate")
@inventory_option
@scope_option
@click.option("--length", type=click.IntRange(MIN_SECRET_LENGTH, MAX_SECRET_LENGTH), default=32,
              show_default=True, help="Characters of [A-Za-z0-9_-] (6 random bits each).")
@click.option("--force", is_flag=True, help="Replace an existing value (the old one is lost).")
@click.option("--reveal", is_flag=True, help="Also print the generated value.")
@click.argument("name")
def generate_command(inventory: str | None, scope: str | None, length: int, force: bool, reveal: bool,
                     name: str) -> None:
    """Store a strong random value without printing it.

    The value is printed only with --reveal; an existing value is kept unless --force.

    \b
    Example:
      provision secrets generate -i site.yml storage_password --length 40
    """
    loaded, store = _open(inventory)
    full = _full_name(loaded, name, scope, require_known_scope=True)
    if not force and store.get(full) is not None:
        raise SecretsError(f"{full} is already set in {store.backend_name}; pass --force to replace it")
    value = generate_secret(length)
    store.set(full, value)
    click.echo(f"generated {full} ({length} characters) in {store.backend_name}")
    if reveal:
        click.echo(value)


@secrets.command("rekey")
@inventory_option
@click.option("--new-password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the new password from this file (mode 0600) instead of a prompt.")
def rekey_command(inventory: str | None, new_password_file: Path | None) -> None:
    """Change the vault password atomically.

    The vault is re-encrypted under a fresh salt and renamed over the old file. When the current
    password came from the OS keyring, the keyring entry is updated too.

    \b
    Example:
      provision secrets rekey -i site.yml --new-password-file ~/.config/provision/site.pass
    """
    loaded, store = _open(inventory)
    if not isinstance(store, VaultStore):
        raise SecretsError(f"rekey changes the vault password, but this inventory uses {store.backend_name}; "
                           "set PROVISION_SECRETS_BACKEND=vault to rekey the vault")
    if not store.vault.exists():
        raise SecretsError(f"{store.vault.path}: no vault to rekey")
    current = store.password()
    service = keyring_service(loaded.name, loaded.path)
    in_keyring = read_vault_password(service) == current.decode("utf-8", "replace")
    if new_password_file is not None:
        new_password = read_password_file(new_password_file)
    else:
        new_password = prompt_password(store.vault.path, service, confirm=True, label="New vault password")
    store.rekey(new_password)
    click.echo(f"rekeyed {store.vault.path}")
    if in_keyring and store_vault_password(service, new_password.decode("utf-8")):
        click.echo("updated the vault password kept in the OS keyring")
