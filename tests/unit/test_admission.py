"""Storage admission: which failures are retried (messages captured from OpenSSH, git and dvc on the lab
with a tight MaxStartups), how many steps run at once, how retries are counted."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from provision import admission
from provision.admission import STORAGE_ATTEMPTS, StorageAdmission, refused_before_auth
from provision.connection import CommandResult

SHED = [
    # ssh / sftp, sshd past MaxStartups
    "kex_exchange_identification: read: Connection reset by peer\nConnection reset by 127.0.0.1 port 40731\n",
    "kex_exchange_identification: Connection closed by remote host\nConnection closed by 127.0.0.1 port 2200\n",
    # git over ssh
    "kex_exchange_identification: read: Connection reset by peer\nConnection reset by 127.0.0.1 port 40731\n"
    "fatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\n"
    "and the repository exists.\n",
    # dvc status -c and dvc pull (asyncssh)
    "ERROR: unexpected error - Connection lost\n\nHaving any troubles? Hit us up at https://dvc.org/support\n",
    "ERROR: failed to connect to ssh (/cache/files/md5) - Connection lost\n"
    "ERROR: failed to pull data from the cloud - 2 files failed to download\n",
]
FINAL = [
    "git@127.0.0.1: Permission denied (publickey).\nfatal: Could not read from remote repository.\n",
    "dvc@127.0.0.1: Permission denied (publickey).\nConnection closed\n",
    "Received disconnect from 127.0.0.1 port 2200:2: Too many authentication failures\n"
    "Disconnected from 127.0.0.1 port 2200\n",
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
    "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
    "Host key verification failed.\nConnection closed by 127.0.0.1 port 2200\n",
    "No ED25519 host key is known for [127.0.0.1]:2200 and you have requested strict checking.\n"
    "Host key verification failed.\n",
    "ERROR: unexpected error - Host key is not trusted for host 127.0.0.1\n",
    "ERROR: unexpected error - Permission denied for user dvc on host 127.0.0.1\n",
    "fatal: '/srv/other.git' does not appear to be a git repository\n",
]


@pytest.mark.parametrize("output", SHED)
def test_connections_shed_before_authentication_are_retried(output: str) -> None:
    assert refused_before_auth(output)


@pytest.mark.parametrize("output", FINAL)
def test_authentication_host_key_and_other_failures_are_not(output: str) -> None:
    assert not refused_before_auth(output)


class ScriptedSession:
    """Answers each run with the next scripted stderr ('' succeeds); notes how many run at once."""

    label = "ws1"

    def __init__(self, answers: Sequence[str], hold: float = 0.0) -> None:
        self.answers = list(answers)
        self.hold = hold
        self.calls = 0
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def run(self, argv: Sequence[str], *, privileged: bool = False, timeout: float | None = None) -> CommandResult:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
            stderr = self.answers.pop(0) if self.answers else ""
        time.sleep(self.hold)
        with self._lock:
            self.running -= 1
        return CommandResult(tuple(argv), 1 if stderr else 0, "", stderr)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admission, "backoff_seconds", lambda attempt: 0.0)


def _run(gate: StorageAdmission, session: ScriptedSession, retries: list[int], limit: int = 6) -> CommandResult:
    return gate.run(session, ["git", "clone"], address="storage", port=22, limit=limit, timeout=None,
                    on_retry=lambda: retries.append(1))


def test_a_shed_step_is_retried_until_it_succeeds_and_each_retry_counts() -> None:
    session, retries = ScriptedSession([SHED[0], SHED[3]]), []
    assert _run(StorageAdmission(), session, retries).ok
    assert session.calls == 3 and len(retries) == 2


def test_a_refusal_is_returned_at_once() -> None:
    session, retries = ScriptedSession([FINAL[0]]), []
    result = _run(StorageAdmission(), session, retries)
    assert not result.ok and "Permission denied" in result.stderr
    assert session.calls == 1 and not retries


def test_retries_stop_after_the_last_attempt() -> None:
    session, retries = ScriptedSession([SHED[1]] * (STORAGE_ATTEMPTS + 2)), []
    assert not _run(StorageAdmission(), session, retries).ok
    assert session.calls == STORAGE_ATTEMPTS and len(retries) == STORAGE_ATTEMPTS - 1


def test_steps_to_one_storage_never_exceed_its_slots() -> None:
    gate, session, retries = StorageAdmission(), ScriptedSession([], hold=0.2), []
    threads = [threading.Thread(target=_run, args=(gate, session, retries, 3)) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert session.calls == 12 and session.most == 3
