"""What bench/run measures around each step: CPU, the controller's memory, and storage's sshd log.

CPU is counted twice. `job` CPU is that of a cgroup the harness moves itself into before any lab
starts, so it holds the contender, its ssh children and every lab sshd with its sessions (they are
descendants, whatever they were reparented to) and nothing else running on the machine. `machine` CPU
is the whole machine's busy time from /proc/stat, which includes other people's work.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import paramiko

_CGROUP_V2 = Path("/sys/fs/cgroup")
_CGROUP_V1_CPUACCT = Path("/sys/fs/cgroup/cpuacct")
_ACCEPTED = re.compile(r"^Accepted publickey for (\S+) from \S+ port (\d+) ssh2: \S+ (SHA256:\S+)")
_SESSION = re.compile(r"^Starting session: (.*) for (\S+) from \S+ port (\d+) ")
_DROPPED = re.compile(r"past MaxStartups")
SAMPLE_SECONDS = 0.05


class JobCpu:
    """CPU seconds of this process and all its descendants, from a cgroup of their own (None if impossible)."""

    def __init__(self) -> None:
        self.group: Path | None = None
        self._home: Path | None = None
        self._usage: Path | None = None
        name = f"provision-bench-{os.getpid()}"
        if (_CGROUP_V2 / "cgroup.controllers").is_file():
            self._enter(_CGROUP_V2, name, "cpu.stat", self._own_path(""))
        elif (_CGROUP_V1_CPUACCT / "cpuacct.usage").is_file():
            self._enter(_CGROUP_V1_CPUACCT, name, "cpuacct.usage", self._own_path("cpuacct"))

    @staticmethod
    def _own_path(controller: str) -> str | None:
        """This process's cgroup in the hierarchy of `controller` ("" for the cgroup v2 hierarchy)."""
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(",") if controller else controllers == "":
                return path
        return None

    def _enter(self, root: Path, name: str, usage: str, own: str | None) -> None:
        if own is None:
            return
        try:
            group = root / own.lstrip("/") / name
            group.mkdir()
            (group / "cgroup.procs").write_text(f"{os.getpid()}\n")
        except OSError:
            return
        self.group, self._home, self._usage = group, root / own.lstrip("/"), group / usage

    @property
    def source(self) -> str:
        if self._usage is None:
            return "unavailable (no cgroup could be made)"
        return "a cgroup of its own (" + ("v2 cpu.stat" if self._usage.name == "cpu.stat" else "v1 cpuacct") + ")"

    def seconds(self) -> float | None:
        if self._usage is None:
            return None
        text = self._usage.read_text()
        if self._usage.name == "cpu.stat":
            usec = next(int(line.split()[1]) for line in text.splitlines() if line.startswith("usage_usec "))
            return usec / 1e6
        return int(text) / 1e9

    def close(self) -> None:
        """Leave the cgroup and remove it once its last process (e.g. a lingering ssh master) is gone."""
        if self.group is None or self._home is None:
            return
        (self._home / "cgroup.procs").write_text(f"{os.getpid()}\n")
        deadline = time.monotonic() + 90
        while True:
            try:
                self.group.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(1)


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Finished:
    """One command run by the harness."""

    exit_status: int
    wall_seconds: float
    peak_rss_mb: float


def _high_water_mb(pid: int) -> float:
    """The process's peak resident set so far (VmHWM), 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), 0.0)


def run_measured(argv: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> Finished:
    """Run argv with its output in `log`, following its peak RSS.

    The controller's peak is that of its main process (provision, ansible-playbook, bash), read from
    its VmHWM while it runs: the peak only grows, so the last reading misses at most SAMPLE_SECONDS.
    (wait4's ru_maxrss would count the harness's own memory, which the child had before its exec.)
    """
    peak = 0.0
    with log.open("wb") as output:
        start = time.perf_counter()
        child = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=output,
                                 stderr=subprocess.STDOUT)
        while True:
            peak = max(peak, _high_water_mb(child.pid))
            try:
                child.wait(timeout=SAMPLE_SECONDS)
                break
            except subprocess.TimeoutExpired:
                continue
        wall = time.perf_counter() - start
    return Finished(child.returncode, wall, peak)


def key_fingerprint(public_key: str) -> str:
    """`SHA256:...` of an OpenSSH public key line, as sshd logs it."""
    kind, blob = public_key.split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(blob)).fingerprint


@dataclass(frozen=True)
class StorageTraffic:
    """What storage's sshd logged in one step: logins and SFTP sessions by clients' keys, drops."""

    client_logins: int
    client_sftp_sessions: int
    logins: int
    dropped: int
    logins_by_client: dict[str, int]


def storage_traffic(log_text: str, client_keys: dict[str, str]) -> StorageTraffic:
    """Count in sshd's VERBOSE log text; client_keys maps fingerprints to client names."""
    by_port: dict[str, str] = {}
    logins: Counter[str] = Counter()
    total = sftp = dropped = 0
    for line in log_text.splitlines():
        if accepted := _ACCEPTED.match(line):
            total += 1
            client = client_keys.get(accepted.group(3))
            by_port.pop(accepted.group(2), None)
            if client is not None:
                by_port[accepted.group(2)] = client
                logins[client] += 1
        elif session := _SESSION.match(line):
            if session.group(3) in by_port and ("internal-sftp" in session.group(1) or "'sftp'" in session.group(1)):
                sftp += 1
        elif _DROPPED.search(line):
            dropped += 1
    return StorageTraffic(sum(logins.values()), sftp, total, dropped, dict(logins))
