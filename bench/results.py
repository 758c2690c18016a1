"""RESULTS.md, results.json and the plot wall_time.svg from the runs bench/run measured."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

PHASE_TITLES = {"first": "first run", "rerun": "re-run, nothing to change"}
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
PLOT = "wall_time.svg"

Run = dict[str, Any]


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    except OSError:
        return "not found"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def machine_facts() -> dict[str, str]:
    """What the numbers depend on: CPU, memory, kernel, tool versions, and how busy the machine was."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    memory_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:"))
    venv_bin = Path(sys.executable).parent
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{memory_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "load average at start": " ".join(f"{load:.2f}" for load in os.getloadavg()),
        "python": platform.python_version(),
        "OpenSSH": _version(["ssh", "-V"]),
        "git": _version(["git", "--version"]),
        "dvc": _version([str(venv_bin / "dvc"), "--version"]),
        "ansible-core": _version([str(venv_bin / "ansible-playbook"), "--version"]),
    }


def _select(runs: Sequence[Run], **wanted: Any) -> list[Run]:
    return [run for run in runs if all(run[key] == value for key, value in wanted.items())]


def _median(runs: Sequence[Run], key: str) -> float | None:
    values = [run[key] for run in runs if run[key] is not None]
    return statistics.median(values) if values else None


def _spread(runs: Sequence[Run], key: str = "wall_seconds") -> str:
    values = [run[key] for run in runs]
    if not values:
        return "-"
    median = statistics.median(values)
    return f"{median:.1f} ({min(values):.1f}-{max(values):.1f})" if len(values) > 1 else f"{median:.1f}"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    return "-" if not numerator or not denominator else f"{numerator / denominator:.2f}x"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def _per_client(runs: Sequence[Run], key: str, clients: int) -> str:
    return _number(statistics.median(run[key] / clients for run in runs))


def _details(runs: Sequence[Run], contenders: Sequence[str], sizes: Sequence[int]) -> list[list[str]]:
    rows = []
    for clients in sizes:
        for phase in PHASE_TITLES:
            for contender in contenders:
                group = _select(runs, contender=contender, clients=clients, phase=phase)
                if not group:
                    continue
                exits = sorted({status for run in group for status in run["exit_statuses"].values()})
                ok = sum(not run["problems"] for run in group)
                rows.append([str(clients), phase, contender, _spread(group), _number(_median(group, "job_cpu_seconds")),
                             _number(_median(group, "machine_cpu_seconds")), _number(_median(group, "peak_rss_mb"), 0),
                             _per_client(group, "client_logins", clients),
                             _per_client(group, "client_sftp_sessions", clients),
                             str(sum(run["dropped"] for run in group)), str(sum(run["retries"] for run in group)),
                             ",".join(map(str, exits)), f"{ok}/{len(group)}"])
    return rows


def _plot(runs: Sequence[Run], contenders: Sequence[str], sizes: Sequence[int]) -> str:
    """Median wall time against N per contender: solid for the first run, dashed for the re-run."""
    width, height, left, right, top, bottom = 700, 360, 60, 190, 20, 50
    medians = {(contender, phase, clients): _median(_select(runs, contender=contender, phase=phase,
                                                             clients=clients), "wall_seconds")
               for contender in contenders for phase in PHASE_TITLES for clients in sizes}
    highest = max((value for value in medians.values() if value is not None), default=1.0) * 1.1

    def x(clients: int) -> float:
        index = sizes.index(clients)
        return left + (index + 0.5) * (width - left - right) / len(sizes)

    def y(seconds: float) -> float:
        return height - bottom - seconds / highest * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
             f'<text x="{(width - right + left) / 2}" y="{height - 12}" text-anchor="middle">clients N</text>',
             f'<text x="14" y="{(height - bottom + top) / 2}" transform="rotate(-90 14 {(height - bottom + top) / 2})" '
             'text-anchor="middle">wall time (s), median</text>']
    for clients in sizes:
        parts.append(f'<text x="{x(clients):.0f}" y="{height - bottom + 16}" text-anchor="middle">{clients}</text>')
    for step in range(5):
        seconds = highest * step / 4
        parts.append(f'<text x="{left - 6}" y="{y(seconds) + 4:.0f}" text-anchor="end">{seconds:.0f}</text>')
    for index, contender in enumerate(contenders):
        colour = COLOURS[index % len(COLOURS)]
        for phase, dash in (("first", ""), ("rerun", ' stroke-dasharray="5,4"')):
            points = [(x(clients), y(value)) for clients in sizes
                      if (value := medians[(contender, phase, clients)]) is not None]
            if points:
                path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
                parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
                parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in points]
            legend_y = top + 10 + (index * 2 + (phase == "rerun")) * 18
            parts.append(f'<line x1="{width - right + 12}" y1="{legend_y}" x2="{width - right + 36}" y2="{legend_y}" '
                         f'stroke="{colour}" stroke-width="2"{dash}/>')
            parts.append(f'<text x="{width - right + 40}" y="{legend_y + 4}">{escape(contender)}, '
                         f'{"first" if phase == "first" else "re-run"}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_results(out: Path, runs: list[Run], *, facts: dict[str, str], command: str, note: str,
                  cpu_source: str) -> None:
    """OUT/results.json (every run), OUT/RESULTS.md (medians, min-max, ratios) and OUT/wall_time.svg."""
    (out / "results.json").write_text(json.dumps({"facts": facts, "command": command, "runs": runs}, indent=1) + "\n")
    contenders = list(dict.fromkeys(run["contender"] for run in runs))
    sizes = sorted({run["clients"] for run in runs})
    (out / PLOT).write_text(_plot(runs, contenders, sizes))
    lines = ["# Seed job: provision, ansible-core and a plain ssh script", ""]
    if note:
        lines += [f"**{note}**", ""]
    lines += [f"Reproduce (as root, from the repository): `{command}`", "",
              "Each run: a fresh lab of storage + N clients (stock sshd: `MaxStartups 10:30:100`, `MaxSessions 10`), "
              "then `bootstrap`, `bootstrap --data data --tag v1.0` (200 files, 20 MB) and `onboard --pull`, or the "
              "peers' same steps; then all three again with nothing to change (re-run). Wall time is the sum of the "
              "three steps. The end state is checked after both runs.", ""]
    lines += _table(["machine", ""], [[key, value] for key, value in facts.items()])
    for phase, title in PHASE_TITLES.items():
        lines += [f"## Wall time, {title}: median (min-max) in seconds", ""]
        lines += _table(["N", *contenders], [[str(clients), *(_spread(_select(runs, contender=contender, phase=phase,
                                                                                     clients=clients))
                                                              for contender in contenders)] for clients in sizes])
    peers = [contender for contender in contenders if contender != "provision"]
    if "provision" in contenders and peers:
        lines += ["## Ratios of median wall time", ""]
        rows = []
        for clients in sizes:
            for phase in PHASE_TITLES:
                ours = _median(_select(runs, contender="provision", phase=phase, clients=clients), "wall_seconds")
                rows.append([str(clients), phase, *(_ratio(ours, _median(_select(
                    runs, contender=peer, phase=phase, clients=clients), "wall_seconds")) for peer in peers)])
        lines += _table(["N", "phase", *(f"provision / {peer}" for peer in peers)], rows)
    if len(sizes) > 1:
        lines += [f"## Growth: median first-run wall time at N over N={sizes[0]}", ""]
        rows = []
        for contender in contenders:
            base = _median(_select(runs, contender=contender, phase="first", clients=sizes[0]), "wall_seconds")
            rows.append([contender, *(_ratio(_median(_select(runs, contender=contender, phase="first",
                                                             clients=clients), "wall_seconds"), base)
                                      for clients in sizes[1:])])
        lines += _table(["contender", *(f"N={clients}" for clients in sizes[1:])], rows)
    lines += ["## Every measure (medians over repetitions)", "",
              f"Job CPU: from {cpu_source} holding the contender, its children and every lab sshd, nothing else. "
              "Machine CPU: /proc/stat busy time of the whole machine, other people's work included. "
              "Peak RSS: the controller's main process (provision, ansible-playbook or bash; its VmHWM). "
              "Logins and SFTP sessions: by clients' keys, from storage's sshd log. "
              "Dropped: connections sshd shed past MaxStartups. Retries: as each contender reports them.", ""]
    lines += _table(["N", "phase", "contender", "wall s", "job CPU s", "machine CPU s", "peak RSS MB",
                     "logins/client", "SFTP sessions/client", "dropped", "retries", "exit", "end state ok"],
                    _details(runs, contenders, sizes))
    lines += [f"![wall time against N]({PLOT})", ""]
    failed = [run for run in runs if run["problems"]]
    if failed:
        lines += ["## End-state problems", ""]
        lines += [f"- {run['contender']} N={run['clients']} rep {run['repetition']} {run['phase']}: {problem}"
                  for run in failed for problem in run["problems"][:10]]
        lines.append("")
    (out / "RESULTS.md").write_text("\n".join(lines))
