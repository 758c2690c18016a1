"""Errors that reach the user as one or two lines, without a traceback."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provision.connection import CommandResult


#: What must not reach a terminal raw from a value in an error line: control characters and line breaks
#: (a host named "a\nb" would forge a second line), bidi controls (they reorder what is shown) and lone
#: surrogates (from undecodable bytes: no terminal encoding can print them).
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                         "\ud800-\udfff]")


def one_line(text: str) -> str:
    """`text` with control, line-breaking and bidi characters escaped as Python writes them."""
    return _UNSHOWABLE.sub(lambda match: ascii(match.group(0))[1:-1], text)


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
        super().__init__(one_line(f"{where}{message}"))


def command_error(what: str, result: CommandResult) -> ProvisionError:
    """`WHAT failed: ` and the command's own one-line account of why (CommandResult.detail)."""
    return ProvisionError(f"{what} failed: {result.detail}")
