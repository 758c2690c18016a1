"""Our vars table: each var's validator, defaults, typo hints and the Settings they make for a host."""

from __future__ import annotations

import functools
import ipaddress
import posixpath
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from provision.errors import InputError
from provision.inventory.loader import VaultedValue, _SourcedValue, _Vars

_TRUE_WORDS = frozenset({"y", "yes", "on", "1", "true", "t"})
_FALSE_WORDS = frozenset({"n", "no", "off", "0", "false", "f"})


# ---------------------------------------------------------------- value checks

class _Invalid(ValueError):
    """A value is wrong; the message says what is wrong and what is expected."""


_NAME_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9._-]*\Z")
_PATH_RE = re.compile(r"[A-Za-z0-9._/+@%,:=-]+\Z")
_URL_RE = re.compile(r"[A-Za-z0-9._/~+@%,:=\[\]-]+\Z")
_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"(?=.{{1,253}}\Z){_HOST_LABEL}(?:\.{_HOST_LABEL})*\Z")
_SCOPE_ID_RE = re.compile(r"[A-Za-z0-9_.-]+")
_SCP_LIKE_RE = re.compile(r"(?:[A-Za-z0-9._-]+@)?([A-Za-z0-9._-]+):([^/:][^:]*|/[^:]*)\Z")
_URL_SCHEMES = ("ssh", "https", "git", "file")
_CACHE_TYPES = ("reflink", "symlink", "hardlink", "copy")
_PATH_CHARS_HELP = "letters, digits and . _ - / + @ % , : ="


def _describe(value: Any) -> str:
    """`TYPE VALUE` in YAML's terms: the loader's own str, dict and list subclasses show as those."""
    kind = next((base for base in (bool, int, float, str, dict, list) if isinstance(value, base)), type(value))
    shown = repr(value)
    return f"{kind.__name__} {shown if len(shown) <= 60 else shown[:57] + '...'}"


def _text(value: Any, expected: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected {expected}, got {_describe(value)}")
    if "{{" in value or "{%" in value:
        raise _Invalid("Jinja templates are not evaluated by provision: write the value itself")
    return value


def _refuse_char(value: str, allowed: re.Pattern[str], kind: str, help_text: str, written: str | None = None) -> None:
    """Refuse a character outside `allowed`; the message shows `written` (the whole value) or `value`."""
    if allowed.match(value):
        return
    bad = next((c for c in value if not allowed.match(c)), "")
    raise _Invalid(f"{written or value!r} contains {bad!r}, which is not allowed in {kind} "
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


def _path_parts(path: str, kind: str, written: str | None = None) -> str:
    """`path` normalised; errors show it as `written` (the whole value, when `path` is a part of it)."""
    if path:
        _refuse_char(path, _PATH_RE, kind, _PATH_CHARS_HELP, written)
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _Invalid(f"{written or path!r} contains '..': write the path without it")
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
        rest = _path_parts(path[2:], "a path", path)
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


def _connections(value: Any) -> int:
    count = _integer(value, "a number of connections 1..100")
    if not 1 <= count <= 100:
        raise _Invalid(f"{count} is outside 1..100: expected a number of connections")
    return count


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise _Invalid(f"expected one of {', '.join(options)}, got {_describe(value)}")
        return value
    return check


def _host_address(value: Any) -> str:
    address = _text(value, "a hostname or IP address")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        pass
    else:
        # ipaddress takes any text after `%` (spaces, quotes, newlines) as an IPv6 scope id.
        scope_id = getattr(parsed, "scope_id", None)
        if scope_id is not None and not _SCOPE_ID_RE.fullmatch(scope_id):
            raise _Invalid(f"{address!r} has an IPv6 scope id of other characters than letters, digits "
                           "and . _ -: expected e.g. fe80::1%eth0")
        return str(parsed)
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
    "storage_connections": _connections,
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


@functools.cache
def probable_typo(key: str) -> str | None:
    """One of our vars that `key` is within two edits of (one edit for short names like `auth`).

    Names of Ansible's own (`ansible_*`) and our own vars are no typos.
    """
    if key in _CHECKS or key.startswith("ansible_"):
        return None
    for ours in sorted(OUR_VARS):
        limit = 1 if min(len(ours), len(key)) <= 5 else 2
        if abs(len(ours) - len(key)) <= limit and _edit_distance(key, ours) <= limit:
            return ours
    return None


def _converted(key: str, setting: _SourcedValue) -> Any:
    """The checked, normalized value of one of our vars; InputError naming where it was set."""
    if isinstance(setting.value, VaultedValue):
        raise InputError("is encrypted with ansible-vault (!vault), which provision cannot read: write the value "
                         "itself, and keep secrets in `provision secrets`", file=setting.origin.file,
                         line=setting.origin.line, key=key)
    if setting.conflict is not None:
        raise InputError(f"is set twice in one mapping, to a different value on line {setting.conflict}: Ansible "
                         "would use this last one; delete the one you do not mean", file=setting.origin.file,
                         line=setting.origin.line, key=key)
    try:
        return _CHECKS[key](setting.value)
    except _Invalid as error:
        raise InputError(str(error), file=setting.origin.file, line=setting.origin.line, key=key) from None


def marker_name(name: str) -> str | None:
    """Why a host name cannot be part of a key line's marker `provision:<inventory>:<host>`, or None."""
    try:
        _name(name)
    except _Invalid as error:
        return str(error)
    return None


@dataclass(frozen=True)
class Settings:
    """Our vars for one host, defaults applied and validated (the table OUR_VARS)."""

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
    storage_connections: int
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



# ---------------------------------------------------------------- settings

BAD_STEM = ("the inventory file's name is not a valid inventory_name: set inventory_name "
             "(letters, digits, . _ -)")
DEFAULTS: dict[str, Any] = {
    "dvc_remote": "data",
    "nfs_root": "/mnt/nfs",
    "server_cache": "separate",
    # Clients' own connections to storage at once: well below sshd's MaxStartups start value (10).
    "storage_connections": 6,
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


def _settings(merged: _Vars, inventory_name: str, storage: Callable[[], tuple[str, int]], display_path: str
              ) -> Settings:
    """Our vars for one host; `storage` gives the storage host's address and port (InputError when there is
    no single storage host) and is only asked when storage_address is not set."""
    def value(key: str, default: Any = None) -> Any:
        return _converted(key, merged[key]) if key in merged else default

    if "project" not in merged:
        raise InputError("required: set project (the repository name), e.g. under all: vars:",
                         file=display_path, key="project")
    own_name = value("inventory_name", inventory_name)
    if own_name != inventory_name:
        origin = merged["inventory_name"].origin
        raise InputError(f"{own_name!r} differs from the inventory's name {inventory_name!r}: set inventory_name "
                         "once, under all: vars:", file=origin.file, line=origin.line, key="inventory_name")
    if "storage_address" in merged:
        storage_address = value("storage_address")
        try:
            storage_port = storage()[1]
        except InputError:  # no single storage host: its port cannot be the default
            storage_port = 22
    else:
        storage_address, storage_port = storage()
    project = value("project")
    nfs_root = value("nfs_root", DEFAULTS["nfs_root"]).rstrip("/")
    return Settings(
        **{key: value(key, default) for key, default in DEFAULTS.items()},
        inventory_name=inventory_name,
        project=project,
        dvc_storage=value("dvc_storage", f"{nfs_root}/cache"),
        git_remote=value("git_remote", f"{nfs_root}/git/{project}.git"),
        server_repo=value("server_repo", f"{nfs_root}/{project}"),
        storage_address=storage_address,
        storage_port=value("storage_port", storage_port),
        workdir=value("workdir", f"~/{project}"),
        client_key=value("client_key", f"~/.ssh/id_ed25519_{project}"),
    )
