"""Reading the vault and its password file: only files that group and others cannot access.

Writing (atomic replacement, one writer at a time) is provision.local_files'.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from provision.secrets.base import SecretsError


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
