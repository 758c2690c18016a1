"""Benchmark: `provision data duplicates` on a generated tree that DVC already knows.

Generates FILES files of equal size (so size alone never settles a group) in groups of four identical
ones, in two directories; `dvc add` of both (or, with --half-known, of one: the other half is hashed)
gives DVC's hash cache the files; then times the duplicate search and checks its groups against the
generated ones.

Run from the repository: `python bench/duplicates.py --files 100000` (tests use a small tree).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from provision.data.duplicates import find_duplicates
from provision.data.runner import local_dvc

#: Files in a group of identical ones; every other block of that many files is unique content.
GROUP = 4


def make_tree(root: Path, files: int) -> list[list[str]]:
    """`files` files under root/tracked and root/loose; returns the duplicate groups (sorted paths)."""
    groups: dict[int, list[str]] = {}
    for index in range(files):
        block = index - index % GROUP
        duplicated = index % (2 * GROUP) < GROUP
        content = block if duplicated else index
        relative = f"{'tracked' if index % 2 == 0 else 'loose'}/d{index // 1000:03d}/f{index:07d}.txt"
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content {content:012d}\n")
        if duplicated:
            groups.setdefault(block, []).append(relative)
    return sorted(sorted(paths) for paths in groups.values() if len(paths) > 1)


def dvc_repository(root: Path) -> None:
    """git and DVC initialised in root."""
    subprocess.run(["git", "init", "--quiet", str(root)], check=True)
    subprocess.run([local_dvc(), "init", "--quiet"], cwd=root, check=True, env=os.environ | {"DVC_NO_ANALYTICS": "1"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--half-known", action="store_true", help="dvc add only the tracked half")
    args = parser.parse_args()
    added_dirs = ["tracked"] if args.half_known else ["tracked", "loose"]
    with tempfile.TemporaryDirectory(prefix="provision-duplicates-") as directory:
        root = Path(directory)
        dvc_repository(root)
        expected = make_tree(root, args.files)
        start = time.perf_counter()
        subprocess.run([local_dvc(), "add", "--quiet", *added_dirs], cwd=root, check=True,
                       env=os.environ | {"DVC_NO_ANALYTICS": "1"})
        added = time.perf_counter() - start
        start = time.perf_counter()
        report = find_duplicates(str(root))
        elapsed = time.perf_counter() - start
        found = sorted(group.files for group in report.groups)
        print(f"{args.files} files: dvc add of {' and '.join(added_dirs)} {added:.1f} s; duplicates {elapsed:.1f} s "
              f"({report.hashes_from_dvc} hashes from DVC, {report.hashed} files read), "
              f"{len(report.groups)} groups, {report.wasted} bytes wasted, groups exact: {found == expected}")


if __name__ == "__main__":
    main()
