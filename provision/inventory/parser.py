"""Groups and hosts from a YAML inventory and its group_vars/host_vars, built as Ansible builds them."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.errors import InputError
from provision.inventory.loader import (
    MAX_DEPTH,
    Warnings,
    _line,
    _MarkedDict,
    _Origin,
    _read_yaml,
    _SourcedValue,
    _Vars,
)
from provision.inventory.vars import _describe, probable_typo
from provision.patterns import LOCALHOST_NAMES, expand_hostname_range, parse_address

_VARS_FILE_SUFFIXES = (".yml", ".yaml", ".json")
#: Characters Ansible warns about in group names (it keeps the names as they are).
_INVALID_GROUP_CHARS = re.compile(r"^[\d\W]|[^\w]")
#: Identifiers that Ansible still refuses as var names (Jinja's constants).
_JINJA_KEYWORDS = frozenset({"False", "None", "True", "false", "none", "not", "true"})


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
    origin: _Origin
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
    """Builds groups and hosts from the YAML inventory the way Ansible's yaml plugin does.

    Where Ansible warns and skips (a group that is not a mapping, an unknown key in a group, a var
    name that is no identifier), this warns in Ansible's words and skips; where Ansible refuses, this
    refuses with the file and line.
    """

    def __init__(self, path: Path, display_path: str, warnings: Warnings) -> None:
        self.path = path
        self.display_path = display_path
        self.warnings = warnings
        self.groups: dict[str, _GroupState] = {}
        self.hosts: dict[str, _HostState] = {}
        self.typo_hints: dict[str, tuple[str, _Origin]] = {}
        for name in ("all", "ungrouped"):
            self.groups[name] = _GroupState(name)
        self._add_child("all", "ungrouped", _Origin(display_path, 1))

    def origin(self, line: int) -> _Origin:
        return _Origin(self.display_path, line)

    def parse(self) -> None:
        data = _read_yaml(self.path, self.display_path, self.warnings)
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

    def _add_group(self, name: Any, origin: _Origin) -> str:
        if not isinstance(name, str):
            raise InputError(f"Invalid group name supplied, expected a string but got {type(name)} for {name}",
                             file=origin.file, line=origin.line)
        if not name:
            raise InputError("Invalid empty/false group name provided", file=origin.file, line=origin.line)
        if _INVALID_GROUP_CHARS.search(name):
            self.warnings.add("Invalid characters were found in group names but not replaced, use -vvvv to see "
                              f"details (group {name!r})", origin)
        self.groups.setdefault(name, _GroupState(name))
        return name

    def _parse_group(self, name: Any, body: Any, line: int) -> Any:
        origin = self.origin(line)
        if body is not None and not isinstance(body, dict):
            self.warnings.add(f"Skipping '{name}' as this is not a valid group definition", origin)
            return name
        name = self._add_group(name, origin)
        if body is None:
            return name
        sections = {}
        for section in ("vars", "children", "hosts"):
            if section not in body:
                continue
            content = body[section]
            if isinstance(content, str):
                content = {content: None}
            if content is not None and not isinstance(content, dict):
                raise InputError(f'Invalid "{section}" entry for "{name}" group, requires a dictionary, found '
                                 f'"{type(content)}" instead.', file=origin.file, line=_line(body, section, line))
            sections[section] = content
        for key, content in body.items():
            key_origin = self.origin(_line(body, key, line))
            content = sections.get(key, content)
            if content is not None and not isinstance(content, dict):
                self.warnings.add(f"Skipping key ({key}) in group ({name}) as it is not a mapping, it is a "
                                  f"{type(content)}", key_origin)
            elif content is None:
                continue
            elif key == "vars":
                for var, value in content.items():
                    self._set_group_var(name, var, value, self.origin(_line(content, var, key_origin.line)),
                                        content)
            elif key == "children":
                for child_name, child_body in content.items():
                    child_origin = self.origin(_line(content, child_name, key_origin.line))
                    child = self._parse_group(child_name, child_body, child_origin.line)
                    self._add_child(name, child, child_origin)
            elif key == "hosts":
                for pattern, host_vars in content.items():
                    self._parse_hosts(name, pattern, host_vars, self.origin(_line(content, pattern, key_origin.line)))
            else:
                self.warnings.add(f'Skipping unexpected key ({key}) in group ({name}), only "vars", "children" and '
                                  '"hosts" are valid', key_origin)
        return name

    def _set_group_var(self, group: str, key: Any, value: Any, origin: _Origin, mapping: Any) -> None:
        self._check_var_name(key, origin)
        if key == "ansible_group_priority":
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError):
                raise InputError(f"expected an integer, got {_describe(value)}", file=origin.file,
                                 line=origin.line, key=key) from None
            return
        self.groups[group].inline[key] = self._sourced(key, value, origin, mapping)

    def _check_var_name(self, key: Any, origin: _Origin) -> None:
        """Ansible accepts any scalar as a var name but deprecates names that are no identifiers."""
        if not (isinstance(key, str) and key.isidentifier() and key.isascii() and key not in _JINJA_KEYWORDS):
            self.warnings.add(f"Accepting inventory variable with invalid name {key!r}.", origin,
                              kind="DEPRECATION WARNING")

    def _sourced(self, key: Any, value: Any, origin: _Origin, mapping: Any) -> _SourcedValue:
        """The value with where it was set (in `mapping`, which knows a different earlier value); a name
        close to one of ours is remembered for a typo hint."""
        if isinstance(key, str) and key not in self.typo_hints:
            near = probable_typo(key)
            if near is not None:
                self.typo_hints[key] = (near, origin)
        return _SourcedValue(value, origin, mapping.conflicts.get(key) if isinstance(mapping, _MarkedDict) else None)

    def _parse_hosts(self, group: str, pattern: Any, host_vars: Any, origin: _Origin) -> None:
        if not isinstance(pattern, str):
            raise InputError(f"Host pattern {pattern} must be a string. Enclose integers/floats in quotation marks.",
                             file=origin.file, line=origin.line)
        try:
            base, port = parse_address(pattern)
        except ValueError:
            base, port = pattern, None
        try:
            names = expand_hostname_range(base)
        except ValueError as error:
            raise InputError(f"bad host range: {error}", file=origin.file, line=origin.line) from None
        host_vars = host_vars or {}
        if not isinstance(host_vars, dict):
            raise InputError(f"Invalid data from file, expected dictionary and got: {host_vars!r}",
                             file=origin.file, line=origin.line)
        for name in names:
            if not name:
                raise InputError("Invalid empty host name provided", file=origin.file, line=origin.line)
            host = self.hosts.get(name)
            if host is None:
                host = self.hosts[name] = _HostState(name, origin=origin)
                self._note_localhost(name, origin)
                if port:
                    host.inline["ansible_port"] = _SourcedValue(port, origin)
            if name not in self.groups[group].hosts:
                self.groups[group].hosts.append(name)
                host.groups.append(group)
            for key, value in host_vars.items():
                key_origin = self.origin(_line(host_vars, key, origin.line))
                self._check_var_name(key, key_origin)
                host.inline[key] = self._sourced(key, value, key_origin, host_vars)

    def _note_localhost(self, name: str, origin: _Origin) -> None:
        if name not in LOCALHOST_NAMES:
            return
        first = next(host for host in self.hosts if host in LOCALHOST_NAMES)
        if first != name:
            self.warnings.add(f"A duplicate localhost-like entry was found ({name}). First found localhost was "
                              f"{first}", origin)

    def ancestors(self, group: str) -> set[str]:
        found: set[str] = set()
        pending = list(self.groups[group].parents)
        while pending:
            parent = pending.pop()
            if parent not in found:
                found.add(parent)
                pending.extend(self.groups[parent].parents)
        return found

    def _add_host_child(self, parent: str, child: Any, origin: _Origin) -> None:
        """A child that is no group (its definition was skipped) may still name a host, as in Ansible."""
        if child not in self.hosts:
            raise InputError(f"{child} is not a known host nor group", file=origin.file, line=origin.line)
        if child not in self.groups[parent].hosts:
            self.groups[parent].hosts.append(child)
            self.hosts[child].groups.append(parent)

    def _add_child(self, parent: str, child: Any, origin: _Origin) -> None:
        if parent == child or child in self.ancestors(parent):
            raise InputError(f"Adding group '{child}' as child to '{parent}' creates a recursive dependency loop.",
                             file=origin.file, line=origin.line)
        if child not in self.groups:
            self._add_host_child(parent, child, origin)
        elif child not in self.groups[parent].children:
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
        """Longest path from `all`, which is where Ansible's incremental depth updates end up.

        Walked without recursion, and refused past MAX_DEPTH: a chain of thousands of groups would
        otherwise exhaust the stack here or in any later walk of the tree.
        """
        pending = [name]
        while pending:
            current = pending[-1]
            if current in memo:
                pending.pop()
                continue
            parents = self.groups[current].parents
            unknown = [parent for parent in parents if parent not in memo]
            if unknown:
                pending.extend(unknown)
                continue
            memo[current] = 1 + max(memo[parent] for parent in parents) if parents else 0
            if memo[current] > MAX_DEPTH:
                raise InputError(f"group {current!r} is nested more than {MAX_DEPTH} groups deep below 'all'",
                                 file=self.display_path)
            pending.pop()
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
        if not base.exists() or name.startswith("/"):
            return {}
        if not base.is_dir():
            self.warnings.add(f"Found {subdir} that is not a directory, skipping: {self._display(base)}")
            return {}
        files: list[Path] = []
        for suffix in ("", *_VARS_FILE_SUFFIXES):
            candidate = base / f"{name}{suffix}"
            if candidate.exists():
                files = _vars_dir_files(candidate) if candidate.is_dir() else [candidate]
                break
        merged: _Vars = {}
        for path in files:
            display = self._display(path)
            data = _read_yaml(path, display, self.warnings)
            if not data:
                continue
            if not isinstance(data, dict):
                raise InputError(f"expected a mapping of variable names to values, got {type(data).__name__}",
                                 file=display, line=1)
            for key, value in data.items():
                merged[key] = self._sourced(key, value, _Origin(display, _line(data, key, 1)), data)
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

