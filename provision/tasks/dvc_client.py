"""A client's `.dvc/config.local` and, for `shared_cache`, its membership of the storage group.

`config.local` (0600, never committed) holds what the committed `.dvc/config` must not: the remote's
`user` and `keyfile` (or `password`). Provision's settings are merged into whatever else the user keeps
there (provision.dvc_config, configobj as DVC reads it, so a password is quoted as it needs); every
credential is masked in diffs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from provision.dvc_config import merge_config
from provision.engine import Change, Command, HostContext, Task
from provision.errors import ProvisionError
from provision.facts import Fact, FileFact, FileState, GroupEntry, GroupFact, UserGroupsFact
from provision.inventory import Settings
from provision.remote import script
from provision.secrets import MASK
from provision.tasks.checkout import checkout_file_facts
from provision.tasks.client_key import ClientInfo
from provision.tasks.files import unified_diff, write_file

#: The remote's keys that are credentials: removed by offboarding.
CREDENTIAL_KEYS = ("user", "keyfile", "password")
#: The export of the storage phase: storage_group's gid on storage.
STORAGE_GID_EXPORT = "storage_gid"
#: Under the connecting user's home: one private DVC site cache per project.
SITE_CACHE_PARENT = ".cache/provision-dvc-site"
# $1 directory: made (parents too) by the connecting user, then itself 0700.
_MAKE_PRIVATE_DIR = 'set -eu; mkdir -p -- "$1"; chmod 0700 -- "$1"'
#: Names of DVC config options that hold a credential (not a path to one, not an `ask_*` switch).
_CREDENTIAL_NAME_RE = re.compile(r"password|passphrase|secret|token|private|connection_string|(^|_)key(_id)?$")


def dvc_argv(executable: str, *args: str) -> list[str]:
    """dvc (the executable the tools task found or installed) with `args`, without usage analytics."""
    return ["env", "DVC_NO_ANALYTICS=1", executable, *args]


def private_site_cache(settings: Settings, info: ClientInfo) -> str:
    """DVC's site cache for this project, in the connecting user's home (see PrivateSiteCache)."""
    return f"{info.home.rstrip('/')}/{SITE_CACHE_PARENT}/{settings.project}"


def managed_settings(settings: Settings, info: ClientInfo, shared_cache: str | None) -> dict[str, dict[str, str]]:
    """What provision sets in config.local (the password is added by the task).

    DVC's site cache (state and index databases, which hold pickles) goes to a directory private to the
    user instead of the world-writable /var/tmp/dvc.
    """
    remote = {"user": settings.storage_user} | ({"keyfile": info.key} if settings.auth == "key" else {})
    sections = {"core": {"site_cache_dir": private_site_cache(settings, info)},
                f'remote "{settings.dvc_remote}"': remote}
    if shared_cache:
        sections["cache"] = {"dir": shared_cache, "shared": "group", "type": settings.cache_types}
    return sections


def _option_names(schema: Any) -> Iterator[str]:
    """Every option name in a (nested) voluptuous schema dict; Optional/Required markers unwrapped."""
    if not isinstance(schema, Mapping):
        return
    for key, value in schema.items():
        name = getattr(key, "schema", key)
        if isinstance(name, str):
            yield name
        yield from _option_names(value)


@cache
def credential_keys() -> frozenset[str]:
    """Every credential option of DVC's config schema (remotes of every kind, db, studio, machine).

    Read from the installed dvc, so options a newer DVC adds are masked without a hand-kept list.
    """
    from dvc.config_schema import REMOTE_SCHEMAS, SCHEMA

    names = {*_option_names(SCHEMA), *(name for schema in REMOTE_SCHEMAS.values() for name in _option_names(schema))}
    return frozenset(name for name in names if _CREDENTIAL_NAME_RE.search(name) and not name.startswith("ask_"))


@cache
def _credential_line_re() -> re.Pattern[str]:
    keys = "|".join(sorted(map(re.escape, credential_keys())))
    return re.compile(rf"^([+\- ]?\s*(?:{keys})\s*=\s*).*$", re.MULTILINE | re.IGNORECASE)


def mask_credentials(text: str) -> str:
    """Every credential option's value in a config or a diff of one masked (`passphrase = ********`)."""
    return _credential_line_re().sub(lambda match: match.group(1) + MASK, text)


class _ConfigLocalTask(Task):
    """Shared by onboarding and offboarding: read, merge, write 0600 as the connecting user."""

    def __init__(self, info: ClientInfo) -> None:
        self.info = info
        self.path = f"{info.workdir}/.dvc/config.local"
        self.dir_fact, self.file_fact = checkout_file_facts(info.workdir)

    def facts(self) -> Sequence[Fact]:
        return (self.dir_fact, self.file_fact)

    def _change(self, ctx: HostContext, state: FileState, new_content: str | None, *,
                what: str | None = None) -> Change | None:
        """The change to `new_content` (None: as it is) and mode 0600; `what` it does when content changes."""
        if state.exists and not state.is_file:
            raise ProvisionError(f"{self.path} on {self.info.name} is not a regular file")
        wrong_mode = state.exists and state.mode != 0o600
        if new_content is None and not wrong_mode:
            return None
        content = new_content if new_content is not None else state.content or ""
        verb = "write" if state.exists else "create"
        summary = (what or f"{verb} {self.path}") if new_content is not None else f"mode 0600 on {self.path}"
        diff = mask_credentials(unified_diff(self.path, state.content if state.exists else None, content)) \
            if new_content is not None else ""

        def apply() -> None:
            write_file(ctx, self.path, content.encode(), owner=self.info.user, group=self.info.group,
                       mode=0o600, privileged=False)
            ctx.forget(self.file_fact)

        return Change(summary, apply, diff)


class DvcClientConfig(_ConfigLocalTask):
    """`user` and absolute `keyfile` (or `password`) for the remote, and the shared cache settings."""

    name = "dvc config.local"

    def __init__(self, info: ClientInfo, settings: Settings, shared_cache: str | None) -> None:
        super().__init__(info)
        self.settings = settings
        self.shared_cache = shared_cache

    def plan(self, ctx: HostContext) -> Change | None:
        directory: FileState = ctx.fact(self.dir_fact)
        if not directory.is_dir and not ctx.check:
            raise ProvisionError(f"{self.info.workdir} on {self.info.name} is not a DVC repository (no .dvc/): "
                                 "run `provision bootstrap`, which commits the DVC config to git_remote")
        wanted = managed_settings(self.settings, self.info, self.shared_cache)
        remote = f'remote "{self.settings.dvc_remote}"'
        if self.settings.auth == "password":
            password = ctx.secret("storage_password")
            if not password:
                raise ProvisionError(f"auth is password but no storage_password secret for {self.info.name}: "
                                     "`provision secrets set storage_password` (or use auth: key)")
            if any(c in password for c in "\r\n"):
                raise ProvisionError("storage_password holds a line break, which config.local cannot store")
            wanted[remote]["password"] = password
            ctx.note("auth: password - a dvc without provision's dvc-ssh guard verifies no host key and would "
                     "hand the password to any server; key auth is safer")
            dropped = ["keyfile"]
        else:
            dropped = ["password"]
        state: FileState = ctx.fact(self.file_fact)
        new_content = merge_config(state.content if state.exists else None, wanted, {remote: dropped})
        return self._change(ctx, state, new_content)


class NewPasswordInConfig(DvcClientConfig):
    """config.local with the password just promoted (under --check: the one the rotation would make)."""

    def __init__(self, info: ClientInfo, settings: Settings, shared_cache: str | None, rotating: bool) -> None:
        super().__init__(info, settings, shared_cache)
        self.rotating = rotating

    def plan(self, ctx: HostContext) -> Change | None:
        change = super().plan(ctx)
        if ctx.check and self.rotating and change is None:
            return Change(f"write the new storage_password into {self.path}", lambda: None)
        return change


class RemoveDvcCredentials(_ConfigLocalTask):
    """The remote's `user`, `keyfile` and `password` gone from config.local; other settings kept."""

    name = "dvc credentials"

    def __init__(self, info: ClientInfo, remote: str) -> None:
        super().__init__(info)
        self.remote = remote

    def plan(self, ctx: HostContext) -> Change | None:
        state: FileState = ctx.fact(self.file_fact)
        if not state.exists:
            return None
        new_content = merge_config(state.content, {}, {f'remote "{self.remote}"': CREDENTIAL_KEYS})
        return self._change(ctx, state, new_content, what=f"remove {self.remote}'s credentials from {self.path}")


class StorageGroupId(Task):
    """Reads storage_group's gid on storage for clients that share its cache; changes nothing."""

    name = "storage group"

    def __init__(self, group: str) -> None:
        self.group = group
        self.fact = GroupFact(group)

    def facts(self) -> Sequence[Fact]:
        return (self.fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        entry: GroupEntry | None = ctx.fact(self.fact)
        if entry is None:
            raise ProvisionError(f"no group {self.group!r} on storage: run `provision bootstrap` first")
        ctx.export(STORAGE_GID_EXPORT, entry.gid)
        ctx.note(f"{self.group} gid {entry.gid}")
        return None


@dataclass
class SharedCacheGroup(Task):
    """The connecting user in storage_group, whose gid matches storage's, for the shared cache."""

    info: ClientInfo
    group: str
    storage_gid: int
    inventory_gid: int | None
    shared_cache: str

    name = "shared cache group"

    def __post_init__(self) -> None:
        self.group_fact = GroupFact(self.group)
        self.gid_fact = GroupFact(str(self.storage_gid))
        self.member_fact = UserGroupsFact(self.info.user)
        self.cache_fact = FileFact(self.shared_cache, privileged=False)

    def facts(self) -> Sequence[Fact]:
        return (self.group_fact, self.gid_fact, self.member_fact, self.cache_fact)

    def plan(self, ctx: HostContext) -> list[Change]:
        client = self.info.name
        if self.inventory_gid is not None and self.inventory_gid != self.storage_gid:
            raise ProvisionError(f"storage_gid is {self.inventory_gid} but {self.group} has gid {self.storage_gid} "
                                 "on storage: fix storage_gid or the group on storage")
        cache: FileState = ctx.fact(self.cache_fact)
        if not cache.is_dir:
            raise ProvisionError(f"shared_cache {self.shared_cache} is not a directory on {client}: "
                                 "mount the storage export there first")
        changes: list[Change] = []

        def step(what: str, argv: list[str], stale: Fact) -> None:
            changes.append(Change(what, commands=[Command(argv, f"{what} on {client}", stale=[stale])]))

        entry: GroupEntry | None = ctx.fact(self.group_fact)
        if entry is None:
            holder: GroupEntry | None = ctx.fact(self.gid_fact)
            if holder is not None:
                raise ProvisionError(f"gid {self.storage_gid} ({self.group} on storage) belongs to group "
                                     f"{holder.name} on {client}: files in the shared cache would "
                                     "belong to the wrong group; free that gid or choose storage_gid")
            step(f"create group {self.group} with gid {self.storage_gid}",
                 ["groupadd", "--gid", str(self.storage_gid), "--", self.group], self.group_fact)
        elif entry.gid != self.storage_gid:
            raise ProvisionError(f"group {self.group} has gid {entry.gid} on {client} but {self.storage_gid} on "
                                 f"storage: files in the shared cache would not be shared; `groupmod --gid "
                                 f"{self.storage_gid} {self.group}` on {client} (and set storage_gid)")
        if self.group not in ctx.fact(self.member_fact):
            step(f"add {self.info.user} to {self.group}",
                 ["usermod", "--append", "--groups", self.group, "--", self.info.user], self.member_fact)
        return changes


class PrivateSiteCache(Task):
    """DVC's site cache directory for the project: the connecting user's own, mode 0700.

    DVC's default, /var/tmp/dvc, is world-writable without the sticky bit, and the databases DVC keeps
    there hold pickles: another local user could plant one that runs as whoever next runs dvc. The
    directory is made by the user itself; a link or a directory of another owner there is refused.
    """

    name = "dvc site cache"

    def __init__(self, info: ClientInfo, settings: Settings) -> None:
        self.info = info
        self.path = private_site_cache(settings, info)
        self.fact = FileFact(self.path, privileged=False)

    def facts(self) -> Sequence[Fact]:
        return (self.fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        state: FileState = ctx.fact(self.fact)
        if state.exists and not state.is_dir:
            raise ProvisionError(f"{self.path} on {self.info.name} is a {state.kind}, not a directory: remove it, "
                                 "then run again (DVC's site cache must be a directory of its own)")
        if state.exists and state.owner != self.info.user:
            raise ProvisionError(f"{self.path} on {self.info.name} belongs to {state.owner}, not {self.info.user}: "
                                 "remove it, then run again (DVC's site cache must be private)")
        if state.exists and state.mode == 0o700:
            return None
        summary = f"mode 0700 on {self.path}" if state.exists else f"create {self.path} (0700)"

        def apply() -> None:
            ctx.run(script(_MAKE_PRIVATE_DIR, self.path), f"{summary} on {self.info.name}")
            ctx.forget(self.fact)

        return Change(summary, apply)
