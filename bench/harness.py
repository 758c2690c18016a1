"""bench/run: the seed job by provision, ansible-core and a plain ssh script on fresh labs, measured.

For each size N, repetition and contender (contenders alternate within a repetition), a fresh lab of
storage + N clients with stock sshd limits runs the seed job: `bootstrap`, the dataset placed in the
server repository, `bootstrap --data data --tag v1.0`, `onboard --pull`; then the same three steps
again with nothing to change. After each of the two runs the one end-state check (bench/endstate.py)
looks at every host. Results go to OUT/RESULTS.md, OUT/results.json and OUT/wall_time.svg.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.endstate import end_state_problems
from bench.measure import JobCpu, key_fingerprint, machine_cpu_seconds, run_measured, storage_traffic
from bench.results import machine_facts, write_results
from bench.seed import DATASET, TAG, SeedPlan, make_dataset, place_dataset, seed_plan
from provision.lab import SSHD_RELOAD_COMMAND, Lab

BENCH = Path(__file__).resolve().parent
REPOSITORY = BENCH.parent
STEPS = ("bootstrap", "dataset", "onboard")
PHASES = ("first", "rerun")
#: sshd as Debian ships it (they are also OpenSSH's defaults), pinned whatever the lab's template says,
#: and VERBOSE so that sshd logs every session: the counts of logins and SFTP sessions come from there.
STOCK_SSHD = "LogLevel VERBOSE\nMaxStartups 10:30:100\nMaxSessions 10\n"
SSHD_DROP_IN = "/etc/ssh/sshd_config.d/00-bench.conf"
SSHD_RESTART_TIMEOUT = 10.0


@dataclass
class Context:
    """What a contender's commands need: the lab, the plan files, where output goes."""

    lab: Lab
    work: Path
    ansible_vars: Path
    shell_vars: Path
    env: dict[str, str]


@dataclass(frozen=True)
class Contender:
    """A way of doing the seed job: the command for each step and how its output shows retries."""

    name: str
    command: Callable[[str, Context], list[str]]
    retries: Callable[[str], int]


def _provision_command(step: str, ctx: Context) -> list[str]:
    """The worktree's provision (`python -m provision` from the repository root)."""
    arguments = {"bootstrap": ["bootstrap"], "dataset": ["bootstrap", "--data", DATASET, "--tag", TAG],
                 "onboard": ["onboard", "--pull"]}[step]
    return [sys.executable, "-m", "provision", *arguments, "-i", str(ctx.lab.inventory_path), "--json"]


def _provision_retries(output: str) -> int:
    """Retries provision's --json recap counts per host (0 where it counts none); its document starts
    with a line `{`, whatever stderr printed before it."""
    start = output.find("{\n")
    try:
        document = json.loads(output[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return 0
    return sum(stats.get("retries", 0) for stats in document.get("stats", {}).values())


def _ansible_command(step: str, ctx: Context) -> list[str]:
    pins = shlex.join(["-o", f"UserKnownHostsFile={ctx.lab.known_hosts_path}", "-o", "StrictHostKeyChecking=yes"])
    forks = len(ctx.lab.hosts)  # N clients + storage
    return [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(ctx.lab.inventory_path),
            "-f", str(forks), "-e", f"@{ctx.ansible_vars}", "-e", f"ansible_ssh_common_args={shlex.quote(pins)}",
            "--tags", step, str(BENCH / "ansible" / "seed.yml")]


def _raw_command(step: str, ctx: Context) -> list[str]:
    return ["bash", str(BENCH / "raw_ssh.sh"), step, str(ctx.shell_vars), str(ctx.lab.controller_key),
            str(ctx.lab.known_hosts_path)]


CONTENDERS = {
    "provision": Contender("provision", _provision_command, _provision_retries),
    "ansible-core": Contender("ansible-core", _ansible_command, lambda output: output.count("FAILED - RETRYING")),
    "raw-ssh": Contender("raw-ssh", _raw_command, lambda output: output.count("RETRY ")),
}


@dataclass
class PhaseResult:
    """One contender's first run or re-run on one lab, all three steps together."""

    contender: str
    clients: int
    repetition: int
    phase: str
    wall_seconds: float = 0.0
    job_cpu_seconds: float | None = 0.0
    machine_cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    client_logins: int = 0
    client_sftp_sessions: int = 0
    logins: int = 0
    dropped: int = 0
    retries: int = 0
    exit_statuses: dict[str, int] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)
    logins_by_client: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not any(self.exit_statuses.values())


def stock_sshd(lab: Lab, settings: str = STOCK_SSHD) -> None:
    """Every host's sshd on stock limits with VERBOSE logging (a drop-in wins: the lab's config includes
    drop-ins first), or on other `settings`; reloaded as the lab reloads it, then waited for."""
    for host in lab.hosts:
        lab.host_path(host, SSHD_DROP_IN).write_text(settings)
        log = lab.log_path(host)
        restarts = log.read_text().count("Server listening on")
        lab.exec(host, shlex.split(SSHD_RELOAD_COMMAND), check=True)
        deadline = time.monotonic() + SSHD_RESTART_TIMEOUT
        while log.read_text().count("Server listening on") <= restarts:
            if time.monotonic() > deadline:
                raise SystemExit(f"lab host {host}: sshd did not come back after its reload (log: {log})")
            time.sleep(0.05)


def _client_fingerprints(lab: Lab, plan: SeedPlan) -> dict[str, str]:
    keys = {}
    for client in plan.clients:
        public = lab.host_path(client.name, f"{client.key}.pub")
        if public.is_file():
            keys[key_fingerprint(public.read_text())] = client.name
    return keys


def _run_phase(contender: Contender, ctx: Context, plan: SeedPlan, result: PhaseResult, dataset: Path,
               manifest: dict[str, str], cpu: JobCpu) -> None:
    """The three steps, each measured; then storage's log of the whole run counted and the end state checked."""
    lab = ctx.lab
    storage_log = lab.log_path(lab.storage_host)
    traffic_text = ""
    for step in STEPS:
        if step == "dataset":
            place_dataset(lab, plan, dataset)
        log_offset = storage_log.stat().st_size
        cpu_before, machine_before = cpu.seconds(), machine_cpu_seconds()
        output = ctx.work / f"{result.phase}-{step}.log"
        finished = run_measured(contender.command(step, ctx), env=ctx.env, cwd=REPOSITORY, log=output)
        cpu_after = cpu.seconds()
        result.machine_cpu_seconds += machine_cpu_seconds() - machine_before
        if cpu_before is None or cpu_after is None or result.job_cpu_seconds is None:
            result.job_cpu_seconds = None
        else:
            result.job_cpu_seconds += cpu_after - cpu_before
        result.wall_seconds += finished.wall_seconds
        result.step_seconds[step] = finished.wall_seconds
        result.peak_rss_mb = max(result.peak_rss_mb, finished.peak_rss_mb)
        result.exit_statuses[step] = finished.exit_status
        result.retries += contender.retries(output.read_text(errors="replace"))
        with storage_log.open("rb") as handle:
            handle.seek(log_offset)
            traffic_text += handle.read().decode(errors="replace")
    traffic = storage_traffic(traffic_text, _client_fingerprints(lab, plan))
    result.client_logins, result.client_sftp_sessions = traffic.client_logins, traffic.client_sftp_sessions
    result.logins, result.dropped, result.logins_by_client = traffic.logins, traffic.dropped, traffic.logins_by_client
    result.problems = end_state_problems(lab, plan, manifest)


def _one_lab(contender: Contender, clients: int, repetition: int, work: Path, dataset: Path,
             manifest: dict[str, str], cpu: JobCpu) -> list[PhaseResult]:
    """A fresh lab, the seed job twice, the lab gone; the lab directory is kept only on failure."""
    run_dir = work / f"{contender.name}-n{clients}-r{repetition}"
    run_dir.mkdir()
    lab = Lab(run_dir / "lab").up(["storage", *(f"ws{index}" for index in range(1, clients + 1))])
    results = []
    try:
        stock_sshd(lab)
        plan = seed_plan(lab)
        ctx = Context(lab, run_dir, run_dir / "plan.json", run_dir / "plan.env", _environment(run_dir))
        plan.write_ansible_vars(ctx.ansible_vars)
        plan.write_shell_vars(ctx.shell_vars)
        for phase in PHASES:
            result = PhaseResult(contender.name, clients, repetition, phase)
            _run_phase(contender, ctx, plan, result, dataset, manifest, cpu)
            results.append(result)
            _say(result)
    finally:
        lab.down()
    if all(result.ok for result in results):
        shutil.rmtree(run_dir)
    return results


def _environment(run_dir: Path) -> dict[str, str]:
    """The contenders' environment: a HOME of their own, ansible's state and config in the run directory."""
    home = run_dir / "home"
    home.mkdir()
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PROVISION_", "ANSIBLE_"))}
    environment.update({"HOME": str(home), "COLUMNS": "200", "ANSIBLE_CONFIG": str(BENCH / "ansible" / "ansible.cfg"),
                        "ANSIBLE_HOME": str(run_dir / "ansible"), "ANSIBLE_LOCAL_TEMP": str(run_dir / "ansible-tmp"),
                        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(run_dir / "ansible-cp")})
    return environment


def _say(result: PhaseResult) -> None:
    state = "ok" if result.ok else f"exit {result.exit_statuses}, {len(result.problems)} end-state problem(s)"
    print(f"{result.contender:<13} N={result.clients:<3} rep {result.repetition} {result.phase:<6} "
          f"{result.wall_seconds:7.1f} s  logins/client {result.client_logins / result.clients:4.1f}  "
          f"retries {result.retries}  {state}", flush=True)
    for problem in result.problems[:5]:
        print(f"    {problem}", flush=True)


def _sizes(text: str) -> list[int]:
    return [int(size) for size in text.split(",") if size]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=_sizes, default=[1, 4, 16], help="sizes N, comma-separated (default 1,4,16)")
    parser.add_argument("--with-32", action="store_true", help="also N=32")
    parser.add_argument("--repetitions", type=int, default=3, help="labs per contender and N (default 3)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help="comma-separated, of: " + ", ".join(CONTENDERS))
    parser.add_argument("--out", type=Path, default=BENCH, help="where RESULTS.md, results.json and the plot go")
    parser.add_argument("--note", default="", help="a line put at the top of RESULTS.md")
    args = parser.parse_args(argv)
    sizes = args.clients + ([32] if args.with_32 and 32 not in args.clients else [])
    contenders = [CONTENDERS[name] for name in args.contenders.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    reproduce = ["bench/run", "--clients", ",".join(map(str, sizes)), "--repetitions", str(args.repetitions)]
    if args.contenders != parser.get_default("contenders"):
        reproduce += ["--contenders", args.contenders]
    command = "sudo " + shlex.join(reproduce)
    facts = machine_facts()
    work = Path(tempfile.mkdtemp(prefix="provision-bench."))
    cpu = JobCpu()
    results: list[PhaseResult] = []
    try:
        manifest = make_dataset(work / "dataset")
        for clients in sizes:
            for repetition in range(1, args.repetitions + 1):
                # Alternate the order, so that no contender always runs right after the same one.
                order = contenders if repetition % 2 else contenders[::-1]
                for contender in order:
                    results += _one_lab(contender, clients, repetition, work, work / "dataset", manifest, cpu)
    finally:
        cpu.close()
        documents: list[dict[str, Any]] = [asdict(result) for result in results]
        write_results(args.out, documents, facts=facts, command=command, note=args.note, cpu_source=cpu.source)
        kept = [path.name for path in work.iterdir() if path.name != "dataset"]
        if kept:
            print(f"run directories of failed runs kept in {work}: {', '.join(sorted(kept))}", file=sys.stderr)
        else:
            shutil.rmtree(work)
    failed = [result for result in results if not result.ok]
    print(f"results in {args.out / 'RESULTS.md'}; {len(failed)} of {len(results)} runs not ok")
    return 1 if failed else 0
