"""Ansible-compatible YAML inventory with host_vars/ and group_vars/, patterns and our vars table.

The same file must give the same hosts, groups and vars here as in `ansible-inventory -i FILE --list`,
so parsing and precedence follow ansible-core (yaml inventory plugin, host_group_vars vars plugin,
VariableManager). PyYAML is used, as Ansible does, so YAML 1.1 scalars (`yes`, `on`) mean the same in
both. Every var keeps the file and line it came from, and every value of ours is validated at load,
before any host is contacted, so errors name where to fix them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import posixpath
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from provision.errors import InputError
from provision.patterns import expand_hostname_range, match_hosts, parse_address

INVENTORY_ENV = "PROVISION_INVENTORY"
_INVENTORY_SUFFIXES = ("", ".yml", ".yaml", ".json")
_VARS_FILE_SUFFIXES = (".yml", ".yaml", ".json")
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
_TRUE_WORDS = frozenset({"y", "yes", "on", "1", "true", "t"})
_FALSE_WORDS = frozenset({"n", "no", "off", "0", "false", "f"})


# ---------------------------------------------------------------- YAML with positions

@dataclass(frozen=True)
class _Origin:
    """Where a value was written."""

    file: str
    line: int


@dataclass(frozen=True)
class _SourcedValue:
    """A var's value and where it was set."""

    value: Any
    origin: _Origin


_Vars = dict[str, _SourcedValue]


class _MarkedDict(dict):
    """A YAML mapping that remembers the line of each key."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


class _MarkedLoader(yaml.SafeLoader):
    """SafeLoader (Ansible's YAML 1.1 semantics) that records key lines and refuses duplicate keys."""

    def __init__(self, stream: str, display_path: str) -> None:
        super().__init__(stream)
        self.display_path = display_path

    def construct_marked_map(self, node: yaml.MappingNode) -> Iterable[_MarkedDict]:
        mapping = _MarkedDict()
        yield mapping
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                duplicate = key in seen
            except TypeError:
                raise InputError("a mapping key must be a scalar",
                                 file=self.display_path, line=line) from None
            if duplicate:
                raise InputError(f"duplicate key {key!r} in this mapping: keep one",
                                 file=self.display_path, line=line)
            seen.add(key)
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            mapping[key] = self.construct_object(value_node, deep=False)
            mapping.lines[key] = key_node.start_mark.line + 1

    def construct_unsafe(self, node: yaml.Node) -> Any:
        """Ansible's `!unsafe` only stops templating: the value is the plain string."""
        if isinstance(node, yaml.ScalarNode):
            return self.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return self.construct_sequence(node, deep=True)
        return self.construct_mapping(node, deep=True)

    def construct_vault(self, node: yaml.Node) -> Any:
        raise InputError("ansible-vault values cannot be read by provision: keep secrets in "
                         "`provision secrets`", file=self.display_path, line=node.start_mark.line + 1)

    def construct_binary(self, node: yaml.Node) -> Any:
        raise InputError("!!binary values are not supported (Ansible cannot show them either): use a string",
                         file=self.display_path, line=node.start_mark.line + 1)


_MarkedLoader.add_constructor("tag:yaml.org,2002:map", _MarkedLoader.construct_marked_map)
_MarkedLoader.add_constructor("!unsafe", _MarkedLoader.construct_unsafe)
_MarkedLoader.add_constructor("!vault", _MarkedLoader.construct_vault)
_MarkedLoader.add_constructor("tag:yaml.org,2002:binary", _MarkedLoader.construct_binary)


def _read_yaml(path: Path, display_path: str) -> Any:
    """One YAML document; InputError with file:line when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", file=display_path) from None
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", file=display_path) from None
    if text.lstrip().startswith("$ANSIBLE_VAULT"):
        raise InputError("encrypted with ansible-vault, which provision cannot read: keep secrets in "
                         "`provision secrets`", file=display_path)
    loader = _MarkedLoader(text, display_path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "cannot parse"
        raise InputError(f"invalid YAML: {problem}", file=display_path,
                         line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as error:
        raise InputError(f"invalid YAML: {error}", file=display_path) from None
    finally:
        loader.dispose()


def _line(mapping: Any, key: Any, default: int) -> int:
    return mapping.lines.get(key, default) if isinstance(mapping, _MarkedDict) else default


# ---------------------------------------------------------------- value checks

class _Invalid(ValueError):
    """A value is wrong; the message says what is wrong and what is expected."""


_NAME_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9._-]*\Z")
_PATH_RE = re.compile(r"[A-Za-z0-9._/+@%,:=-]+\Z")
_URL_RE = re.compile(r"[A-Za-z0-9._/~+@%,:=\[\]-]+\Z")
_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"(?=.{{1,253}}\Z){_HOST_LABEL}(?:\.{_HOST_LABEL})*\Z")
_SCP_LIKE_RE = re.compile(r"(?:[A-Za-z0-9._-]+@)?([A-Za-z0-9._-]+):([^/:][^:]*|/[^:]*)\Z")
_URL_SCHEMES = ("ssh", "https", "git", "file")
_CACHE_TYPES = ("reflink", "symlink", "hardlink", "copy")
_PATH_CHARS_HELP = "letters, digits and . _ - / + @ % , : ="


def _describe(value: Any) -> str:
    shown = repr(value)
    return f"{type(value).__name__} {shown if len(shown) <= 60 else shown[:57] + '...'}"


def _text(value: Any, expected: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected {expected}, got {_describe(value)}")
    if "{{" in value or "{%" in value:
        raise _Invalid("Jinja templates are not evaluated by provision: write the value itself")
    return value


def _refuse_char(value: str, allowed: re.Pattern[str], kind: str, help_text: str) -> None:
    if allowed.match(value):
        return
    bad = next((c for c in value if not allowed.match(c)), "")
    raise _Invalid(f"{value!r} contains {bad!r}, which is not allowed in {kind} "
                   f"(no shell metacharacters, whitespace or quotes): use {help_text}")


def _name(value: Any, max_length: int = 255) -> str:
    name = _text(value, "a name (letters, digits, . _ -)")
    if not name or name in (".", ".."):
        raise _Invalid(f"{name!r} is not a name: expected letters, digits and . _ -")
    if name.startswith("-"):
        raise _Invalid(f"{name!r} starts with '-': expected a name starting with a letter or digit")
    _refuse_char(name, _NAME_RE, "a name", "letters, digits and . _ -")
    if len(name) > max_length:
        raise _Invalid(f"{name!r} is longer than {max_length} characters")
    return name


def _account(value: Any) -> str:
    """A user or group name: the name rules plus Linux's 32-character limit."""
    return _name(value, max_length=32)


def _path_parts(path: str, kind: str) -> str:
    if path:
        _refuse_char(path, _PATH_RE, kind, _PATH_CHARS_HELP)
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _Invalid(f"{path!r} contains '..': write the path without it")
    return "/".join(parts)


def _abs_path(value: Any) -> str:
    path = _text(value, "an absolute path")
    if not path.startswith("/"):
        raise _Invalid(f"{path!r} is relative: expected an absolute path (starting with /)")
    return "/" + _path_parts(path, "a path")


def _home_or_abs_path(value: Any) -> str:
    """An absolute path, or `~/...` which stays as is to be expanded on the remote host."""
    path = _text(value, "an absolute path or one starting with ~/")
    if path.startswith("~/"):
        rest = _path_parts(path[2:], "a path")
        if not rest:
            raise _Invalid(f"{path!r} names the home directory itself: expected a path below it")
        return "~/" + rest
    if not path.startswith("/"):
        raise _Invalid(f"{path!r} is relative: expected an absolute path or one starting with ~/")
    return "/" + _path_parts(path, "a path")


def _local_path(value: Any) -> str:
    path = _text(value, "a path")
    if not path or any(c in path for c in "\n\r\0"):
        raise _Invalid("expected a path on one line")
    return path


def _integer(value: Any, expected: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _Invalid(f"expected {expected}, got {_describe(value)}")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise _Invalid(f"expected {expected}, got {_describe(value)}")
        return int(value)
    return value


def _port(value: Any) -> int:
    port = _integer(value, "a TCP port number 1..65535")
    if not 1 <= port <= 65535:
        raise _Invalid(f"{port} is outside 1..65535: expected a TCP port number")
    return port


def _gid(value: Any) -> int | None:
    if value is None:
        return None
    gid = _integer(value, "a positive group id")
    if not 1 <= gid <= 4294967294:
        raise _Invalid(f"{gid} is not a usable group id: expected 1..4294967294")
    return gid


def _priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _Invalid(f"expected an integer, got {_describe(value)}")
    try:
        return int(value)
    except ValueError:
        raise _Invalid(f"expected an integer, got {_describe(value)}") from None


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise _Invalid(f"expected one of {', '.join(options)}, got {_describe(value)}")
        return value
    return check


def _host_address(value: Any) -> str:
    address = _text(value, "a hostname or IP address")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        pass
    if not _HOSTNAME_RE.match(address):
        raise _Invalid(f"{address!r} is not a hostname or IP address")
    return address


def _git_remote(value: Any) -> str:
    remote = _text(value, "an absolute path or a git URL")
    if remote.startswith("/"):
        return _abs_path(remote)
    expected = "an absolute path, ssh://, https://, git://, file:// URL or user@host:path"
    _refuse_char(remote, _URL_RE, "a git remote", "letters, digits and . _ - / ~ + @ % , : = [ ]")
    if "://" in remote:
        try:
            url = urlsplit(remote)
            _ = url.port  # reading the port validates it
        except ValueError as error:
            raise _Invalid(f"{remote!r} is not a valid URL ({error}): expected {expected}") from None
        if url.scheme not in _URL_SCHEMES:
            raise _Invalid(f"{remote!r} uses scheme {url.scheme!r}: expected {expected}")
        if url.scheme == "file":
            if not url.path.startswith("/"):
                raise _Invalid(f"{remote!r} has no absolute path: expected file:///path")
        elif not url.hostname or not url.path.strip("/"):
            raise _Invalid(f"{remote!r} needs a host and a repository path: expected {expected}")
        return remote
    if _SCP_LIKE_RE.match(remote):
        return remote
    raise _Invalid(f"{remote!r} is neither a path nor a URL: expected {expected}")


def _version_spec(value: Any) -> str:
    spec = _text(value, "a version specifier such as >=3.50,<4")
    compact = "".join(spec.split())
    try:
        parsed = SpecifierSet(compact)
    except InvalidSpecifier:
        raise _Invalid(f"{spec!r} is not a PEP 440 version specifier: expected e.g. >=3.50,<4 "
                       "or ==3.51.0") from None
    if not len(parsed):
        raise _Invalid("empty version specifier: expected e.g. >=3.50,<4")
    return compact


def _cache_types(value: Any) -> str:
    if isinstance(value, list):
        items = [_text(item, "a link type") for item in value]
    else:
        items = [item.strip() for item in _text(value, "a comma-separated list of link types").split(",")]
    unknown = [item for item in items if item not in _CACHE_TYPES]
    if not items or unknown:
        raise _Invalid(f"unknown link type(s) {', '.join(map(repr, unknown)) or 'none given'}: expected a "
                       f"comma-separated list of {', '.join(_CACHE_TYPES)}")
    if len(set(items)) != len(items):
        raise _Invalid("a link type is listed twice: list each once")
    return ",".join(items)


def _command(value: Any) -> list[str]:
    if isinstance(value, list):
        argv = [_text(item, "a string argument") for item in value]
    else:
        try:
            argv = shlex.split(_text(value, "a command line or a list of arguments"))
        except ValueError as error:
            raise _Invalid(f"cannot split the command: {error}") from None
    if not argv or not argv[0]:
        raise _Invalid("empty command: expected e.g. systemctl reload ssh")
    if any(c in item for item in argv for c in "\n\r\0"):
        raise _Invalid("the command contains a newline or NUL: write it on one line")
    return argv


def _boolean(value: Any) -> bool:
    """Ansible's truthiness: true/yes/on/1 and false/no/off/0 (any case), or a YAML boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise _Invalid(f"expected a boolean (true/false, yes/no), got {_describe(value)}")


def _shared_cache(value: Any) -> str | None:
    return None if value is None else _home_or_abs_path(value)


OUR_VARS: dict[str, Callable[[Any], Any]] = {
    "inventory_name": _name,
    "project": _name,
    "dvc_remote": _name,
    "nfs_root": _abs_path,
    "dvc_storage": _abs_path,
    "git_remote": _git_remote,
    "server_repo": _abs_path,
    "server_cache": _choice("separate", "shared"),
    "storage_address": _host_address,
    "storage_port": _port,
    "storage_user": _account,
    "git_user": _account,
    "storage_group": _account,
    "storage_gid": _gid,
    "auth": _choice("key", "password"),
    "access": _choice("readwrite", "read"),
    "workdir": _home_or_abs_path,
    "client_key": _home_or_abs_path,
    "shared_cache": _shared_cache,
    "dvc_version": _version_spec,
    "dvc_venv": _abs_path,
    "cache_types": _cache_types,
    "sshd_reload_command": _command,
}
CONNECTION_VARS: dict[str, Callable[[Any], Any]] = {
    "ansible_host": _host_address,
    "ansible_port": _port,
    "ansible_user": _account,
    "ansible_ssh_private_key_file": _local_path,
    "ansible_connection": _choice("ssh", "local"),
    "ansible_become": _boolean,
    "ansible_become_user": _account,
}
_CHECKS = OUR_VARS | CONNECTION_VARS


def _edit_distance(left: str, right: str) -> int:
    """Damerau-Levenshtein (optimal string alignment): a swapped pair of letters counts as one edit."""
    rows = [list(range(len(right) + 1))]
    for i, left_char in enumerate(left, 1):
        row = [i]
        for j, right_char in enumerate(right, 1):
            cost = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (left_char != right_char))
            if i > 1 and j > 1 and left_char == right[j - 2] and left[i - 2] == right_char:
                cost = min(cost, rows[-2][j - 2] + 1)
            row.append(cost)
        rows.append(row)
    return rows[-1][-1]


def _probable_typo(key: str) -> str | None:
    """One of our vars that `key` is within two edits of (one edit for short names like `auth`)."""
    for ours in sorted(OUR_VARS):
        limit = 1 if min(len(ours), len(key)) <= 5 else 2
        if _edit_distance(key, ours) <= limit:
            return ours
    return None


def _converted(key: str, setting: _SourcedValue) -> Any:
    """The checked, normalized value of one of our vars; InputError naming where it was set."""
    try:
        return _CHECKS[key](setting.value)
    except _Invalid as error:
        raise InputError(str(error), file=setting.origin.file, line=setting.origin.line, key=key) from None


def _check_var(key: Any, value: Any, origin: _Origin) -> _SourcedValue:
    """Validate one occurrence of a var, wherever it is written, so that errors point at it."""
    if not isinstance(key, str):
        raise InputError(f"variable names must be strings, got {_describe(key)}: quote it",
                         file=origin.file, line=origin.line)
    setting = _SourcedValue(value, origin)
    if key in _CHECKS:
        _converted(key, setting)
    elif not key.startswith("ansible_"):
        near = _probable_typo(key)
        if near is not None:
            raise InputError(f"unknown variable, probable typo of {near}: rename it (or pick a name "
                             "further from provision's vars)", file=origin.file, line=origin.line, key=key)
    return setting


def _check_entity_name(name: Any, kind: str, origin: _Origin) -> str:
    try:
        return _name(name)
    except _Invalid as error:
        raise InputError(f"bad {kind} name: {error}", file=origin.file, line=origin.line) from None


# ---------------------------------------------------------------- public model

@dataclass(frozen=True)
class Settings:
    """Our vars for one host, defaults applied and validated (DESIGN.md's vars table)."""

    inventory_name: str
    project: str
    dvc_remote: str
    nfs_root: str
    dvc_storage: str
    git_remote: str
    server_repo: str
    server_cache: str
    storage_address: str
    storage_port: int
    storage_user: str
    git_user: str
    storage_group: str
    storage_gid: int | None
    auth: str
    access: str
    workdir: str
    client_key: str
    shared_cache: str | None
    dvc_version: str
    dvc_venv: str
    cache_types: str
    sshd_reload_command: list[str]

    @property
    def git_remote_is_path(self) -> bool:
        """True when the bare repository lives on storage (so bootstrap creates it)."""
        return self.git_remote.startswith("/")

    @property
    def storage_url_host(self) -> str:
        """storage_address as the host part of an ssh:// URL or a `user@host` argument: IPv6 in brackets."""
        address = self.storage_address
        return f"[{address}]" if ":" in address else address

    @property
    def sftp_root(self) -> str:
        """storage_user's SFTP chroot on storage: the directory holding dvc_storage."""
        return posixpath.dirname(self.dvc_storage)

    @property
    def sftp_dvc_storage(self) -> str:
        """dvc_storage as SFTP clients see it inside the chroot: the path of the committed remote URL."""
        return "/" + posixpath.basename(self.dvc_storage)


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


# ---------------------------------------------------------------- parsing

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


# ---------------------------------------------------------------- settings

_BAD_STEM = ("the inventory file's name is not a valid inventory_name: set inventory_name "
             "(letters, digits, . _ -)")
_DEFAULTS: dict[str, Any] = {
    "dvc_remote": "data",
    "nfs_root": "/mnt/nfs",
    "server_cache": "separate",
    "storage_user": "dvc",
    "git_user": "git",
    "storage_group": "dvc",
    "storage_gid": None,
    "auth": "key",
    "access": "readwrite",
    "shared_cache": None,
    "dvc_version": ">=3.50,<4",
    "dvc_venv": "/opt/provision/dvc",
    "cache_types": ",".join(_CACHE_TYPES),
    "sshd_reload_command": ["systemctl", "reload", "ssh"],
}


def _settings(merged: _Vars, stem_name: str | None, storage: tuple[str, int] | None,
              storage_problem: str, display_path: str) -> Settings:
    def value(key: str, default: Any = None) -> Any:
        return _converted(key, merged[key]) if key in merged else default

    if "project" not in merged:
        raise InputError("required: set project (the repository name), e.g. under all: vars:",
                         file=display_path, key="project")
    if "storage_address" not in merged and storage is None:
        raise InputError(f"{storage_problem} (or set storage_address)", file=display_path)
    inventory_name = value("inventory_name", stem_name)
    if inventory_name is None:
        raise InputError(_BAD_STEM, file=display_path, key="inventory_name")
    project = value("project")
    nfs_root = value("nfs_root", _DEFAULTS["nfs_root"]).rstrip("/")
    return Settings(
        **{key: value(key, default) for key, default in _DEFAULTS.items()},
        inventory_name=inventory_name,
        project=project,
        dvc_storage=value("dvc_storage", f"{nfs_root}/cache"),
        git_remote=value("git_remote", f"{nfs_root}/git/{project}.git"),
        server_repo=value("server_repo", f"{nfs_root}/{project}"),
        storage_address=value("storage_address", storage[0] if storage else None),
        storage_port=value("storage_port", storage[1] if storage else 22),
        workdir=value("workdir", f"~/{project}"),
        client_key=value("client_key", f"~/.ssh/id_ed25519_{project}"),
    )


# ---------------------------------------------------------------- inventory

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
