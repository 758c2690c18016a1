"""Ansible-compatible YAML inventory with host_vars/ and group_vars/, patterns and our vars table.

The same file must give the same hosts, groups and vars here as in `ansible-inventory -i FILE --list`,
so parsing and precedence follow ansible-core (yaml inventory plugin, host_group_vars vars plugin,
VariableManager). PyYAML is used, as Ansible does, so YAML 1.1 scalars (`yes`, `on`) mean the same in
both. Where Ansible warns and goes on, this warns the same way; where it refuses, this refuses. Every var
keeps the file and line it came from; our vars are validated when a command is about to use them, for
the hosts it works on, before any host is contacted, so errors name where to fix them.
"""

from __future__ import annotations

import os
from pathlib import Path

from provision.errors import InputError
from provision.inventory.loader import Warnings, _Vars
from provision.inventory.model import Group, Host, Inventory, storage_problem
from provision.inventory.parser import _Parser
from provision.inventory.vars import CONNECTION_VARS, OUR_VARS, Settings, _Invalid, _name, _settings

__all__ = ["CONNECTION_VARS", "INVENTORY_ENV", "OUR_VARS", "Group", "Host", "Inventory", "Settings", "load_inventory"]

INVENTORY_ENV = "PROVISION_INVENTORY"
TYPO_HINTS_ENV = "PROVISION_NO_TYPO_HINTS"
TYPO_HINTS_VAR = "provision_typo_hints"
_INVENTORY_SUFFIXES = ("", ".yml", ".yaml", ".json")


def _stem_name(path: Path) -> str | None:
    try:
        return _name(path.stem)
    except _Invalid:
        return None


def load_inventory(path: str | Path | None) -> Inventory:
    """Load an inventory as Ansible does (None means $PROVISION_INVENTORY); warnings go to stderr.

    Our vars are not checked here: a command checks the ones it uses, for the hosts it works on.
    """
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
    warnings = Warnings()
    parser = _Parser(file_path, display_path, warnings)
    parser.parse()
    all_vars = parser.groups["all"].inline | parser.groups["all"].files
    if _typo_hints_wanted(all_vars):
        for key, (near, origin) in parser.typo_hints.items():
            warnings.add(f"{key!r} is not a provision var but resembles {near!r}: if it is meant for provision, "
                         f"rename it (silence these hints with {TYPO_HINTS_ENV}=1 or {TYPO_HINTS_VAR}: false)",
                         origin)
    warnings.emit()

    hosts: dict[str, Host] = {}
    for name, state in parser.hosts.items():
        merged, groups = parser.host_vars(state)
        hosts[name] = Host(
            name=name,
            vars={key: setting.value for key, setting in merged.items()},
            groups=groups,
            sources={key: (s.origin.file, s.origin.line) for key, s in merged.items()},
            conflicts={key: s.conflict for key, s in merged.items() if s.conflict is not None},
            origin=(state.origin.file, state.origin.line),
        )
    groups = {
        name: Group(name=name, hosts=list(state.hosts), children=list(state.children),
                    vars={key: s.value for key, s in (state.inline | state.files).items()},
                    parents=list(state.parents), depth=state.depth, priority=state.priority)
        for name, state in parser.groups.items()
    }
    inventory = Inventory(path=file_path, hosts=hosts, groups=groups, display_path=display_path,
                          name_setting=all_vars.get("inventory_name"), stem_name=_stem_name(file_path))

    def storage_address() -> tuple[str, int]:
        members = inventory.storage_members()
        if len(members) != 1:
            raise InputError(f"{storage_problem(members)} (or set storage_address)", file=display_path)
        storage = inventory.hosts[members[0]]
        return storage.address, storage.port or 22

    def resolve_settings(host: Host) -> Settings:
        merged = {key: host.sourced(key) for key in host.vars if isinstance(key, str)}
        return _settings(merged, inventory.name, storage_address, display_path)

    for host in hosts.values():
        host.resolve_settings = resolve_settings
    return inventory


def _typo_hints_wanted(all_vars: _Vars) -> bool:
    """Hints unless PROVISION_NO_TYPO_HINTS=1 or `provision_typo_hints: false` under `all`."""
    if os.environ.get(TYPO_HINTS_ENV, "") not in ("", "0"):
        return False
    setting = all_vars.get(TYPO_HINTS_VAR)
    return setting is None or str(setting.value).strip().lower() not in ("false", "no", "off", "0")
