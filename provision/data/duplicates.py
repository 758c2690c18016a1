"""`data duplicates`: files with identical content and the bytes they waste, now and across versions.

Hashes come from DVC wherever it has them: its hash cache (the state database, valid while a file's
inode, mtime and size are unchanged) for the work tree, and `.dir` objects for versions. Only files DVC
has not seen are read, and only when another file has the same size (size first, then DVC's MD5).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from provision.data.dvcfile import Output
from provision.data.versions import Version
from provision.errors import ProvisionError

#: Directories never scanned: git's objects and DVC's own cache and state.
SKIPPED_DIRS = frozenset({".git", ".dvc"})
#: The hash name DVC 3 gives plain MD5 of a file's bytes.
DVC_MD5 = "md5"


@dataclass
class DuplicateGroup:
    """Files with the same content."""

    md5: str
    size: int
    files: list[str]

    @property
    def wasted(self) -> int:
        return self.size * (len(self.files) - 1)

    def to_json(self) -> dict[str, object]:
        return {"md5": self.md5, "size": self.size, "files": self.files, "wasted_bytes": self.wasted}


@dataclass
class VersionObjects:
    """What a version stores, and how much of it an earlier listed version already had."""

    tag: str
    files: int = 0
    objects: int = 0
    bytes: int = 0
    new_objects: int = 0
    new_bytes: int = 0
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"tag": self.tag, "files": self.files, "objects": self.objects, "bytes": self.bytes,
                "new_objects": self.new_objects, "new_bytes": self.new_bytes,
                "reused_objects": self.objects - self.new_objects, "reused_bytes": self.bytes - self.new_bytes,
                "listings_not_in_cache": self.missing}


@dataclass
class DuplicatesReport:
    """Duplicate groups under a path, how their hashes were found, and per-version reuse."""

    path: str
    files: int = 0
    hashes_from_dvc: int = 0
    hashed: int = 0
    groups: list[DuplicateGroup] = field(default_factory=list)
    versions: list[VersionObjects] = field(default_factory=list)

    @property
    def wasted(self) -> int:
        return sum(group.wasted for group in self.groups)

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "files": self.files, "hashes_from_dvc": self.hashes_from_dvc,
                "hashed": self.hashed, "wasted_bytes": self.wasted,
                "groups": [group.to_json() for group in self.groups],
                "versions": [version.to_json() for version in self.versions]}

    def lines(self) -> list[str]:
        lines = [f"{self.path}: {self.files} files, {len(self.groups)} groups of duplicates wasting {self.wasted} "
                 f"bytes ({self.hashes_from_dvc} hashes from DVC, {self.hashed} files read)"]
        for group in self.groups:
            lines.append(f"  {group.size} bytes x {len(group.files)} ({group.md5}):")
            lines += [f"    {path}" for path in group.files]
        for version in self.versions:
            lines.append(f"{version.tag}: {version.files} files, {version.objects} distinct objects, "
                         f"{version.new_objects} new ({version.new_bytes} bytes), "
                         f"{version.objects - version.new_objects} reused ({version.bytes - version.new_bytes} bytes)"
                         + (f"; listing not in the cache: {', '.join(version.missing)}" if version.missing else ""))
        return lines


def walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every regular file under `root` (links followed, as DVC's checkout makes them) with its stat."""
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in SKIPPED_DIRS:
                        stack.append(entry.path)
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:  # a dangling link: no content to compare
                    continue
                if entry.is_file():
                    yield entry.path, stat


@contextmanager
def dvc_repo(path: Path) -> Iterator[object | None]:
    """The DVC repository holding `path`, or None outside one."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        repo = Repo(Repo.find_root(str(path)))
    except NotDvcRepoError:
        yield None
        return
    try:
        yield repo
    finally:
        repo.close()


def known_hashes(repo: object | None, paths: list[str]) -> dict[str, str]:
    """MD5s DVC's state database holds for `paths` and that still match the files."""
    if repo is None or not paths:
        return {}
    found = {}
    for path, _meta, hash_info in repo.state.get_many(paths, repo.fs, {}):  # type: ignore[attr-defined]
        if hash_info is not None and hash_info.name == DVC_MD5 and hash_info.value:
            found[path] = hash_info.value
    return found


def find_duplicates(path: str) -> DuplicatesReport:
    """Groups of identical files under `path`."""
    from dvc_data.hashfile.hash import file_md5

    root = Path(path).resolve()
    if not root.is_dir():
        raise ProvisionError(f"{path}: no such directory")
    by_size: dict[int, list[str]] = defaultdict(list)
    count = 0
    for file, stat in walk(root):
        count += 1
        if stat.st_size:
            by_size[stat.st_size].append(file)
    candidates = [file for files in by_size.values() if len(files) > 1 for file in files]
    with dvc_repo(root) as repo:
        hashes = known_hashes(repo, candidates)
    from_dvc = len(hashes)
    for file in candidates:
        if file not in hashes:
            hashes[file] = file_md5(file)
    groups: dict[tuple[str, int], list[str]] = defaultdict(list)
    for size, files in by_size.items():
        if len(files) > 1:
            for file in files:
                groups[(hashes[file], size)].append(os.path.relpath(file, root))
    found = [DuplicateGroup(md5, size, sorted(files)) for (md5, size), files in groups.items() if len(files) > 1]
    found.sort(key=lambda group: (-group.wasted, group.files[0]))
    return DuplicatesReport(str(root), count, from_dvc, len(candidates) - from_dvc, found)


def version_objects(repo: object, listed: list[Version]) -> list[VersionObjects]:
    """Each version's distinct objects (from its .dvc files and `.dir` listings in the cache), new or reused."""
    odb = repo.cache.local  # type: ignore[attr-defined]
    seen: set[str] = set()
    results = []
    for version in listed:
        result = VersionObjects(version.tag)
        objects: dict[str, int] = {}
        for out in version.outputs:
            result.files += out.files
            objects.update(_entries(odb, out, result))
        result.objects, result.bytes = len(objects), sum(objects.values())
        new = {md5: size for md5, size in objects.items() if md5 not in seen}
        result.new_objects, result.new_bytes = len(new), sum(new.values())
        seen |= objects.keys()
        results.append(result)
    return results


def _entries(odb: object, out: Output, result: VersionObjects) -> dict[str, int]:
    """{md5: size} of an output's files: its `.dir` listing read from the cache, or the file itself."""
    if not out.is_dir:
        return {out.md5: out.size}
    listing = Path(odb.oid_to_path(out.md5))  # type: ignore[attr-defined]
    if not listing.exists():
        result.missing.append(out.path)
        return {}
    entries = {}
    for entry in json.loads(listing.read_text()):
        cached = Path(odb.oid_to_path(entry["md5"]))  # type: ignore[attr-defined]
        entries[entry["md5"]] = cached.stat().st_size if cached.exists() else 0
    return entries


def compare_versions(path: str, listed: list[Version]) -> list[VersionObjects]:
    """version_objects for the DVC repository holding `path`."""
    with dvc_repo(Path(path).resolve()) as repo:
        if repo is None:
            raise ProvisionError(f"{path}: not inside a DVC repository, so it has no versions")
        return version_objects(repo, listed)
