"""Ansible-compatible YAML inventory with host_vars/ and group_vars/, patterns and our vars table.

The same file must give the same hosts, groups and vars here as in `ansible-inventory -i FILE --list`,
so parsing and precedence follow ansible-core (yaml inventory plugin, host_group_vars vars plugin,
VariableManager). PyYAML is used, as Ansible does, so YAML 1.1 scalars (`yes`, `on`) mean the same in
both. Every var keeps the file and line it came from, and every value of ours is validated at load,
before any host is contacted, so errors name where to fix them.
"""

from __future__ import annotations

import os
from pathlib import Path

from provision.errors import InputError
from provision.inventory.model import Group, Host, Inventory, _storage_problem
from provision.inventory.parser import _Parser
from provision.inventory.vars import (
    _BAD_STEM,
    CONNECTION_VARS,
    OUR_VARS,
    Settings,
    _converted,
    _Invalid,
    _name,
    _settings,
)

__all__ = ["CONNECTION_VARS", "INVENTORY_ENV", "OUR_VARS", "Group", "Host", "Inventory", "Settings", "load_inventory"]

INVENTORY_ENV = "PROVISION_INVENTORY"
_INVENTORY_SUFFIXES = ("", ".yml", ".yaml", ".json")


def _stem_name(path: Path) -> str | None:
    try:
        return _name(path.stem)
    except _Invalid:
        return None


def load_inventory(path: str | Path | None) -> Inventory:
    """Load and validate an inventory; None means $PROVISION_INVENTORY."""
    if path is None or str(path) == "":
        path = os.environ.get(INVENTORY_ENV)
        if not path:
            raise InputError(f"no inventory: pass -i/--inventory FILE or set {INVENTORY_ENV}")
    display_path = str(path)
    file_path = Path(os.path.abspath(path))
    if file_path.is_dir():
        raise InputError("is a directory: expected a YAML inventory file", file=display_path)
    if not file_path.is_file():
        raise InputError("inventory file not found", file=display_path)
    if file_path.suffix not in _INVENTORY_SUFFIXES:
        raise InputError(f"unsupported inventory type {file_path.suffix!r}: expected a YAML file "
                         "(.yml, .yaml, .json or no extension)", file=display_path)
    parser = _Parser(file_path, display_path)
    parser.parse()

    merged_by_host = {name: parser.host_vars(state) for name, state in parser.hosts.items()}
    storage_members = [name for name, state in parser.hosts.items()
                       if "storage" in parser.memberships(state)]
    storage: tuple[str, int] | None = None
    if len(storage_members) == 1:
        storage_vars = merged_by_host[storage_members[0]][0]
        address = (_converted("ansible_host", storage_vars["ansible_host"])
                   if "ansible_host" in storage_vars else storage_members[0])
        port = (_converted("ansible_port", storage_vars["ansible_port"])
                if "ansible_port" in storage_vars else 22)
        storage = (address, port)
    stem_name = _stem_name(file_path)
    hosts: dict[str, Host] = {}
    for name, (merged, groups) in merged_by_host.items():
        settings = _settings(merged, stem_name, storage, _storage_problem(storage_members), display_path)
        hosts[name] = Host(
            name=name,
            vars={key: setting.value for key, setting in merged.items()},
            groups=groups,
            settings=settings,
            sources={key: (s.origin.file, s.origin.line) for key, s in merged.items()},
        )
    groups = {
        name: Group(name=name, hosts=list(state.hosts), children=list(state.children),
                    vars={key: s.value for key, s in (state.inline | state.files).items()},
                    parents=list(state.parents), depth=state.depth, priority=state.priority)
        for name, state in parser.groups.items()
    }
    return Inventory(path=file_path, name=_inventory_name(parser, hosts, stem_name, display_path),
                     hosts=hosts, groups=groups, display_path=display_path)


def _inventory_name(parser: _Parser, hosts: dict[str, Host], stem_name: str | None,
                    display_path: str) -> str:
    """One inventory_name for the whole inventory: it scopes secrets and pins."""
    first: Host | None = None
    for host in hosts.values():
        if first is None:
            first = host
        elif host.settings.inventory_name != first.settings.inventory_name:
            file, line = host.source("inventory_name") or first.source("inventory_name") or (display_path, 0)
            raise InputError(f"hosts {first.name!r} and {host.name!r} have different inventory_name values: "
                             "set it once, under all: vars:", file=file, line=line or None,
                             key="inventory_name")
    if first is not None:
        return first.settings.inventory_name
    all_vars = parser.groups["all"].inline | parser.groups["all"].files
    if "inventory_name" in all_vars:
        return _converted("inventory_name", all_vars["inventory_name"])
    if stem_name is None:
        raise InputError(_BAD_STEM, file=display_path, key="inventory_name")
    return stem_name
