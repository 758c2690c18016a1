"""Facts: read-only probes of a host's state, gathered for a whole phase in one remote command.

A task names the facts it needs; the engine runs them together before the task plans (see
`provision.remote.ProbeBatch`) and hands each one's parsed value back. Facts never change a host.
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from provision.connection import AccountLogin, PasswordLoginDisabled
from provision.remote import BatchOutput, script
from provision.secrets import StoredSecret

#: Shell function for probes: `path_state PATH` prints "OWNER GROUP MODE KIND" (FileState.from_stat reads
#: it) or "absent"; a symbolic link is described itself, not its target.
PATH_STATE = """
path_state() {
  if [ -e "$1" ] || [ -L "$1" ]; then stat -c '%U %G %a %F' -- "$1"; else echo absent; fi
}
"""

# $1 path. Prints its state (PATH_STATE), then the content of a regular file.
_FILE_STATE = PATH_STATE + """
printf '%s\\n' "$(path_state "$1")"
if [ -f "$1" ]; then cat -- "$1"; fi
"""


def output_lines(text: str) -> tuple[str, ...]:
    """A probe's non-empty output lines, split on newlines only, as the shell printed them: str.splitlines
    would also split on form feeds, \x1c-\x1e and \u2028, which may stand inside a host's file names."""
    return tuple(line for line in text.split("\n") if line)


@dataclass(frozen=True)
class KeyValues:
    """The `KEY VALUE` lines a probe or script prints, in order; a key may repeat (a line per file, per object)."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> KeyValues:
        split = (line.partition(" ") for line in output_lines(text))
        return cls(tuple((key, value) for key, _, value in split if key))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.pairs)

    def __contains__(self, key: object) -> bool:
        return any(found == key for found, _ in self.pairs)

    def get(self, key: str, default: str = "") -> str:
        """The value of `key`'s first line."""
        return next((value for found, value in self.pairs if found == key), default)

    def all(self, key: str) -> list[str]:
        """The values of every `key` line, in order."""
        return [value for found, value in self.pairs if found == key]

    def files(self, key: str) -> dict[str, str]:
        """The `KEY NAME BASE64` lines as {name: text}: base64, so no file's content can forge a line."""
        return dict(named_file(value) for value in self.all(key))


def named_file(value: str) -> tuple[str, str]:
    """The value of a `KEY NAME BASE64` line as (name, text)."""
    name, _, encoded = value.rpartition(" ")
    return name, base64.b64decode(encoded).decode()


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


class ControllerFact(Fact):
    """A fact the controller reads over a connection of its own (a host-key scan, a login attempt), not by a
    command on the host. The context reads it when a task asks for it, each time: what it shows (the keys
    or logins the running sshd offers) can change within a phase, and no probe batch can carry it."""

    @abstractmethod
    def read(self) -> Any:
        """Its value, read now."""

    def argv(self) -> list[str]:
        raise TypeError(f"{type(self).__name__} is read by the controller, not by a command on the host")

    def parse(self, output: BatchOutput) -> Any:
        raise TypeError(f"{type(self).__name__} is read by the controller, not from a probe's output")


@dataclass(frozen=True)
class FileState:
    """A path's owner, group, mode and (for regular files) content."""

    exists: bool
    owner: str = ""
    group: str = ""
    mode: int = 0
    kind: str = ""
    content: str | None = None

    @classmethod
    def from_stat(cls, line: str) -> FileState:
        """A path's owner, group, mode and kind from a `path_state` line (PATH_STATE), or absent."""
        if line == "absent":
            return cls(exists=False)
        owner, group, mode, kind = line.split(" ", 3)
        return cls(True, owner, group, int(mode, 8), kind)

    @classmethod
    def with_content(cls, text: str) -> FileState:
        """A `path_state` line, then a regular file's content: what the file probes print."""
        header, _, content = text.partition("\n")
        state = cls.from_stat(header or "absent")
        return replace(state, content=content) if state.is_file else state

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
        return FileState.with_content(output.stdout)


@dataclass(frozen=True)
class GroupEntry:
    """A group as the host's group database (`getent group`) has it."""

    name: str
    gid: int


@dataclass(frozen=True)
class GroupFact(Fact):
    """A group looked up by name or by gid; None when the host has no such group."""

    group: str

    @property
    def key(self) -> Hashable:
        return ("group", self.group)

    def argv(self) -> list[str]:
        return ["getent", "group", self.group]

    def parse(self, output: BatchOutput) -> GroupEntry | None:
        fields = output.stdout.strip().split(":")
        if output.rc != 0 or len(fields) < 3 or not fields[2].isdigit():
            return None
        return GroupEntry(fields[0], int(fields[2]))


@dataclass(frozen=True)
class UserGroupsFact(Fact):
    """The names of the groups a user is in; empty when the host has no such user."""

    user: str

    @property
    def key(self) -> Hashable:
        return ("groups of", self.user)

    def argv(self) -> list[str]:
        return ["id", "-Gn", "--", self.user]

    def parse(self, output: BatchOutput) -> tuple[str, ...]:
        return tuple(output.stdout.split()) if output.rc == 0 else ()


@dataclass(frozen=True)
class LoginMethodsFact(ControllerFact):
    """The authentication methods storage's running sshd offers `user` (asked before authenticating)."""

    user: str
    login: AccountLogin = field(compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return ("login methods", self.user)

    def read(self) -> tuple[str, ...]:
        return tuple(self.login.offered_methods(self.user))


@dataclass(frozen=True)
class PasswordLoginOutcome:
    """A fresh password login: whether sshd offered password login (`refusal` says why not) and took it."""

    offered: bool
    accepted: bool = False
    refusal: str = ""


@dataclass(frozen=True)
class PasswordLoginFact(ControllerFact):
    """Whether storage takes a stored password for `user` now: a fresh login, then an SFTP listing of
    `directory` (a login that cannot list it fails the task)."""

    user: str
    directory: str
    secret: StoredSecret = field(compare=False, repr=False)
    login: AccountLogin = field(compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return ("password login", self.user, self.secret.name)

    def read(self) -> PasswordLoginOutcome:
        try:
            return PasswordLoginOutcome(True, self.login.password_accepted(self.user, self.secret.value,
                                                                            self.directory))
        except PasswordLoginDisabled as refusal:
            return PasswordLoginOutcome(False, refusal=str(refusal))
