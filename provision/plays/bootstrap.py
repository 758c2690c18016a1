"""`provision bootstrap`: the storage server side of the workflow, in one idempotent play.

Order matters and is the order of the tasks: the export and the SFTP chroot's path must be right
before anything changes; storage_user's sshd drop-in comes next, so a storage_user that serves another
inventory is refused before its account is touched; tools, group and accounts come before the
directories they own; the bare repository before the server repository that clones it; the server
repository before a dataset is added to it. storage_user's password (only while a client has
`auth: password`) comes after the repositories, so a failing password step leaves the key-based setup
complete.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from provision.connection import AccountLogin
from provision.engine import Phase, Play, Task
from provision.errors import InputError
from provision.inventory import Host, Inventory, Settings
from provision.secrets.inventory import SecretLookupForInventory
from provision.tasks.accounts import (
    EnsureGitShellCommands,
    EnsureGroup,
    EnsureServedRepository,
    EnsureServiceAccount,
)
from provision.tasks.directories import (
    REPOSITORY_DIRECTORY_MODE,
    SHARED_DIRECTORY_MODE,
    EnsureDirectory,
    RequireExport,
)
from provision.tasks.dvc_repo import EnsureDataset, EnsureServerRepo, EnsureSiteCache
from provision.tasks.git_repo import EnsureBareRepo
from provision.tasks.packages import GIT_SHELL, EnsureDvc, EnsureGit
from provision.tasks.password_login import StoragePassword
from provision.tasks.sshd_config import (
    RequireSftpChroot,
    SftpChrootEntries,
    SshdStorageUser,
    created_chroot_directories,
)

NOLOGIN = "/usr/sbin/nologin"
#: Directories bootstrap makes on the SFTP chroot's path: sshd wants them root's and closed to writes.
CHROOT_DIRECTORY_MODE = 0o755
_DATA_PATH = re.compile(r"[A-Za-z0-9._+@%,=][A-Za-z0-9._/+@%,=-]*\Z")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*\Z")


def check_data_path(path: str, key: str = "--data") -> str:
    """A dataset path relative to the repository (server_repo for bootstrap), normalised; InputError naming
    the option `key` before any host is contacted."""
    if not _DATA_PATH.match(path) or path.startswith("/"):
        raise InputError(f"{path!r} is not a relative path of letters, digits and . _ - / + @ % , =", key=key)
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts or parts[0] in (".git", ".dvc"):
        raise InputError(f"{path!r} must name a file or directory inside the repository (no '..', not .git or "
                         ".dvc)", key=key)
    return "/".join(parts)


def check_tag(tag: str) -> str:
    """A git tag name that needs no quoting anywhere (git check-ref-format's rules, stricter)."""
    if (not _TAG.match(tag) or ".." in tag or "//" in tag or tag.endswith(("/", ".", ".lock"))
            or any(part.startswith(".") for part in tag.split("/"))):
        raise InputError(f"{tag!r} is not a usable tag name: use letters, digits and . _ - / (e.g. v1.0)",
                         key="--tag")
    return tag


def _within(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def check_settings(host: Host) -> None:
    """Combinations the vars table cannot refuse on its own; InputError before any host is contacted."""
    settings = host.settings
    if settings.storage_user == settings.git_user:
        raise InputError(f"storage_user and git_user are both {settings.git_user!r}: the DVC account (SFTP only) "
                         "and the git account (git-shell) must differ", key="git_user")
    owned = {"dvc_storage": settings.dvc_storage, "server_repo": settings.server_repo}
    if settings.git_remote_is_path:
        owned["git_remote"] = settings.git_remote
    for key, path in owned.items():
        if _within(settings.nfs_root, path):
            raise InputError(f"{key} {path} is nfs_root {settings.nfs_root} or above it: bootstrap would hand the "
                             "export to a service account; use a directory inside it", key=key)
    for key, path in owned.items():
        for other_key, other in owned.items():
            if key != other_key and _within(path, other):
                raise InputError(f"{key} {path} lies within {other_key} {other}: keep them apart", key=key)
    if settings.sftp_root == "/":
        raise InputError(f"dvc_storage {settings.dvc_storage} lies directly in /, which would be storage_user's SFTP "
                         "chroot and show it the whole host: put it in a directory of its own (e.g. "
                         f"{settings.nfs_root}/cache)", key="dvc_storage")


@dataclass(frozen=True)
class PasswordLogin:
    """What bootstrap and rotate password do about storage_user's password login for one inventory."""

    enabled: bool
    secrets: SecretLookupForInventory
    login: AccountLogin


def password_login(inventory: Inventory, secrets: SecretLookupForInventory, timeout: float) -> PasswordLogin:
    """Enabled when some client has `auth: password`; InputError for combinations it cannot keep safe."""
    inventory.check_password_access()
    return PasswordLogin(bool(inventory.password_clients), secrets,
                         AccountLogin(inventory.storage, inventory.known_hosts_path, timeout=timeout))


def _git_remote_directories(settings: Settings) -> list[str]:
    """Directories created for the bare repository: its parent when that is ours (below nfs_root),
    else the repository directory itself, so no shared parent (nfs_root, /srv) changes owner."""
    parent = posixpath.dirname(settings.git_remote)
    nfs_root = settings.nfs_root.rstrip("/")
    if parent.startswith(nfs_root + "/"):
        return [parent]
    return [settings.git_remote]


def storage_tasks(host: Host, data: str | None, tag: str | None, password: PasswordLogin | None = None
                  ) -> list[Task]:
    """Everything bootstrap ensures on the storage host, in order (password login when `password` is enabled)."""
    settings = host.settings
    group = settings.storage_group
    keep_password = password is not None and password.enabled
    git_directories = _git_remote_directories(settings) if settings.git_remote_is_path else []
    tasks: list[Task] = [
        RequireExport(settings.nfs_root),
        RequireSftpChroot(settings),
        SshdStorageUser(settings, keep_password, password.login if password is not None else None),
        EnsureGit(git_shell=True),
        EnsureDvc(settings.dvc_version, settings.dvc_venv),
        EnsureGroup(group, settings.storage_gid),
        EnsureServiceAccount(settings.storage_user, group, NOLOGIN, "provision DVC storage (SFTP only)",
                             keep_password=keep_password),
        EnsureServiceAccount(settings.git_user, group, GIT_SHELL, "provision git repositories (git-shell)"),
        EnsureGitShellCommands(settings.git_user, GIT_SHELL),
        # Before any repository is made: git_user serving another project's repository refuses the host.
        *([EnsureServedRepository(settings.git_user, settings.git_remote)] if settings.git_remote_is_path else []),
        *(EnsureDirectory(path, "root", "root", CHROOT_DIRECTORY_MODE)
          for path in created_chroot_directories(settings)),
        EnsureDirectory(settings.dvc_storage, settings.storage_user, group, SHARED_DIRECTORY_MODE, group_acl=True),
        *(EnsureDirectory(path, settings.git_user, group, REPOSITORY_DIRECTORY_MODE) for path in git_directories),
    ]
    if settings.git_remote_is_path:
        tasks.append(EnsureBareRepo(settings.git_remote, settings.git_user, group))
    tasks += [
        EnsureDirectory(settings.server_repo, settings.git_user, group, REPOSITORY_DIRECTORY_MODE),
        SftpChrootEntries(settings, [settings.server_repo, *git_directories]),
        EnsureSiteCache(settings),
        EnsureServerRepo(settings),
    ]
    if password is not None and password.enabled:
        tasks.append(StoragePassword(host, password.secrets, password.login))
    if data:
        tasks.append(EnsureDataset(settings, data, tag))
    return tasks


def bootstrap_play(storage: Host, data: str | None = None, tag: str | None = None, *,
                   password: PasswordLogin | None = None) -> Play:
    """One phase on the storage host; `data` and `tag` must have passed check_data_path/check_tag.

    `password` (see password_login) makes storage_user's password login
    match the inventory: on while a client has `auth: password`, else off (also when not given).
    """
    check_settings(storage)
    return Play("bootstrap", [
        Phase("bootstrap", lambda state: [storage], lambda host, state: storage_tasks(host, data, tag, password)),
    ], locks_hosts=True)
