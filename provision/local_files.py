"""Files on the controller that several writers share: atomic replacement, and one writer at a time.

A crash or a full disk during a write must leave the previous file whole, so a file is written to a
temporary file in the same directory, synced, then renamed over the old one. Writers that read, change
and write a file (the secrets vault and index, the host-key pins) hold an exclusive flock meanwhile.
The remote side has its own equivalents in shell (provision.tasks); this module never touches a host.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path


def atomic_write(path: Path, data: bytes | str, mode: int, *, owner: tuple[int, int] | None = None) -> os.stat_result:
    """Replace `path` with `data` (temp file, fsync, rename, directory fsync) with exactly this mode,
    and this (uid, gid) when given; returns the new file's stat. A str is written as UTF-8."""
    content = data.encode() if isinstance(data, str) else data
    directory = path.parent
    temp_path = directory / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)  # the umask must not widen or narrow what the caller asked for
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            written = os.fstat(fd)
        finally:
            os.close(fd)
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp_path.unlink()
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return written


class _FileLock:
    """An exclusive flock on one path, reentrant within this process.

    Reentrant because a writer may call another that takes the same lock (a vault write updates the
    index); a second flock on a new descriptor of the same file would wait for itself. The flock is
    held on one descriptor, so threads of this process queue on the thread lock first.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def _open(self) -> int:
        """A directory is locked itself; any other path is a lock file, made if missing (flock needs
        only a read descriptor, so other users may lock a file they cannot write)."""
        if self._path.is_dir():
            return os.open(self._path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return os.open(self._path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._depth == 0:
            try:
                fd = self._open()
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
            except BaseException:
                self._thread_lock.release()
                raise
            self._fd = fd
        self._depth += 1

    def __exit__(self, *exc_info: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None
        self._thread_lock.release()


_locks: dict[Path, _FileLock] = {}
_locks_guard = threading.Lock()


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold the writers' lock on `path`, a directory or a lock file, against other processes and threads."""
    key = path.resolve()
    with _locks_guard:
        lock = _locks.setdefault(key, _FileLock(key))
    with lock:
        yield
