"""Remote command lines: the one place where argv lists become shell text.

Everything the tool runs on a host is an argv list. SSH carries a single command string, so the
lists are quoted here, and only here, with `shlex.join`; nothing else in the project formats shell
commands. Fixed helper scripts are constants passed to `sh -c` with their inputs as positional
arguments, so no value is ever spliced into script text.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from shlex import join as quote_argv

__all__ = [
    "BatchOutput",
    "ChangeBatch",
    "ProbeBatch",
    "as_user",
    "privileged_line",
    "quote_argv",
    "script",
    "sudo_prefix",
]


def script(body: str, *args: str, name: str = "provision") -> list[str]:
    """An argv that runs the constant shell `body` with `args` as "$1", "$2", ..."""
    return ["sh", "-c", body, name, *args]


def sudo_prefix(prompt: str | None, user: str = "root") -> list[str]:
    """sudo that reads its password from stdin at the given (random) prompt, every time.

    `-k` makes sudo ignore (and not update) a cached credential, so whenever the policy wants a
    password sudo reads it itself before anything runs. Without a prompt (no become password known),
    sudo runs non-interactively and fails at once where a password would be needed.
    """
    argv = ["sudo", "-k", "-S", "-p", prompt] if prompt else ["sudo", "-n"]
    if user != "root":
        argv += ["-H", "-u", user]
    return [*argv, "--"]


def privileged_line(command: str, prompt: str | None, user: str = "root") -> str:
    """A command line (already quoted) run through sudo; `sh -c` keeps compound lines whole.

    The command's stdin is /dev/null before any of it runs: whatever the session's stdin carried for
    sudo (the become password) can be read by sudo alone, never by the command or its children.
    """
    return quote_argv([*sudo_prefix(prompt, user), "sh", "-c", f"exec </dev/null; {command}"])


def as_user(user: str, argv: Sequence[str]) -> list[str]:
    """Run argv as `user` from root, with that user's HOME, whatever its login shell.

    `su -s /bin/sh` works for git-shell and nologin accounts too and exists on every Linux host.
    """
    return ["su", "-s", "/bin/sh", "-c", quote_argv(argv), user]


@dataclass(frozen=True)
class BatchOutput:
    """One probe's result inside a batch."""

    rc: int
    stdout: str


class ProbeBatch:
    """Several read-only probes run as one remote command: one round trip per host and phase.

    Each probe's output is framed by a random token, so no probe output can forge a frame.
    """

    def __init__(self, probes: Sequence[Sequence[str]]) -> None:
        self.probes = [list(p) for p in probes]
        self.token = "@@provision-" + secrets.token_hex(8)

    def command(self) -> str:
        """The shell command line that runs every probe and frames its output."""
        parts = []
        for index, argv in enumerate(self.probes):
            begin = quote_argv(["printf", "\\n%s %s\\n", self.token, str(index)])
            end = quote_argv(["printf", "\\n%s %s %s\\n", self.token, str(index)])
            parts.append(f"{begin}; {quote_argv(argv)} </dev/null 2>/dev/null; {end} $?")
        return "; ".join(parts) if parts else "true"

    def parse(self, stdout: str) -> list[BatchOutput]:
        """Split the combined output back into one result per probe."""
        results = self._frames(stdout)
        if len(results) < len(self.probes):
            raise ValueError(f"probe {len(results)} produced no output frame")
        return results

    def _frames(self, stdout: str) -> list[BatchOutput]:
        """The results of the probes that started, in order."""
        results = []
        position = 0
        for index in range(len(self.probes)):
            begin = f"\n{self.token} {index}\n"
            start = stdout.find(begin, position)
            if start < 0:
                break
            start += len(begin)
            end_mark = f"\n{self.token} {index} "
            end = stdout.find(end_mark, start)
            if end < 0:
                raise ValueError(f"probe {index} did not finish")
            rc_start = end + len(end_mark)
            rc_end = stdout.find("\n", rc_start)
            rc = int(stdout[rc_start : rc_end if rc_end >= 0 else None])
            results.append(BatchOutput(rc=rc, stdout=stdout[start:end]))
            position = rc_end if rc_end >= 0 else len(stdout)
        return results


class ChangeBatch(ProbeBatch):
    """Several changes' commands as one remote command, in order, stopping after the first that fails.

    Each command's stdout and stderr (merged) and exit status come back framed as in ProbeBatch;
    commands after a failure do not run and have no frame.
    """

    def command(self) -> str:
        parts = []
        for index, argv in enumerate(self.probes):
            begin = quote_argv(["printf", "\\n%s %s\\n", self.token, str(index)])
            end = quote_argv(["printf", "\\n%s %s %s\\n", self.token, str(index)])
            parts.append(f'{begin}; {quote_argv(argv)} </dev/null 2>&1; rc=$?; {end} "$rc"; [ "$rc" -eq 0 ] || exit 0')
        return "; ".join(parts) if parts else "true"

    def parse(self, stdout: str) -> list[BatchOutput]:
        """One result per command that ran: all of them, or up to and including the first that failed."""
        return self._frames(stdout)
