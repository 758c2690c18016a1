"""Files and directories on a host: read as facts, written atomically with owner and mode."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from provision.connection import STAGED_CONTENT
from provision.engine import Change, HostContext, Task
from provision.errors import ProvisionError
from provision.facts import Fact, FileFact, FileState
from provision.paths import templates_dir
from provision.remote import script

#: Shell function for scripts that run as root: `root_only_directory DIR` succeeds when DIR (while it is
#: missing, its nearest existing ancestor) and every directory above it belong to root and nobody else
#: can write them (above DIR a sticky one, such as /tmp, is fine: nobody else may rename root's entries
#: there); else it prints why and fails. Anywhere else another account could swap what root reads, runs
#: or writes for files or links of its own.
ROOT_ONLY_DIRECTORY = r"""
root_only_directory() {
  component=$1
  while [ ! -e "$component" ]; do component=$(dirname -- "$component"); done
  component=$(readlink -e -- "$component") || { printf '%s cannot be resolved\n' "$1"; return 1; }
  parent=
  while :; do
    uid=$(stat -c %u -- "$component") permissions=0$(stat -c %a -- "$component")
    if [ "$uid" -ne 0 ]; then
      printf '%s belongs to uid %s, who could swap what is in it\n' "$component" "$uid"
      return 1
    fi
    if [ $((permissions & 022)) -ne 0 ] && { [ -z "$parent" ] || [ $((permissions & 01000)) -eq 0 ]; }; then
      printf '%s is writable by its group or others\n' "$component"
      return 1
    fi
    parent=yes
    [ "$component" = / ] && return 0
    component=$(dirname -- "$component")
  done
}
"""


@cache
def install_script() -> str:
    """templates/remote/install_file.sh: copy a staged file into place with owner and mode, fsync, rename."""
    return STAGED_CONTENT + ROOT_ONLY_DIRECTORY + (templates_dir() / "remote" / "install_file.sh").read_text()


def write_file(ctx: HostContext, path: str, data: bytes, *, owner: str = "", group: str = "",
               mode: int | None = None, privileged: bool = True) -> None:
    """Replace `path` atomically: stage privately by SFTP, then one install command.

    The staged copy lands in the session's private `mktemp -d`, mode 0600; the install step copies
    it into the target's directory, sets owner and mode, fsyncs and renames, so readers see the old or
    the new file, never a partial one. Files of the connecting user (`privileged=False`) are installed
    as that user even under ansible_become: root never works in a directory another account controls.
    """
    staged = ctx.session.stage(data)
    mode_text = f"{mode:04o}" if mode is not None else ""
    ctx.run(script(install_script(), staged, path, owner, group, mode_text), f"writing {path}", privileged=privileged)


def unified_diff(path: str, before: str | None, after: str) -> str:
    """A unified diff of a text file, `/dev/null` for a new one."""
    lines = difflib.unified_diff(
        (before or "").splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=path if before is not None else "/dev/null", tofile=path,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def describe_attributes(state: FileState, owner: str, group: str, mode: int | None) -> list[str]:
    """What differs in owner, group and mode ('' or None means: not managed)."""
    wrong = []
    if owner and state.owner != owner:
        wrong.append(f"owner {state.owner} -> {owner}")
    if group and state.group != group:
        wrong.append(f"group {state.group} -> {group}")
    if mode is not None and state.mode != mode:
        wrong.append(f"mode {state.mode:04o} -> {mode:04o}")
    return wrong


@dataclass
class EnsureFile(Task):
    """A text file with exactly this content, owner, group and mode."""

    path: str
    content: str
    owner: str = ""
    group: str = ""
    mode: int | None = None
    sensitive: bool = False

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"file {self.path}"

    def facts(self) -> Sequence[Fact]:
        return (FileFact(self.path),)

    def plan(self, ctx: HostContext) -> Change | None:
        state: FileState = ctx.fact(FileFact(self.path))
        if state.exists and not state.is_file:
            raise ProvisionError(f"{self.path} exists and is not a regular file ({state.kind})")
        content_differs = not state.exists or state.content != self.content
        attributes = describe_attributes(state, self.owner, self.group, self.mode) if state.exists else []
        if not content_differs and not attributes:
            return None
        if content_differs:
            summary = f"write {self.path}" if state.exists else f"create {self.path}"
            diff = "(content hidden: sensitive)\n" if self.sensitive else unified_diff(
                self.path, state.content if state.exists else None, self.content)
        else:
            summary, diff = f"set {', '.join(attributes)} on {self.path}", ""

        def apply() -> None:
            write_file(ctx, self.path, self.content.encode(), owner=self.owner, group=self.group,
                       mode=self.mode)
            ctx.forget(FileFact(self.path))

        return Change(summary, apply, diff)
