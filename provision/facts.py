"""Facts: read-only probes of a host's state, gathered for a whole phase in one remote command.

A task names the facts it needs; the engine runs them together before the task plans (see
`provision.remote.ProbeBatch`) and hands each one's parsed value back. Facts never change a host.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from provision.remote import BatchOutput, script

# Prints "present OWNER GROUP MODE TYPE" then the content of a regular file, or "absent".
_FILE_STATE = """
if [ -e "$1" ] || [ -L "$1" ]; then
  printf 'present %s\\n' "$(stat -c '%U %G %a %F' -- "$1")"
  if [ -f "$1" ]; then cat -- "$1"; fi
else
  echo absent
fi
"""


class Fact(ABC):
    """One piece of host state. Facts with equal keys are read once per phase."""

    privileged: bool = False

    @property
    @abstractmethod
    def key(self) -> Hashable:
        """Identity within a phase's cache."""

    @abstractmethod
    def argv(self) -> list[str]:
        """The read-only command that reads it."""

    @abstractmethod
    def parse(self, output: BatchOutput) -> Any:
        """Its value from the command's output and exit status."""


@dataclass(frozen=True)
class FileState:
    """A path's owner, group, mode and (for regular files) content."""

    exists: bool
    owner: str = ""
    group: str = ""
    mode: int = 0
    kind: str = ""
    content: str | None = None

    @property
    def is_file(self) -> bool:
        return self.kind.startswith("regular")

    @property
    def is_dir(self) -> bool:
        return self.kind == "directory"


@dataclass(frozen=True)
class FileFact(Fact):
    """State of one path (read with privilege, since targets are often root-owned)."""

    path: str
    privileged: bool = True

    @property
    def key(self) -> Hashable:
        return ("file", self.path)

    def argv(self) -> list[str]:
        return script(_FILE_STATE, self.path)

    def parse(self, output: BatchOutput) -> FileState:
        header, _, content = output.stdout.partition("\n")
        if not header.startswith("present "):
            return FileState(exists=False)
        owner, group, mode, kind = header.removeprefix("present ").split(" ", 3)
        is_file = kind.startswith("regular")
        return FileState(True, owner, group, int(mode, 8), kind, content if is_file else None)


@dataclass(frozen=True)
class CommandFact(Fact):
    """The output of a read-only command, or None when it fails or is missing."""

    command: tuple[str, ...]
    privileged: bool = False

    @property
    def key(self) -> Hashable:
        return ("command", self.command)

    def argv(self) -> list[str]:
        return list(self.command)

    def parse(self, output: BatchOutput) -> str | None:
        return output.stdout if output.rc == 0 else None
