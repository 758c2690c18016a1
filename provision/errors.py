"""Errors that reach the user as one or two lines, without a traceback."""

from __future__ import annotations


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


def last_line(text: str) -> str:
    """The last non-empty line of a command's stderr, so that error messages stay one line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
