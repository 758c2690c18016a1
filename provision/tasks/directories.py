"""Directories with owner, group, mode (setgid included) and a default group ACL; the NFS export itself.

Shared directories are setgid (2775), so whatever lands in them belongs to the storage group, and carry
a default ACL giving that group rwx where `setfacl` exists and the filesystem supports POSIX ACLs, so
files written with a narrow umask stay writable for the group. The export (`nfs_root`) is never
created: a missing one means the NFS mount is not there, and writing to the local disk instead would
hide that.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from provision.connection import CommandResult
from provision.engine import Change, Command, HostContext, Task
from provision.errors import ProvisionError
from provision.facts import Fact, FileFact, FileState
from provision.remote import BatchOutput, script
from provision.tasks.files import describe_attributes

#: dvc_storage: the storage group reads and writes it (clients push as storage_user).
SHARED_DIRECTORY_MODE = 0o2775
#: Repositories and their parent: git_user's alone. The SFTP-only DVC account is in the storage group
#: and its chroot holds them: write access would let a DVC client plant hooks or config that git_user
#: runs, read access would show it the project's history.
REPOSITORY_DIRECTORY_MODE = 0o2700
#: Export key under which RequireExport hands the export's filesystem type to later tasks.
FSTYPE_EXPORT = "nfs_root_fstype"

# Exit 3 when the filesystem of argv[1] has no POSIX ACLs (getfacl cannot tell: it shows an empty one).
_ACL_SUPPORT_CHECK = """
import errno, os, sys

try:
    os.getxattr(sys.argv[1], "system.posix_acl_default")
except OSError as error:
    sys.exit(3 if error.errno in (errno.EOPNOTSUPP, errno.ENOSYS) else 0)
"""

# $1 directory, $2 the check above. "no-setfacl", "absent", "unsupported", or "acl" and the default ACL.
_ACL_PROBE = """
command -v setfacl >/dev/null 2>&1 || { echo no-setfacl; exit 0; }
[ -d "$1" ] || { echo absent; exit 0; }
/usr/bin/python3 -c "$2" "$1" 2>/dev/null
[ $? -eq 3 ] && { echo unsupported; exit 0; }
echo acl
getfacl --omit-header --default --absolute-names -- "$1"
"""

# $1 directory, $2 owner, $3 group, $4 mode (5 octal digits, so setgid is set or cleared explicitly),
# $5 default ACL entries for setfacl, or empty.
_DIRECTORY_APPLY = """
set -eu
path=$1 owner=$2 group=$3 mode=$4 acl=$5
[ -d "$path" ] || mkdir -p -- "$path"
chown -- "$owner:$group" "$path"
chmod -- "$mode" "$path"
if [ -n "$acl" ] && command -v setfacl >/dev/null 2>&1; then
  if ! error=$(setfacl -m "$acl" -- "$path" 2>&1); then
    case $error in *"not supported"*) echo acl-unsupported ;; *) echo "$error" >&2; exit 1 ;; esac
  fi
fi
"""


def default_acl_entries(group: str) -> list[str]:
    """The default ACL of a shared directory, as getfacl prints it."""
    return ["user::rwx", "group::rwx", f"group:{group}:rwx", "mask::rwx", "other::r-x"]


def setfacl_spec(group: str) -> str:
    """The same entries as one `setfacl -m` argument."""
    return ",".join(f"default:{entry}" for entry in default_acl_entries(group))


@dataclass(frozen=True)
class AclState:
    """A directory's default ACL (`status` "acl"), or why there is none: "no-setfacl", "absent", "unsupported"."""

    status: str = "absent"
    entries: tuple[str, ...] = ()


@dataclass(frozen=True)
class AclFact(Fact):
    """A directory's default ACL, or why there is none to manage."""

    path: str
    privileged: bool = True

    @property
    def key(self) -> Hashable:
        return ("default acl", self.path)

    def argv(self) -> list[str]:
        return script(_ACL_PROBE, self.path, _ACL_SUPPORT_CHECK)

    def parse(self, output: BatchOutput) -> AclState:
        words = output.stdout.split() if output.rc == 0 else []
        return AclState(words[0], tuple(words[1:])) if words else AclState()


@dataclass(frozen=True)
class FilesystemTypeFact(Fact):
    """The type of the filesystem holding a path (`stat -f`), "unknown" when it cannot be read."""

    path: str
    privileged: bool = True

    @property
    def key(self) -> Hashable:
        return ("filesystem type", self.path)

    def argv(self) -> list[str]:
        return ["stat", "-f", "-c", "%T", self.path]

    def parse(self, output: BatchOutput) -> str:
        return (output.stdout.strip() if output.rc == 0 else "") or "unknown"


class RequireExport(Task):
    """nfs_root must exist: it is the mounted export; report its filesystem type."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = f"export {path}"
        self._file = FileFact(path)
        self._fstype = FilesystemTypeFact(path)

    def facts(self) -> Sequence[Fact]:
        return (self._file, self._fstype)

    def plan(self, ctx: HostContext) -> Change | None:
        state: FileState = ctx.fact(self._file)
        if not state.exists:
            raise ProvisionError(
                f"nfs_root {self.path} does not exist on {ctx.host.name}: the NFS export is not mounted or not "
                f"present. Mount the export at {self.path} (or set nfs_root to where it is mounted) and rerun; "
                "bootstrap never creates it")
        if not state.is_dir:
            raise ProvisionError(f"nfs_root {self.path} on {ctx.host.name} is a {state.kind}, not a directory")
        fstype: str = ctx.fact(self._fstype)
        ctx.export(FSTYPE_EXPORT, fstype)
        ctx.note(f"filesystem {fstype}" + ("" if fstype.startswith("nfs") else " (not NFS)"))
        return None


class EnsureDirectory(Task):
    """A directory with exactly this owner, group and mode, and optionally the group's default ACL."""

    def __init__(self, path: str, owner: str, group: str, mode: int, *, group_acl: bool = False) -> None:
        self.path = path
        self.owner = owner
        self.group = group
        self.mode = mode
        self.group_acl = group_acl
        self.name = f"directory {path}"
        self._file = FileFact(path)
        self._acl = AclFact(path)

    def facts(self) -> Sequence[Fact]:
        return (self._file, self._acl) if self.group_acl else (self._file,)

    def _acl_wanted(self, ctx: HostContext) -> tuple[bool, str]:
        """Whether the default ACL must be set, and a note when it cannot be."""
        if not self.group_acl:
            return False, ""
        acl: AclState = ctx.fact(self._acl)
        if acl.status == "no-setfacl":
            return False, "setfacl missing: no default ACL (setgid and the group mode still apply)"
        if acl.status == "unsupported":
            return False, "the filesystem has no POSIX ACLs: no default ACL (setgid and the group mode apply)"
        if acl.status == "acl" and sorted(acl.entries) == sorted(default_acl_entries(self.group)):
            return False, ""
        return True, ""

    def plan(self, ctx: HostContext) -> Change | None:
        state: FileState = ctx.fact(self._file)
        if state.exists and not state.is_dir:
            raise ProvisionError(f"{self.path} exists and is a {state.kind}, not a directory: move it away")
        acl_needed, acl_note = self._acl_wanted(ctx)
        if acl_note:
            ctx.note(acl_note)
        acl_text = f"default ACL group:{self.group}:rwx"
        if not state.exists:
            summary = f"create {self.path} ({self.owner}:{self.group} {self.mode:04o}"
            summary += f", {acl_text})" if acl_needed else ")"
        else:
            wrong = describe_attributes(state, self.owner, self.group, self.mode)
            if acl_needed:
                wrong.append(f"set {acl_text}")
            if not wrong:
                return None
            summary = f"set {', '.join(wrong)} on {self.path}"
        acl_argument = setfacl_spec(self.group) if acl_needed else ""
        argv = script(_DIRECTORY_APPLY, self.path, self.owner, self.group, f"{self.mode:05o}", acl_argument)

        def done(result: CommandResult) -> None:
            if "acl-unsupported" in result.stdout:
                ctx.note("the filesystem has no POSIX ACLs: no default ACL (setgid and the group mode apply)")

        return Change(summary, commands=[Command(argv, f"setting up {self.path}", stale=[self._file, self._acl],
                                                 done=done)])
