"""Secret names, the store interface and the error every store raises.

Names are `<inventory_name>/<scope>/<key>`: the inventory scopes them, so two inventories on one machine
never read each other's secrets, and the scope (a host, a group or `all`) lets one value serve many hosts.
"""

from __future__ import annotations

import re
from typing import Protocol

from provision.errors import InputError

ALL_SCOPE = "all"
_NAME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]*")


class SecretsError(InputError):
    """A secrets store refused or failed an operation; nothing was changed.

    Messages name the store and the fix, never a secret value.
    """


class SecretStore(Protocol):
    """What plays and the CLI use, whichever backend holds the values."""

    backend_name: str

    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> bool: ...

    def names(self) -> list[str]: ...


def check_name_part(part: str, what: str) -> str:
    """Refuse parts that would make names ambiguous (slashes, blanks) or unreadable in a listing."""
    if not _NAME_PART.fullmatch(part):
        raise SecretsError(f"{what} {part!r} is not a valid secret name part "
                           "(letters, digits and _ . : @ -, not starting with . : @ -)")
    return part


def secret_name(inventory_name: str, scope: str, key: str) -> str:
    """The full name of `key` for `scope` in one inventory."""
    check_name_part(inventory_name, "inventory name")
    check_name_part(scope, "scope")
    check_name_part(key, "key")
    return f"{inventory_name}/{scope}/{key}"


def split_name(name: str) -> tuple[str, str, str]:
    """(inventory_name, scope, key) of a full name, validated."""
    parts = name.split("/")
    if len(parts) != 3:
        raise SecretsError(f"secret name {name!r} must look like <inventory>/<scope>/<key>")
    inventory_name, scope, key = parts
    secret_name(inventory_name, scope, key)
    return inventory_name, scope, key


def sibling_name(name: str, key: str) -> str:
    """The name of `key` in the same inventory and scope as the full name `name`."""
    inventory_name, scope, _ = split_name(name)
    return secret_name(inventory_name, scope, key)


def qualify(inventory_name: str, name: str, scope: str | None = None) -> str:
    """The full name for what a user typed: `KEY` (scope from `scope`, else `all`), `SCOPE/KEY`,
    or a full name of this inventory."""
    parts = name.split("/")
    if len(parts) == 3:
        if scope is not None:
            raise SecretsError(f"{name!r} is a full name already; drop --scope")
        if parts[0] != inventory_name:
            raise SecretsError(f"secret {name!r} belongs to inventory {parts[0]!r}, "
                               f"not {inventory_name!r}")
        return secret_name(*parts)
    if len(parts) == 2:
        if scope is not None:
            raise SecretsError(f"{name!r} names its scope already; drop --scope")
        return secret_name(inventory_name, parts[0], parts[1])
    if len(parts) == 1:
        return secret_name(inventory_name, scope or ALL_SCOPE, name)
    raise SecretsError(f"secret name {name!r} must be KEY, SCOPE/KEY or <inventory>/<scope>/<key>")


def check_inventory(name: str, inventory_name: str) -> tuple[str, str]:
    """(scope, key) of `name`, refused when it belongs to another inventory than the store's."""
    owner, scope, key = split_name(name)
    if owner != inventory_name:
        raise SecretsError(f"secret {name!r} belongs to inventory {owner!r}; "
                           f"this store holds inventory {inventory_name!r}")
    return scope, key


def check_value(name: str, value: str) -> str:
    """Refuse values that cannot be stored as UTF-8 (e.g. undecodable bytes smuggled in as surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SecretsError(f"{name}: the value is not valid UTF-8 text") from None
    return value
