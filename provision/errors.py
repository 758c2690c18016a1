"""Errors that reach the user as one or two lines, without a traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provision.connection import CommandResult


class ProvisionError(Exception):
    """An expected failure: its message says what failed, where, and how to fix it."""

    exit_status = 2


class InputError(ProvisionError):
    """Bad input (inventory, arguments, files): nothing was touched; exit status 1."""

    exit_status = 1

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.file = file
        self.line = line
        self.key = key
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        if key:
            where += f"{key}: "
        super().__init__(f"{where}{message}")


def command_error(what: str, result: CommandResult) -> ProvisionError:
    """`WHAT failed: ` and the command's own one-line account of why (CommandResult.detail)."""
    return ProvisionError(f"{what} failed: {result.detail}")
