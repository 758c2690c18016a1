"""Admission of clients' own connections to storage: a storage-wide limit and retries of shed connections.

Clients reach storage themselves (git clone, dvc pull, proofs). Started all at once on a fleet, they
exceed sshd's MaxStartups (10 unauthenticated connections by default), and sshd drops the excess
before authentication. The engine therefore owns, for the run, a limited number of slots per storage
(address, port); every client step that connects to storage holds one while it runs. A step that
storage still refused before authentication is retried with jittered backoff; an authentication or
host-key failure is never retried, since trying again cannot change its answer.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Sequence

from provision.connection import CommandResult, Session

STORAGE_ATTEMPTS = 6
_BACKOFF_SECONDS = 0.5
_BACKOFF_CAP_SECONDS = 8.0

# What OpenSSH (ssh, sftp, git over ssh) and asyncssh (dvc-ssh) print when sshd closed or reset the
# connection before authentication: MaxStartups drops, resets, a banner that never came.
_REFUSED_BEFORE_AUTH = re.compile(
    r"kex_exchange_identification"
    r"|Connection closed by \S+ port \d+"
    r"|Connection reset by"
    r"|banner exchange"
    r"|Error reading SSH protocol banner"
    r"|Connection lost"
    r"|ConnectionResetError"
)
# Answers that trying again cannot change: the key was refused or the host key is not the pinned one.
_FINAL_REFUSAL = re.compile(
    r"Permission denied"
    r"|Host key verification failed"
    r"|REMOTE HOST IDENTIFICATION HAS CHANGED"
    r"|Host key is not trusted"
    r"|host key .*(?:not trusted|mismatch|changed)"
    r"|No matching host key"
    r"|Authentication failed"
    r"|Too many authentication failures",
    re.IGNORECASE,
)


def refused_before_auth(output: str) -> bool:
    """True when a failed client step's output says storage shed the connection before authentication."""
    return _REFUSED_BEFORE_AUTH.search(output) is not None and _FINAL_REFUSAL.search(output) is None


def backoff_seconds(attempt: int) -> float:
    """How long to wait before retry `attempt` (0-based): doubling, capped, jittered so clients spread out."""
    base = min(_BACKOFF_CAP_SECONDS, _BACKOFF_SECONDS * 2**attempt)
    return base * random.uniform(0.5, 1.5)


class StorageAdmission:
    """Slots per storage (address, port), shared by every host of a run."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def _slot(self, address: str, port: int, limit: int) -> threading.BoundedSemaphore:
        """The storage's slots; the first step to reach a storage sets its limit for the run."""
        with self._lock:
            return self._slots.setdefault((address, port), threading.BoundedSemaphore(max(1, limit)))

    def run(self, session: Session, argv: Sequence[str], *, address: str, port: int, limit: int,
            timeout: float | None, on_retry: Callable[[], None]) -> CommandResult:
        """Run argv on the client while holding a slot of its storage; retry sheds, count each retry."""
        slot = self._slot(address, port, limit)
        attempt = 0
        while True:
            with slot:
                result = session.run(argv, timeout=timeout)
            last = attempt + 1 >= STORAGE_ATTEMPTS
            if result.ok or last or not refused_before_auth(result.stderr + result.stdout):
                return result
            on_retry()
            time.sleep(backoff_seconds(attempt))
            attempt += 1
