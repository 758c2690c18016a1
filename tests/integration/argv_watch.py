"""A sampler of every process's argv on the machine, to show that no secret ever reaches one.

Lab hosts have their own mount and UTS namespaces but share the machine's pid namespace, so /proc
lists their processes too: sshd sessions, sudo, chpasswd, sftp, git, dvc, ssh-keygen. A background
thread reads `/proc/<pid>/cmdline` of every process every few milliseconds and keeps each distinct
argv. Sampling can miss a process that lives for less than a sweep; it cannot invent one, so what it
finds is real, and `seen()` lets a test check that it did see the commands it expected.
"""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType


class ArgvWatch:
    """Collects the distinct argv of all processes while running (a context manager, or start/stop)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.sweeps = 0
        self._argvs: set[bytes] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="argv-watch", daemon=True)

    def start(self) -> ArgvWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> ArgvWatch:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sweep()
            self.sweeps += 1
            time.sleep(self.interval)

    def _sweep(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    argv = handle.read()
            except OSError:  # the process ended between listing and reading
                continue
            if argv:
                self._argvs.add(argv)

    def argvs(self) -> list[str]:
        """Every distinct argv seen, arguments joined by spaces."""
        return [argv.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace") for argv in set(self._argvs)]

    def containing(self, value: str) -> list[str]:
        """The argvs that hold `value` anywhere (an argument or part of one)."""
        needle = value.encode()
        return [argv.replace(b"\0", b" ").decode(errors="replace") for argv in set(self._argvs) if needle in argv]

    def seen(self, fragment: str) -> bool:
        """Whether some sampled argv contains `fragment` (to check the sampler saw what ran)."""
        return bool(self.containing(fragment))
