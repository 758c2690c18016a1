"""Clients' key lines in the storage accounts' authorized_keys, one marked set of lines per client.

Each line carries `restrict`, the account's forced command and the marker `provision:<inventory>:<client>`,
so that (re-)onboarding and offboarding touch exactly one client's lines and nothing else: not another
client's, not another inventory's, not a line written by hand. Several `provision` processes may edit the
same file at once, so the file is rewritten as a compare-and-swap under `flock` on a lock file beside it:
the new content is installed only if the file is still what was read, else it is read again and the
change recomputed. The file stays root-owned 0644.

The file is handled as bytes end to end (read as base64, split on b"\\n" only, fields split on spaces
and tabs as sshd splits them): a line written by hand keeps every byte, carriage returns, form feeds
and invalid UTF-8 included, so no rewrite can turn one restricted line into two.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from provision.engine import Change, HostContext, Task
from provision.errors import ProvisionError, command_error
from provision.facts import Fact
from provision.remote import BatchOutput, script
from provision.render import render
from provision.tasks.client_key import shorten_keys
from provision.tasks.files import install_script, unified_diff

SFTP = "sftp"
GIT = "git"
#: The forced command of read-write SFTP key lines (and of password sessions): group-writable files,
#: no symbolic or hard links and no mode, owner or time changes (a client could otherwise make
#: dvc_storage writable for every local user on storage); DVC's push and pull need none of them (they
#: do need posix-rename).
SFTP_READ_WRITE_COMMAND = "internal-sftp -u 0002 -P symlink,hardlink,setstat,fsetstat,lsetstat"
SFTP_READ_ONLY_COMMAND = "internal-sftp -R"
#: Rounds of read, compute, swap before giving up when other processes keep changing the file.
SWAP_ATTEMPTS = 20
_CONFLICT = 3
_LINKED = 5
_LOCK_WAIT_SECONDS = "60"

# $1 account. Prints the account's home, then the digest and the base64 of its authorized_keys (bytes
# survive the trip as they are), or "absent"; exits 3 when there is no such account, 4 when it has no ~/.ssh
# and 5 when ~/.ssh or authorized_keys is a symbolic link (never followed: it could point at any file).
_READ_KEYS = r"""
entry=$(getent passwd "$1") || exit 3
home=$(printf '%s\n' "$entry" | cut -d: -f6)
file=$home/.ssh/authorized_keys
if [ -L "$home/.ssh" ] || [ -L "$file" ]; then exit 5; fi
[ -d "$home/.ssh" ] || exit 4
printf '%s\n' "$home"
if [ -f "$file" ]; then
  digest=$(sha256sum < "$file")
  printf '%s\n' "${digest%% *}"
  base64 -w0 < "$file"
else
  echo absent
fi
"""

# $1 target, $2 digest read before ("absent" for no file), $3 staged new content, $4 seconds to wait
# for the lock, $5 the install script (templates/remote/install_file.sh). Under the lock: install only
# if the target is unchanged since it was read, else exit 3.
_SWAP = r"""
set -eu
target=$1 expected=$2 staged=$3 wait=$4 install=$5
exec 9>>"$target.lock"
if ! flock -w "$wait" 9; then rm -f -- "$staged"; echo "timed out waiting for $target.lock" >&2; exit 4; fi
if [ -f "$target" ]; then current=$(sha256sum < "$target"); current=${current%% *}; else current=absent; fi
if [ "$current" != "$expected" ]; then rm -f -- "$staged"; exit 3; fi
sh -c "$install" install_file "$staged" "$target" root "" 0644
"""


def key_line(account: str, public_key: str, marker: str, *, read_only: bool = False) -> str:
    """One authorized_keys line: `restrict`, the forced command of `account` (SFTP or GIT), key, marker."""
    return render("client/authorized_keys_line.j2", account=account, public_key=public_key, marker=marker,
                  read_only=read_only, sftp_command=SFTP_READ_ONLY_COMMAND if read_only else SFTP_READ_WRITE_COMMAND)


#: What sshd separates an authorized_keys line's fields with.
_FIELD_SEPARATORS = re.compile(rb"[ \t]+")
#: `provision:<inventory>:<client>` in printable ASCII without spaces.
_MARKER = re.compile(rb"provision:[!-9;-~]+:[!-9;-~]+")
#: Bytes shown escaped in diffs (control characters other than tab and newline).
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def file_lines(content: bytes) -> list[bytes]:
    """The lines of a file split on b"\\n" alone, as sshd reads them (no final empty line)."""
    lines = content.split(b"\n")
    return lines[:-1] if lines[-1] == b"" else lines


def line_marker(line: bytes) -> str | None:
    """The provision marker a key line ends with, if any (fields split on spaces and tabs, as sshd does)."""
    stripped = line.strip(b" \t")
    if not stripped or stripped.startswith(b"#"):
        return None
    last = _FIELD_SEPARATORS.split(stripped)[-1]
    return last.decode() if _MARKER.fullmatch(last) else None


def marked_lines(content: bytes, marker: str) -> list[str]:
    """The lines of `content` carrying `marker` (ours, so text)."""
    return [line.decode(errors="surrogateescape") for line in file_lines(content) if line_marker(line) == marker]


def replace_marked_lines(content: bytes, wanted: Mapping[str, Sequence[str]]) -> bytes:
    """`content` with the lines of each marker in `wanted` replaced by its lines (none: removed).

    Every other line stays where it is, byte for byte; a client's new lines take the place of its
    first old line, or go at the end.
    """
    placed: set[str] = set()
    result: list[bytes] = []
    for line in file_lines(content):
        marker = line_marker(line)
        if marker is None or marker not in wanted:
            result.append(line)
        elif marker not in placed:
            placed.add(marker)
            result.extend(new.encode() for new in wanted[marker])
    for marker, new_lines in wanted.items():
        if marker not in placed:
            result.extend(new.encode() for new in new_lines)
    return b"".join(line + b"\n" for line in result)


def displayed(content: bytes) -> str:
    """The file as text for a diff: keys shortened, bytes that are not printable text escaped."""
    text = content.decode(errors="backslashreplace")
    return shorten_keys(_UNPRINTABLE.sub(lambda match: ascii(match.group(0))[1:-1], text))


@dataclass(frozen=True)
class AuthorizedKeys:
    """An account's authorized_keys as read: where, its digest ("absent" when missing) and content."""

    home: str
    digest: str
    content: bytes

    @property
    def path(self) -> str:
        return f"{self.home.rstrip('/')}/.ssh/authorized_keys"


@dataclass(frozen=True)
class AuthorizedKeysFact(Fact):
    """An account's authorized_keys, read with the account facts it is batched with (root-owned 0644 under
    root-owned 0755 directories: no account can put a link there for root to follow)."""

    account: str
    privileged: bool = True

    @property
    def key(self) -> tuple[str, str]:
        return ("authorized_keys", self.account)

    def argv(self) -> list[str]:
        return script(_READ_KEYS, self.account)

    def parse(self, output: BatchOutput) -> AuthorizedKeys | str:
        """The file, or what is missing on storage."""
        if output.rc == 3:
            return f"no account {self.account!r} on storage"
        if output.rc == _LINKED:
            return (f"~{self.account}/.ssh or its authorized_keys on storage is a symbolic link, which provision "
                    "never follows: make it a plain file owned by root")
        if output.rc != 0:
            return f"account {self.account!r} has no ~/.ssh on storage"
        home, digest, encoded = [*output.stdout.split("\n", 2), "", ""][:3]
        if digest == "absent":
            return AuthorizedKeys(home, digest, b"")
        try:
            return AuthorizedKeys(home, digest, base64.b64decode(encoded.strip(), validate=True))
        except binascii.Error:
            return f"authorized_keys of {self.account!r} could not be read back (base64)"


class AuthorizeKeys(Task):
    """Sets the marked lines of some clients in one account's authorized_keys, under the lock.

    `lines` maps a client's marker to its wanted lines: an empty list removes the client, None means
    its key does not exist yet (only under --check, where the key pair is not generated).
    """

    def __init__(self, account: str, lines: Mapping[str, Sequence[str] | None], *, purpose: str) -> None:
        self.account = account
        self.lines = dict(lines)
        self.purpose = purpose
        self.fact = AuthorizedKeysFact(account)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"authorized_keys of {self.account} ({self.purpose})"

    def facts(self) -> Sequence[Fact]:
        return (self.fact,)

    def _read(self, ctx: HostContext) -> AuthorizedKeys:
        state = ctx.fact(self.fact)
        if isinstance(state, str):
            raise ProvisionError(f"{state}: run `provision bootstrap` first")
        return state

    def plan(self, ctx: HostContext) -> Change | None:
        current = self._read(ctx)
        known = {marker: lines for marker, lines in self.lines.items() if lines is not None}
        pending = sorted(_client(marker) for marker, lines in self.lines.items() if lines is None)
        new_content = replace_marked_lines(current.content, known)
        if new_content == current.content and not pending:
            return None
        authorized, revoked = [], []
        for marker, wanted in sorted(known.items()):
            if marked_lines(current.content, marker) != list(wanted):
                (authorized if wanted else revoked).append(_client(marker))
        parts = []
        if authorized:
            parts.append(f"authorize {', '.join(authorized)}")
        if revoked:
            parts.append(f"revoke {', '.join(revoked)}")
        if pending:
            parts.append(f"authorize {', '.join(pending)} (key not generated yet)")
        diff = unified_diff(current.path, None if current.digest == "absent" else displayed(current.content),
                            displayed(new_content))

        def apply() -> None:
            if pending:
                raise ProvisionError(f"no public key of {', '.join(pending)} to authorize")
            self._swap(ctx, known)

        return Change(f"{'; '.join(parts)} in {current.path}", apply, diff)

    def _swap(self, ctx: HostContext, known: Mapping[str, Sequence[str]]) -> None:
        """Read, compute, install if unchanged since read; again on a conflict."""
        for _ in range(SWAP_ATTEMPTS):
            current = self._read(ctx)
            new_content = replace_marked_lines(current.content, known)
            if new_content == current.content:
                return
            staged = ctx.session.stage(new_content)
            result = ctx.session.run(
                script(_SWAP, current.path, current.digest, staged, _LOCK_WAIT_SECONDS, install_script()),
                privileged=True)
            ctx.forget(self.fact)
            if result.ok:
                return
            if result.rc != _CONFLICT:
                raise command_error(f"writing {current.path}", result)
        raise ProvisionError(f"{current.path} kept changing under {SWAP_ATTEMPTS} attempts; run again")


def _client(marker: str) -> str:
    return marker.rsplit(":", 1)[-1]

