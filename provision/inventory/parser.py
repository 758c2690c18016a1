"""Groups and hosts from a YAML inventory and its group_vars/host_vars, built as Ansible builds them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.errors import InputError
from provision.inventory.loader import _line, _Origin, _read_yaml, _Vars
from provision.inventory.vars import _check_entity_name, _check_var, _Invalid, _priority
from provision.patterns import expand_hostname_range, parse_address

_VARS_FILE_SUFFIXES = (".yml", ".yaml", ".json")


@dataclass
class _GroupState:
    name: str
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    inline: _Vars = field(default_factory=dict)
    files: _Vars = field(default_factory=dict)
    priority: int = 1
    depth: int = 0


@dataclass
class _HostState:
    name: str
    groups: list[str] = field(default_factory=list)
    inline: _Vars = field(default_factory=dict)
    files: _Vars = field(default_factory=dict)


def _vars_dir_files(directory: Path) -> list[Path]:
    """Files of a group_vars/NAME/ directory as Ansible reads them: sorted, recursive, no hidden."""
    found: list[Path] = []
    for entry in sorted(os.listdir(directory)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        path = directory / entry
        suffix = os.path.splitext(entry)[1]
        if path.is_dir() and not suffix:
            found.extend(_vars_dir_files(path))
        elif path.is_file() and (not suffix or suffix in _VARS_FILE_SUFFIXES):
            found.append(path)
    return found


class _Parser:
    """Builds groups and hosts from the YAML inventory the way Ansible's yaml plugin does."""

    def __init__(self, path: Path, display_path: str) -> None:
        self.path = path
        self.display_path = display_path
        self.groups: dict[str, _GroupState] = {}
        self.hosts: dict[str, _HostState] = {}
        for name in ("all", "ungrouped"):
            self.groups[name] = _GroupState(name)
        self._add_child("all", "ungrouped", _Origin(display_path, 1))

    def origin(self, line: int) -> _Origin:
        return _Origin(self.display_path, line)

    def parse(self) -> None:
        data = _read_yaml(self.path, self.display_path)
        if not data:
            raise InputError("the inventory is empty: expected a mapping starting with 'all:'",
                             file=self.display_path)
        if not isinstance(data, dict):
            raise InputError(f"expected a mapping of groups starting with 'all:', got {type(data).__name__}",
                             file=self.display_path, line=1)
        if data.get("plugin"):
            raise InputError("this is an inventory plugin configuration, not a YAML inventory",
                             file=self.display_path, line=_line(data, "plugin", 1))
        for name, body in data.items():
            self._parse_group(name, body, _line(data, name, 1))
        self._reconcile()
        self._load_vars_files()

    def _parse_group(self, name: Any, body: Any, line: int) -> str:
        origin = self.origin(line)
        name = _check_entity_name(name, "group", origin)
        if body is not None and not isinstance(body, dict):
            raise InputError(f"group {name!r} must be a mapping of hosts, vars and children, "
                             f"got {type(body).__name__}", file=origin.file, line=line)
        self.groups.setdefault(name, _GroupState(name))
        for section, content in (body or {}).items():
            section_line = _line(body, section, line)
            if section not in ("hosts", "vars", "children"):
                raise InputError(f"unexpected key in group {name!r}: only hosts, vars and children are "
                                 "valid", file=origin.file, line=section_line, key=str(section))
            if isinstance(content, str):
                content = {content: None}
            if content is None:
                continue
            if not isinstance(content, dict):
                raise InputError(f"{section} of group {name!r} must be a mapping, got "
                                 f"{type(content).__name__}", file=origin.file, line=section_line)
            for key, value in content.items():
                key_line = _line(content, key, section_line)
                if section == "vars":
                    self._set_group_var(name, key, value, self.origin(key_line))
                elif section == "children":
                    child = self._parse_group(key, value, key_line)
                    self._add_child(name, child, self.origin(key_line))
                else:
                    self._parse_hosts(name, key, value, self.origin(key_line))
        return name

    def _set_group_var(self, group: str, key: Any, value: Any, origin: _Origin) -> None:
        if key == "ansible_group_priority":
            try:
                self.groups[group].priority = _priority(value)
            except _Invalid as error:
                raise InputError(str(error), file=origin.file, line=origin.line, key=key) from None
            return
        self.groups[group].inline[key] = _check_var(key, value, origin)

    def _parse_hosts(self, group: str, pattern: Any, host_vars: Any, origin: _Origin) -> None:
        if not isinstance(pattern, str):
            raise InputError(f"host name {pattern!r} must be a string: quote it",
                             file=origin.file, line=origin.line)
        try:
            base, port = parse_address(pattern)
        except ValueError:
            base, port = pattern, None
        try:
            names = expand_hostname_range(base)
        except ValueError as error:
            raise InputError(f"bad host range: {error}", file=origin.file, line=origin.line) from None
        if host_vars is None:
            host_vars = {}
        if not isinstance(host_vars, dict):
            raise InputError(f"vars of host {pattern!r} must be a mapping, got {type(host_vars).__name__}",
                             file=origin.file, line=origin.line)
        for name in names:
            name = _check_entity_name(name, "host", origin)
            host = self.hosts.get(name)
            if host is None:
                host = self.hosts[name] = _HostState(name)
                if port:
                    host.inline["ansible_port"] = _check_var("ansible_port", port, origin)
            if name not in self.groups[group].hosts:
                self.groups[group].hosts.append(name)
                host.groups.append(group)
            for key, value in host_vars.items():
                host.inline[key] = _check_var(key, value, self.origin(_line(host_vars, key, origin.line)))

    def ancestors(self, group: str) -> set[str]:
        found: set[str] = set()
        pending = list(self.groups[group].parents)
        while pending:
            parent = pending.pop()
            if parent not in found:
                found.add(parent)
                pending.extend(self.groups[parent].parents)
        return found

    def _add_child(self, parent: str, child: str, origin: _Origin) -> None:
        if parent == child or child in self.ancestors(parent):
            raise InputError(f"making {child!r} a child of {parent!r} creates a loop of groups",
                             file=origin.file, line=origin.line)
        if child not in self.groups[parent].children:
            self.groups[parent].children.append(child)
            if parent not in self.groups[child].parents:
                self.groups[child].parents.append(parent)

    def memberships(self, host: _HostState) -> set[str]:
        groups = set(host.groups)
        for group in host.groups:
            groups |= self.ancestors(group)
        return groups

    def _reconcile(self) -> None:
        """Ansible's rules: every group under `all`; hosts in no group go to `ungrouped`, others leave it."""
        for group in list(self.groups.values()):
            if group.name != "all" and not group.parents:
                self._add_child("all", group.name, self.origin(1))
        ungrouped = self.groups["ungrouped"]
        for host in self.hosts.values():
            groups = self.memberships(host)
            if "ungrouped" in groups:
                if groups - {"all", "ungrouped"} and host.name in ungrouped.hosts:
                    ungrouped.hosts.remove(host.name)
                    host.groups.remove("ungrouped")
            elif groups <= {"all"}:
                ungrouped.hosts.append(host.name)
                host.groups.append("ungrouped")
        depths: dict[str, int] = {}
        for group in self.groups.values():
            group.depth = self._depth(group.name, depths)

    def _depth(self, name: str, memo: dict[str, int]) -> int:
        """Longest path from `all`, which is where Ansible's incremental depth updates end up."""
        if name not in memo:
            parents = self.groups[name].parents
            memo[name] = 1 + max(self._depth(p, memo) for p in parents) if parents else 0
        return memo[name]

    def _display(self, path: Path) -> str:
        return os.path.join(os.path.dirname(self.display_path), os.path.relpath(path, self.path.parent))

    def _load_vars_files(self) -> None:
        for group in self.groups.values():
            group.files = self._vars_files("group_vars", group.name)
        for host in self.hosts.values():
            host.files = self._vars_files("host_vars", host.name)

    def _vars_files(self, subdir: str, name: str) -> _Vars:
        """Vars of group_vars/NAME or host_vars/NAME: a file (NAME, .yml, .yaml, .json) or a directory."""
        base = self.path.parent / subdir
        if not base.exists():
            return {}
        if not base.is_dir():
            raise InputError(f"{subdir} must be a directory of vars files", file=self._display(base))
        files: list[Path] = []
        for suffix in ("", *_VARS_FILE_SUFFIXES):
            candidate = base / f"{name}{suffix}"
            if candidate.exists():
                files = _vars_dir_files(candidate) if candidate.is_dir() else [candidate]
                break
        merged: _Vars = {}
        for path in files:
            display = self._display(path)
            data = _read_yaml(path, display)
            if not data:
                continue
            if not isinstance(data, dict):
                raise InputError(f"expected a mapping of variable names to values, got {type(data).__name__}",
                                 file=display, line=1)
            for key, value in data.items():
                merged[key] = _check_var(key, value, _Origin(display, _line(data, key, 1)))
        return merged

    def sorted_groups(self, names: Iterable[str]) -> list[str]:
        """Ansible's group precedence: shallow before deep, then ansible_group_priority, then name."""
        return sorted(names, key=lambda n: (self.groups[n].depth, self.groups[n].priority, n))

    def host_vars(self, host: _HostState) -> tuple[_Vars, list[str]]:
        """Merged vars and groups (precedence order) following VariableManager's default precedence."""
        groups = self.sorted_groups(self.memberships(host) - {"all"})
        merged: _Vars = dict(self.groups["all"].inline)
        for name in groups:
            merged |= self.groups[name].inline
        merged |= self.groups["all"].files
        for name in groups:
            merged |= self.groups[name].files
        merged |= host.inline
        merged |= host.files
        return merged, ["all", *groups]

