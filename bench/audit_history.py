"""Benchmark: `provision audit repo --history` on a generated repository of many commits.

The repository is written with one `git fast-import`: every commit changes a source file and a
data pointer (a few lines each, as a DVC project's commits do), every `secret_every`-th commit also
puts a distinct password into `.dvc/config` (removed again by the next commit), so the scan has
DVC configs to read whole and findings to deduplicate.

Run from the repository: `python bench/audit_history.py --commits 10000`. It prints the generation
and scan wall times and the findings count (which must equal commits // secret_every).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from provision.audit.repo import audit_repository

CLEAN_CONFIG = "[core]\n    remote = storage\n['remote \"storage\"']\n    url = ssh://storage.example/mnt/nfs/dvc\n"


def _blob(path: str, text: str) -> bytes:
    data = text.encode()
    return f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n"


def generate_history(repo: Path, commits: int, secret_every: int) -> None:
    """A new repository at `repo` with `commits` commits on main (see the module docstring)."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    stream = bytearray()
    for number in range(1, commits + 1):
        message = f"change {number}".encode()
        stream += b"commit refs/heads/main\n"
        stream += f"committer Bench <bench@example.invalid> {1_700_000_000 + number} +0000\n".encode()
        stream += f"data {len(message)}\n".encode() + message + b"\n"
        source = "".join(f"value_{number}_{line} = {number * line}\n" for line in range(3))
        stream += _blob(f"src/module_{number % 50}.py", source)
        stream += _blob("data.dvc", f"outs:\n- md5: {number:032x}.dir\n  size: {number * 1024}\n  path: data\n")
        if number % secret_every == 0:
            stream += _blob(".dvc/config", CLEAN_CONFIG + f"    password = bench-secret-{number:06d}\n")
        elif number % secret_every == 1 or number == 1:
            stream += _blob(".dvc/config", CLEAN_CONFIG)
        stream += b"\n"
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=bytes(stream), check=True)
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "-f", "main"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--secret-every", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as directory:
        repo = Path(directory) / "repo"
        started = time.monotonic()
        generate_history(repo, args.commits, args.secret_every)
        generated = time.monotonic()
        findings = audit_repository(repo, history=True).findings
        scanned = time.monotonic()
    print(f"{args.commits} commits generated in {generated - started:.1f} s; "
          f"history scanned in {scanned - generated:.1f} s; {len(findings)} findings")


if __name__ == "__main__":
    main()
