"""Per-host locks: one provision run at a time changes a host, whichever machine it runs from.

The lock is `flock` on `~/.provision/lock` of the connecting user on the host, held by a command that
lives as long as the run's SSH session (its stdin closes when the session ends, however it ends), so a
run killed on a laptop, or whose connection dropped, holds nothing. The directory is the connecting
user's own (mode 0700, never a link) in a home no other account may write: another local account can
neither hold the lock nor plant a file or link there (see docs/security.md, "Host locks").

The first command of the run on each host takes the lock (it also removes staging directories that
interrupted runs left), so locking costs no extra round trip. A host another run holds is waited for
with a message, up to --lock-wait seconds, then fails. Hosts are locked in one order (address, port,
user) and a run never waits for a host while it holds a later one: two runs over the same hosts cannot
wait for each other forever.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from provision.connection import STALE_STAGING_FUNCTION, Session, resolve_target
from provision.errors import ProvisionError, one_line
from provision.inventory import Host
from provision.remote import script

#: Seconds a run waits for another run's lock on a host (--lock-wait).
DEFAULT_LOCK_WAIT = 600.0

#: $1 seconds to wait (0: only try), $2 who this run is, $3 a random token that starts every status line
#: (so no directory name can forge one), $4 this run's random id. Removes stale staging directories
#: (`TOKEN removed DIR`), then locks ~/.provision/lock: `TOKEN locked` (then holds it until stdin closes),
#: `TOKEN busy HOLDER` while another run holds it (HOLDER: its id, then who it is, from `holder`, read only
#: when a regular file), `TOKEN timeout` when it stayed busy, `TOKEN refused PATH` when the directory, the
#: home above it or the lock file could be changed or opened by another account (else both are made
#: private: 0700, 0600). A waiter whose run ended meanwhile (its connection gone) dies writing `locked` to
#: the closed channel, which releases the lock at once.
HOST_LOCK = STALE_STAGING_FUNCTION + """
token=$3
say() { printf '%s %s\\n' "$token" "$*"; }
stale_staging remove | while IFS= read -r stale; do say removed "$stale"; done
dir=$HOME/.provision
umask 077
[ -n "$HOME" ] && { [ -e "$dir" ] || [ -L "$dir" ] || mkdir -- "$dir" 2>/dev/null; }
home_owner=$(stat -c %u -- "$HOME" 2>/dev/null)
if [ -z "$HOME" ] || [ -L "$dir" ] || [ ! -d "$dir" ] || [ ! -O "$dir" ] || [ -L "$dir/lock" ] \\
   || { [ -e "$dir/lock" ] && { [ ! -f "$dir/lock" ] || [ ! -O "$dir/lock" ]; }; } \\
   || { [ "$home_owner" != "$(id -u)" ] && [ "$home_owner" != 0 ]; } \\
   || [ -n "$(find "$HOME" "$dir" -maxdepth 0 -perm /022)" ] || ! : >> "$dir/lock" \\
   || ! chmod 0700 -- "$dir" || ! chmod 0600 -- "$dir/lock"; then
  say refused "$dir"
  exit 0
fi
exec 9>> "$dir/lock"
if ! flock -n -x 9; then
  holder=
  if [ -f "$dir/holder" ] && [ ! -L "$dir/holder" ]; then holder=$(head -c 200 -- "$dir/holder" 2>/dev/null); fi
  say busy "$(printf '%s' "$holder" | tr -d '\\n')"
  if [ "$1" = 0 ] || ! flock -w "$1" -x 9; then
    say timeout
    exit 0
  fi
fi
rm -f -- "$dir/holder"
(set -C; printf '%s %s\\n' "$4" "$2" > "$dir/holder") 2>/dev/null
say locked
exec cat > /dev/null
"""


class HostBusy(ProvisionError):
    """Another run held the host's lock for as long as this run would wait."""

    def __init__(self, label: str, holder: str, waited: float) -> None:
        self.holder = holder
        super().__init__(f"{label}: another provision run ({holder}) still works on this host after "
                         f"{waited:g}s of waiting: run again when it has finished (or raise --lock-wait)")


def this_run() -> str:
    """How other runs name this one while they wait: `pid N on HOST since TIME`."""
    return f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"


#: What new_run_id() returns; a holder line without one is shown whole.
RUN_ID = re.compile(r"[0-9a-f]{16}")


def new_run_id() -> str:
    """A random id for one run, written beside its name in `holder`: a host whose lock file is one this run
    already holds through another host (a home shared over NFS) is recognised, not waited for."""
    return secrets.token_hex(8)


def lock_host(session: Session, *, wait: float, run: str, on_wait: Callable[[str], None],
              on_removed: Callable[[str], None], run_id: str | None = None) -> Callable[[], None]:
    """Take the host's lock (waiting up to `wait` seconds, after `on_wait(holder)`); returns its release.

    A lock held by `run_id` itself (another host of this run with the same home) counts as taken.
    Raises HostBusy when another run still holds it, ProvisionError when the lock's directory is unsafe.
    """
    token = secrets.token_hex(8)
    run_id = run_id or new_run_id()
    holder = session.start_holder(script(HOST_LOCK, f"{wait:g}", run, token, run_id))
    busy: str | None = None
    try:
        while True:
            line = holder.readline(session.timeout + (wait if busy is not None else 0))
            if not line:
                raise ProvisionError(f"{session.label}: could not take the host's provision lock "
                                     "(the lock command ended early: it needs flock, stat and find)")
            mark, _, rest = line.rstrip("\n").partition(" ")
            status, _, detail = rest.partition(" ")
            if mark != token:
                continue
            if status == "removed":
                on_removed(one_line(detail))
            elif status == "busy":
                holder_id, _, holder_name = detail.partition(" ")
                if holder_id == run_id:
                    holder.release()
                    return lambda: None
                busy = one_line(holder_name if RUN_ID.fullmatch(holder_id) else detail) or "unknown run"
                if wait:
                    on_wait(busy)
            elif status == "locked":
                return holder.release
            elif status == "timeout":
                raise HostBusy(session.label, busy or "unknown run", wait)
            elif status == "refused":
                raise ProvisionError(f"{session.label}: refusing to lock in {one_line(detail)}: it must be a "
                                     "directory of the connecting user, not a link, and neither it nor the home "
                                     "above it writable by another account")
    except BaseException:
        holder.release()
        raise


def lock_order(host: Host) -> tuple[str, int, str]:
    """The order every run locks hosts in: the address and port it reaches them at, and the user."""
    if host.connection == "local":
        return ("", 0, host.name)
    target = resolve_target(host)
    return (target.hostname, target.port, target.user or "")


@dataclass
class HostLocks:
    """The locks a run holds and the hosts it could not lock (or reach), with why."""

    held: dict[str, Callable[[], None]] = field(default_factory=dict)
    errors: dict[str, ProvisionError] = field(default_factory=dict)

    def release(self) -> None:
        """Release every lock held (best effort: the session's end releases it anyway)."""
        held, self.held = self.held, {}
        for release in held.values():
            with contextlib.suppress(Exception):
                release()


def lock_hosts(hosts: Sequence[Host], connect: Callable[[Host], Session], *, wait: float, forks: int,
               notice: Callable[[str], None]) -> HostLocks:
    """Lock every host for the rest of the run, connecting to each (in parallel, up to `forks`).

    All are tried at once without waiting. While some are busy: release the locks held on hosts after
    the first busy one (in lock_order), wait for that one, then try those after it again. A run thus
    never waits while holding a later host, so two runs cannot wait for each other.
    """
    run, run_id = this_run(), new_run_id()
    locks = HostLocks()
    busy: set[str] = set()
    order = sorted(hosts, key=lock_order)

    def attempt(host: Host, seconds: float, *, last: bool) -> None:
        """Lock `host`; when it stays busy: an error if this was the `last` attempt, else busy."""
        def waiting(holder: str) -> None:
            notice(f"{host.name}: waiting for another provision run ({holder}) to finish, up to {seconds:g}s")

        def removed(directory: str) -> None:
            notice(f"{host.name}: removed staging directory {directory} left by an interrupted run")

        try:
            locks.held[host.name] = lock_host(connect(host), wait=seconds, run=run, on_wait=waiting,
                                              on_removed=removed, run_id=run_id)
        except HostBusy as error:
            if last:
                locks.errors[host.name] = error
            else:
                busy.add(host.name)
        except ProvisionError as error:
            locks.errors[host.name] = error

    def attempt_all(chosen: Sequence[Host]) -> None:
        with ThreadPoolExecutor(max_workers=max(1, forks), thread_name_prefix="provision-lock") as pool:
            list(pool.map(lambda host: attempt(host, 0, last=False), chosen))

    attempt_all(order)
    while busy:
        index = next(n for n, host in enumerate(order) if host.name in busy)
        later = order[index + 1:]
        for host in later:
            release = locks.held.pop(host.name, None)
            if release is not None:
                release()
        busy.clear()
        attempt(order[index], wait, last=True)
        attempt_all([host for host in later if host.name not in locks.errors])
    return locks
