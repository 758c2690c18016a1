"""Benchmark: reach every host of a lab and read OS, hostname, git and dvc versions.

Compares, on the same lab of real sshd hosts and in one run:
- `provision ping` (one SSH session and one round trip per host, hosts in parallel),
- ansible-core's `ansible all -m shell` with the same inventory (its default ssh connection,
  ControlPersist in a fresh control directory, fact gathering off), and
- a plain shell loop of OpenSSH `ssh` commands, one host after another.

Run as root from the repository: `python bench/ping_fleet.py --hosts 12 --rounds 3`.
It prints wall times (median of the rounds) and the ratios to `provision ping`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provision.lab import Lab

PROBE = ". /etc/os-release; echo $PRETTY_NAME; hostname; git --version; /opt/provision/dvc/bin/dvc --version"


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=12, help="lab hosts (the first is storage)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--forks", type=int, default=10)
    args = parser.parse_args()
    venv_bin = Path(sys.executable).parent
    work = Path(tempfile.mkdtemp(prefix="provision-bench."))
    lab = Lab(work / "lab").up(["storage", *(f"ws{n}" for n in range(1, args.hosts))])
    try:
        inventory, pins = str(lab.inventory_path), str(lab.known_hosts_path)
        base_env = {**os.environ, "HOME": str(work), "ANSIBLE_HOME": str(work / "ansible"),
                    "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"), "ANSIBLE_HOST_KEY_CHECKING": "True",
                    "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3", "ANSIBLE_GATHERING": "explicit"}
        ssh_options = f"-o UserKnownHostsFile={pins} -o StrictHostKeyChecking=yes"
        loop = "; ".join(
            f"ssh -F /dev/null {ssh_options} -o IdentitiesOnly=yes -i {lab.controller_key} -p {lab.port(h)} "
            f"root@127.0.0.1 '{PROBE}' >/dev/null"
            for h in lab.hosts
        )
        results: dict[str, list[float]] = {"provision ping": [], "ansible -m shell": [], "ssh loop": []}
        for round_number in range(args.rounds):
            control = work / f"cp{round_number}"
            control.mkdir()
            ansible_env = {**base_env, "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control)}
            results["provision ping"].append(timed(
                [str(venv_bin / "provision"), "ping", "-i", inventory, "-f", str(args.forks)], base_env))
            results["ansible -m shell"].append(timed(
                [str(venv_bin / "ansible"), "all", "-i", inventory, "-f", str(args.forks), "-m", "shell",
                 "-a", PROBE, "-e", f"ansible_ssh_common_args='{ssh_options}'"], ansible_env))
            results["ssh loop"].append(timed(["sh", "-c", loop], base_env))
        reference = statistics.median(results["provision ping"])
        print(f"{len(lab.hosts)} hosts, forks {args.forks}, median of {args.rounds} rounds")
        for name, times in results.items():
            median = statistics.median(times)
            print(f"  {name:<18} {median:7.2f} s   {median / reference:5.2f}x provision")
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
