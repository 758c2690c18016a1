"""The loaded inventory: hosts, groups, their vars, patterns and ansible-inventory's views of them."""

from __future__ import annotations

import datetime
import functools
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.errors import InputError
from provision.inventory.loader import UnsafeText, VaultedValue, Warnings, _Origin, _SourcedValue
from provision.inventory.vars import (
    BAD_STEM,
    CONNECTION_VARS,
    DEFAULTS,
    Settings,
    _converted,
    _host_address,
    _Invalid,
    marker_name,
)
from provision.patterns import LOCALHOST_NAMES, match_hosts

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


#: Ansible's password vars: provision never reads them, but a vaulted one on a host it must reach means the
#: password is meant for it, and it can only come from `provision secrets`.
_PASSWORD_VARS = ("ansible_password", "ansible_ssh_pass", "ansible_become_password", "ansible_become_pass")

#: Playbook keywords and Jinja globals that ansible-core (2.19) reserves: ansible-inventory warns about vars
#: named so (`vars` excepted).
_RESERVED_NAMES = frozenset({
    "action", "always", "any_errors_fatal", "args", "async", "async_val", "become", "become_exe", "become_flags",
    "become_method", "become_user", "block", "changed_when", "check_mode", "collections", "connection", "cycler",
    "debugger", "delay", "delegate_facts", "delegate_to", "dict", "diff", "environment", "fact_path", "failed_when",
    "force_handlers", "gather_facts", "gather_timeout", "handlers", "hosts", "ignore_errors", "ignore_unreachable",
    "joiner", "lipsum", "local_action", "lookup", "loop", "loop_control", "loop_with", "max_fail_percentage",
    "module_defaults", "name", "namespace", "no_log", "notify", "now", "omit", "order", "poll", "port", "post_tasks",
    "pre_tasks", "q", "query", "range", "register", "remote_user", "rescue", "retries", "roles", "run_once",
    "serial", "strategy", "tags", "tasks", "throttle", "timeout", "undef", "until", "vars_files", "vars_prompt",
    "when", "with_",
})


@dataclass
class Host:
    """One inventory host: Ansible's merged vars, its groups, and our settings (checked when first read)."""

    name: str
    vars: dict[Any, Any]
    groups: list[str]
    sources: dict[Any, tuple[str, int]] = field(default_factory=dict, repr=False)
    origin: tuple[str, int] = ("", 0)
    #: Vars whose mapping gave them a different value before (key -> that line): Ansible uses the last.
    conflicts: dict[Any, int] = field(default_factory=dict, repr=False)
    resolve_settings: Callable[[Host], Settings] | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def settings(self) -> Settings:
        """Our vars with defaults applied, each checked: InputError (file, line, var) on the first read."""
        if self.resolve_settings is None:
            raise InputError(f"host {self.name} belongs to no inventory")
        return self.resolve_settings(self)

    def source(self, key: str) -> tuple[str, int] | None:
        """File and line where the winning value of `key` was set, None when unset."""
        return self.sources.get(key)

    def sourced(self, key: str) -> _SourcedValue:
        file, line = self.sources[key]
        return _SourcedValue(self.vars[key], _Origin(file, line), self.conflicts.get(key))

    def _var(self, key: str) -> Any:
        return _converted(key, self.sourced(key)) if key in self.vars else None

    def setting(self, key: str) -> Any:
        """One of our vars that has a fixed default, checked, without needing the others (e.g. `project`)."""
        return self._var(key) if key in self.vars else DEFAULTS[key]

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

    def _refuse(self, why: str, key: str | None = None) -> InputError:
        file, line = self.source(key) if key and key in self.sources else self.origin
        return InputError(f"host {self.name}: {why}", file=file or None, line=line or None, key=key)

    def check_reachable(self) -> None:
        """Refuse, before anything is touched, a host provision must connect to but cannot handle safely."""
        connection = self.vars.get("ansible_connection", "ssh")
        if connection not in ("ssh", "local"):
            raise self._refuse(f"ansible_connection is {connection!r}, and provision connects only with ssh "
                               "(or local): set ansible_connection: ssh for it, or leave it out with --limit",
                               "ansible_connection")
        if connection == "ssh" and "ansible_host" not in self.vars:
            try:
                _host_address(self.name)
            except _Invalid:
                raise self._refuse("its name is not a hostname or IP address that ssh can reach: set "
                                   "ansible_host to its address") from None
        for key in CONNECTION_VARS:
            self._var(key)
        for key in _PASSWORD_VARS:
            if isinstance(self.vars.get(key), VaultedValue):
                raise self._refuse(f"{key} is encrypted with ansible-vault, which provision cannot read: remove it "
                                   "and store the password with `provision secrets set --scope HOST "
                                   "become_password`", key)

    def check_marker(self) -> None:
        """A client's name becomes part of its key lines' marker: it must be a plain name."""
        why = marker_name(self.name)
        if why is not None:
            raise self._refuse(f"its name cannot mark its key lines on storage ({why}): give the host a plain "
                               "name and its address in ansible_host")


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
    """A loaded inventory: Ansible's structure and vars; our vars are checked when a command reads them."""

    path: Path
    hosts: dict[str, Host]
    groups: dict[str, Group]
    display_path: str = ""
    name_setting: _SourcedValue | None = None
    stem_name: str | None = None

    @functools.cached_property
    def name(self) -> str:
        """inventory_name (set under `all`) or the file's stem: it scopes secrets, pins and key markers."""
        if self.name_setting is not None:
            return _converted("inventory_name", self.name_setting)
        if self.stem_name is None:
            raise InputError(BAD_STEM, file=self.display_path, key="inventory_name")
        return self.stem_name

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

    def match(self, pattern: str | None) -> list[Host]:
        """Hosts matching an Ansible pattern (`--limit`), in inventory order; none is a warning, as in Ansible."""
        if pattern is None or pattern == "all":
            return list(self.hosts.values())
        if pattern.startswith("@"):
            raise InputError(f"--limit {pattern!r}: limit files are not supported; list the hosts")
        warnings = Warnings()
        localhost = next((name for name in self.hosts if name in LOCALHOST_NAMES), None)
        selected = set(match_hosts(pattern, list(self.hosts), {name: self.group_hosts(name) for name in self.groups},
                                   warnings.add, localhost))
        warnings.emit()
        return [host for name, host in self.hosts.items() if name in selected]

    def select(self, pattern: str | None) -> list[Host]:
        """Hosts a play works on: as `match`, but selecting none is an error."""
        selected = self.match(pattern)
        if not selected:
            raise InputError(f"no host matches --limit {pattern!r} in {self.display_path}: "
                             "use host names, groups, globs or ~regex")
        return selected

    def check_targets(self, hosts: Iterable[Host], *, clients: Iterable[Host] = ()) -> None:
        """Refuse, before anything is touched, hosts a play must reach but cannot handle safely.

        `clients` also get key lines on storage, so their names must make markers.
        """
        for host in hosts:
            host.check_reachable()
            if host.become:
                _ = self.name  # its become_password secret is looked up under the inventory's name
        for host in clients:
            host.check_marker()

    def storage_members(self) -> list[str]:
        """Hosts of group `storage` (there must be exactly one)."""
        return self.group_hosts("storage") if "storage" in self.groups else []

    @property
    def storage(self) -> Host:
        """The one host of group `storage`."""
        members = self.storage_members()
        if len(members) != 1:
            raise InputError(storage_problem(members), file=self.display_path)
        return self.hosts[members[0]]

    @property
    def clients(self) -> list[Host]:
        """Every host not in group `storage`."""
        return [host for host in self.hosts.values() if "storage" not in host.groups]

    @property
    def password_clients(self) -> list[Host]:
        """Clients whose DVC remote authenticates with storage_user's password (`auth: password`)."""
        return [host for host in self.clients if host.setting("auth") == "password"]

    def check_password_access(self) -> None:
        """InputError when password clients and read-only clients share the inventory.

        The drop-in's ForceCommand applies to every session of storage_user, key logins included, and
        sshd lets it win over a key line's own command: `internal-sftp -R` would become read-write.
        """
        password = self.password_clients
        readers = [host for host in self.clients if host.setting("access") == "read"]
        if password and readers:
            file, line = readers[0].source("access") or ("", 0)
            raise InputError(f"{', '.join(h.name for h in readers)} has access: read, but "
                             f"{', '.join(h.name for h in password)} uses auth: password; storage_user's password "
                             "login forces SFTP read-write for every session of the account, so read-only key "
                             "lines could write: use auth: key for all clients (recommended), or no read-only "
                             "clients", file=file or None, line=line or None, key="access")

    def to_ansible_list(self, limit: str | None = None) -> dict[str, Any]:
        """The document `ansible-inventory -i FILE --list [--limit PATTERN]` prints, as a dict."""
        wanted = {host.name for host in self.match(limit)}
        result: dict[str, Any] = {}
        for name in self._reachable_groups():
            group = self.groups[name]
            entry: dict[str, Any] = {}
            hosts = [host for host in group.hosts if host in wanted]
            if name != "all" and hosts:
                entry["hosts"] = hosts
            if group.children:
                entry["children"] = list(group.children)
            if entry:
                result[name] = entry
        hostvars = {}
        warnings = Warnings()
        for host in self.hosts.values():
            if host.name not in wanted:
                continue
            for key in host.vars:
                if key in _RESERVED_NAMES:
                    file, line = host.sources[key]
                    warnings.add(f"Found variable using reserved name {key!r}.", _Origin(file, line))
            shown = _as_json({k: v for k, v in host.vars.items() if k not in _ANSIBLE_INTERNAL_VARS})
            if shown:
                hostvars[host.name] = shown
        result["_meta"] = {"hostvars": hostvars, "profile": "inventory_legacy"}
        warnings.emit()
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
    """A value as ansible-inventory prints it: dates in ISO 8601, sets as lists, `!unsafe` and `!vault` marked,
    non-string keys as JSON writes them."""
    if isinstance(value, UnsafeText):
        return {"__ansible_unsafe": str(value)}
    if isinstance(value, VaultedValue):
        return {"__ansible_vault": value.ciphertext}
    if isinstance(value, dict):
        return {key if isinstance(key, str) else json.dumps(key, default=str).strip('"'): _as_json(item)
                for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_as_json(item) for item in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _graph_line(text: str, depth: int) -> str:
    return "  |" * depth + "--" + text if depth else text


def storage_problem(members: list[str]) -> str:
    if not members:
        return "no host in group 'storage': put exactly one host there"
    return f"group 'storage' must hold exactly one host, found {len(members)}: {', '.join(members)}"

