"""Local file handling for the vault and the index: atomic replacement, private modes, one writer.

A crash or a full disk during a write must leave the previous file whole, so files are written to a
temporary file in the same directory, synced, then renamed over the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from provision.secrets.base import SecretsError


def atomic_write(path: Path, data: bytes, mode: int) -> os.stat_result:
    """Replace `path` with `data` (temp file, fsync, rename, directory fsync); returns the new file's stat."""
    directory = path.parent
    temp_path = directory / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask must not widen or narrow what the caller asked for
            view = memoryview(data)
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


def require_private(file_stat: os.stat_result, path: Path, what: str, *, allow_pipe: bool = False) -> None:
    """Refuse a file that group or others may access: its secret may already have leaked."""
    if not (stat.S_ISREG(file_stat.st_mode) or (allow_pipe and stat.S_ISFIFO(file_stat.st_mode))):
        raise SecretsError(f"{path}: {what} is not a regular file")
    loose = stat.S_IMODE(file_stat.st_mode) & 0o077
    if loose:
        raise SecretsError(f"{path}: {what} has mode {stat.S_IMODE(file_stat.st_mode):04o}, open to group "
                           f"or others; run `chmod 600 {path}` (and consider the secret exposed)")


def read_private_file(path: Path, what: str, *, allow_pipe: bool = False) -> tuple[bytes, os.stat_result]:
    """Content and stat of a file that must be private.

    A symlink is not followed, except with `allow_pipe`: a password may come through a pipe such as
    bash's `<(pass show vault)`, which is a /dev/fd symlink, so it never touches the disk.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | (0 if allow_pipe else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        file_stat = os.fstat(fd)
        require_private(file_stat, path, what, allow_pipe=allow_pipe)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks), file_stat
    finally:
        os.close(fd)


class _DirectoryLock:
    """An exclusive flock on a directory, reentrant within this process.

    Reentrant because a vault write updates the index while holding the same lock; a second flock on a
    new descriptor of the same directory would otherwise wait for itself.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._depth == 0:
            try:
                fd = os.open(self._directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                fcntl.flock(fd, fcntl.LOCK_EX)
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


_locks: dict[Path, _DirectoryLock] = {}
_locks_guard = threading.Lock()


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Hold the writer lock for the secrets files in `directory` (processes and threads alike)."""
    key = directory.resolve()
    with _locks_guard:
        lock = _locks.setdefault(key, _DirectoryLock(key))
    with lock:
        yield
