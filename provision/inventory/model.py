"""The loaded inventory: hosts, groups, their vars, patterns and ansible-inventory's views of them."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.errors import InputError
from provision.inventory.loader import _Origin, _SourcedValue
from provision.inventory.vars import Settings, _converted
from provision.patterns import match_hosts

# ansible-inventory drops these from host vars: Ansible computes them itself.
_ANSIBLE_INTERNAL_VARS = frozenset({
    "ansible_async_path", "ansible_collection_name", "ansible_config_file", "ansible_dependent_role_names",
    "ansible_diff_mode", "ansible_facts", "ansible_forks", "ansible_inventory_sources", "ansible_limit",
    "ansible_play_batch", "ansible_play_hosts", "ansible_play_hosts_all", "ansible_play_role_names",
    "ansible_playbook_python", "ansible_role_name", "ansible_role_names", "ansible_run_tags",
    "ansible_skip_tags", "ansible_verbosity", "ansible_version", "inventory_dir", "inventory_file",
    "inventory_hostname", "inventory_hostname_short", "groups", "group_names", "hostvars", "playbook_dir",
    "play_hosts", "role_name", "role_names", "role_path", "role_uuid",
})


@dataclass
class Host:
    """One inventory host: Ansible's merged vars, its groups, and our settings."""

    name: str
    vars: dict[str, Any]
    groups: list[str]
    settings: Settings
    sources: dict[str, tuple[str, int]] = field(default_factory=dict, repr=False)

    def source(self, key: str) -> tuple[str, int] | None:
        """File and line where the winning value of `key` was set, None when unset."""
        return self.sources.get(key)

    def _var(self, key: str) -> Any:
        if key not in self.vars:
            return None
        file, line = self.sources[key]
        return _converted(key, _SourcedValue(self.vars[key], _Origin(file, line)))

    @property
    def address(self) -> str:
        return self._var("ansible_host") or self.name

    @property
    def port(self) -> int | None:
        return self._var("ansible_port")

    @property
    def user(self) -> str | None:
        return self._var("ansible_user")

    @property
    def key_file(self) -> str | None:
        """The private key on the controller, `~` expanded here."""
        path = self._var("ansible_ssh_private_key_file")
        return os.path.expanduser(path) if path else None

    @property
    def connection(self) -> str:
        return self._var("ansible_connection") or "ssh"

    @property
    def become(self) -> bool:
        return bool(self._var("ansible_become"))

    @property
    def become_user(self) -> str:
        return self._var("ansible_become_user") or "root"


@dataclass
class Group:
    """One group: its own hosts and child groups, its vars (inline, then group_vars files)."""

    name: str
    hosts: list[str]
    children: list[str]
    vars: dict[str, Any]
    parents: list[str]
    depth: int
    priority: int = 1



@dataclass
class Inventory:
    """A loaded, validated inventory."""

    path: Path
    name: str
    hosts: dict[str, Host]
    groups: dict[str, Group]
    display_path: str = ""

    @property
    def known_hosts_path(self) -> Path:
        """Pinned host keys beside the inventory: `<dir>/<stem>.known_hosts`."""
        return self.path.with_name(f"{self.path.stem}.known_hosts")

    def group_hosts(self, group: str) -> list[str]:
        """Hosts of a group and its descendants, in Ansible's order (own hosts, then children's)."""
        order = [group]
        index = 0
        while index < len(order):
            order.extend(child for child in self.groups[order[index]].children if child not in order)
            index += 1
        return list(dict.fromkeys(host for name in order for host in self.groups[name].hosts))

    def select(self, pattern: str | None) -> list[Host]:
        """Hosts matching an Ansible pattern (`--limit`), in inventory order."""
        if pattern is None or pattern == "all":
            return list(self.hosts.values())
        if pattern.startswith("@"):
            raise InputError(f"--limit {pattern!r}: limit files are not supported; list the hosts")
        selected = set(match_hosts(pattern, list(self.hosts),
                                   {name: self.group_hosts(name) for name in self.groups}))
        if not selected:
            raise InputError(f"no host matches --limit {pattern!r} in {self.display_path}: "
                             "use host names, groups, globs or ~regex")
        return [host for name, host in self.hosts.items() if name in selected]

    def _storage_hosts(self) -> list[str]:
        return self.group_hosts("storage") if "storage" in self.groups else []

    @property
    def storage(self) -> Host:
        """The one host of group `storage`."""
        members = self._storage_hosts()
        if len(members) != 1:
            raise InputError(_storage_problem(members), file=self.display_path)
        return self.hosts[members[0]]

    @property
    def clients(self) -> list[Host]:
        """Every host not in group `storage`."""
        return [host for host in self.hosts.values() if "storage" not in host.groups]

    def to_ansible_list(self, limit: str | None = None) -> dict[str, Any]:
        """The document `ansible-inventory -i FILE --list` prints, as a dict (`--limit`: hostvars of those hosts)."""
        wanted = {host.name for host in self.select(limit)}
        result: dict[str, Any] = {}
        for name in self._reachable_groups():
            group = self.groups[name]
            entry: dict[str, Any] = {}
            if name != "all" and group.hosts:
                entry["hosts"] = list(group.hosts)
            if group.children:
                entry["children"] = list(group.children)
            if entry:
                result[name] = entry
        hostvars = {}
        for host in self.hosts.values():
            if host.name not in wanted:
                continue
            shown = {k: _as_json(v) for k, v in host.vars.items() if k not in _ANSIBLE_INTERNAL_VARS}
            if shown:
                hostvars[host.name] = shown
        result["_meta"] = {"hostvars": hostvars, "profile": "inventory_legacy"}
        return result

    def _reachable_groups(self) -> list[str]:
        order = ["all"]
        for name in order:
            order.extend(child for child in self.groups[name].children if child not in order)
        return order

    def graph(self) -> str:
        """The tree `ansible-inventory --graph` prints."""
        lines: list[str] = []

        def walk(name: str, depth: int) -> None:
            lines.append(_graph_line(f"@{name}:", depth))
            for child in self.groups[name].children:
                walk(child, depth + 1)
            if name != "all":
                lines.extend(_graph_line(host, depth + 1) for host in self.groups[name].hosts)

        walk("all", 0)
        return "\n".join(lines)


def _as_json(value: Any) -> Any:
    """YAML dates and times as ansible-inventory prints them (ISO 8601 strings)."""
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_json(item) for item in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _graph_line(text: str, depth: int) -> str:
    return "  |" * depth + "--" + text if depth else text


def _storage_problem(members: list[str]) -> str:
    if not members:
        return "no host in group 'storage': put exactly one host there"
    return f"group 'storage' must hold exactly one host, found {len(members)}: {', '.join(members)}"

