"""A lab host's processes: its sshd, started in fresh mount and UTS namespaces, recognized, entered, stopped.

`unshare` makes the namespaces and runs `python -m provision.lab.namespace`, which binds the host's
private directories (provision.lab.host_tree) and starts sshd; everything running inside a host is found
by its root directory's /etc being the host's own copy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from provision.errors import ProvisionError
from provision.lab.host_tree import SSHD_LOG, SSHD_PID_FILE, HostTree
from provision.lab.tools import SSHD
from provision.local_files import atomic_write

SSHD_ARGV = (SSHD, "-D", "-f", "/etc/ssh/sshd_config", "-E", SSHD_LOG)
# How a host's sshd re-reads its config, run on that host: check the config first, as Debian's
# `systemctl reload ssh` does, since sshd exits on a SIGHUP with a broken config.
SSHD_RELOAD_COMMAND = f"sh -c '/usr/sbin/sshd -t && kill -HUP \"$(cat {SSHD_PID_FILE})\"'"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def _process_state(pid: int) -> str | None:
    """The /proc state letter of pid, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    return _process_state(pid) not in (None, "Z", "X")


def is_host_sshd(tree: HostTree, pid: int) -> bool:
    """Whether pid still is this host's listening sshd (pids get reused).

    The listener retitles itself `sshd: <its command line> [listener] ...`, and it lives inside
    the host: its /etc is the host's own copy under DIR.
    """
    if not _alive(pid):
        return False
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        inside_host = os.path.samestat(os.stat(f"/proc/{pid}/root/etc"), os.stat(tree.path("/etc")))
    except OSError:
        return False
    command_line = " ".join(SSHD_ARGV)
    return inside_host and title.startswith((f"{command_line} ", f"sshd: {command_line} "))


def _namespace_argv(tree: HostTree, binds: Sequence[tuple[Path, str]]) -> list[str]:
    argv = ["unshare", "--mount", "--uts", "--propagation", "private", "--",
            sys.executable, "-m", "provision.lab.namespace", "--hostname", tree.name]
    for source, target in binds:
        argv += ["--bind", str(source), target]
    return [*argv, "--", *SSHD_ARGV]


def start_sshd(tree: HostTree, binds: Sequence[tuple[Path, str]], port: int) -> int:
    """Start the host's sshd in its namespaces; its pid once it listens (it wrote its pid file)."""
    pid_file = tree.path(SSHD_PID_FILE)
    pid_file.unlink(missing_ok=True)
    with tree.log.open("ab") as log_file:
        launched = subprocess.run(_namespace_argv(tree, binds), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=log_file, start_new_session=True,
                                  timeout=60, check=False)
    if launched.returncode != 0:
        raise ProvisionError(f"lab host {tree.name}: could not set up its namespace: {_log_tail(tree)}")
    pid = int(launched.stdout)
    deadline = time.monotonic() + START_TIMEOUT
    while not (pid_file.is_file() and pid_file.read_text().strip() == str(pid)):
        if not _alive(pid) or time.monotonic() > deadline:
            raise ProvisionError(f"lab host {tree.name}: sshd on port {port} did not start: "
                                 f"{_log_tail(tree)} (log: {tree.log})")
        time.sleep(0.02)
    atomic_write(tree.root / "sshd.pid", f"{pid}\n", 0o644)
    return pid


def _log_tail(tree: HostTree) -> str:
    lines = tree.log.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "no log output"


def host_processes(tree: HostTree) -> Iterator[int]:
    """Every process that lives inside the host: its root directory's /etc is the host's own."""
    try:
        host_etc = os.stat(tree.path("/etc"))
    except FileNotFoundError:
        return
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.path.samestat(os.stat(f"/proc/{entry}/root/etc"), host_etc):
                yield int(entry)
        except OSError:
            continue


def stop_host(tree: HostTree, listener: int | None) -> None:
    """End the host's sshd listener first, then every other process inside the host (TERM, then KILL)."""
    processes = ([listener] if listener else []) + [pid for pid in host_processes(tree) if pid != listener]
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
        for pid in processes:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + wait
        while (processes := [pid for pid in processes if _alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not processes:
            break
    if processes:
        raise ProvisionError(f"lab host {tree.name}: processes {processes} survived SIGKILL")
    (tree.root / "sshd.pid").unlink(missing_ok=True)


def enter(pid: int, argv: Sequence[str], *, input: str | None = None,
          check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run argv as root inside the namespaces of process pid (the host's /etc, /home, hostname...)."""
    return subprocess.run(["nsenter", "--target", str(pid), "--mount", "--uts", "--", *argv],
                          input=input, capture_output=True, text=True, check=check)
