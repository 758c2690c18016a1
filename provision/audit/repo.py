"""Feeding the rules from git: the work tree, the staged index, or every commit reachable from any ref.

History is streamed: one `git log -p` over every ref and stash (oldest first, merges diffed against
their first parent, so a stash's work-tree changes count) gives the lines each commit added; DVC
configs, which need their whole file to be understood, come from one `git cat-file --batch` at the
commits that touched them. Each distinct secret is reported once, at the first commit that has it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from provision.audit.findings import Finding
from provision.audit.rules import BASELINE, Hit, Rules, is_dvc_config, rules_for
from provision.errors import InputError, ProvisionError

#: Files larger than this are data, not configuration: skipped.
MAX_FILE_BYTES = 2 * 1024 * 1024
_COMMIT_MARK = b"\x01commit "
_LOG_FORMAT = "--format=%x01commit %H"


def git_output(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise ProvisionError(f"git {args[0]} in {root} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode("utf-8", errors="replace")


def repository_root(path: Path) -> Path:
    """The top of the work tree holding `path`, or InputError."""
    if not path.is_dir():
        raise InputError(f"{path} is not a directory")
    done = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise InputError(f"{path} is not inside a git work tree")
    return Path(done.stdout.strip())


def _text(data: bytes) -> str | None:
    """Text of a file, or None for binary and oversized files."""
    if len(data) > MAX_FILE_BYTES or b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


@dataclass
class Collector:
    """Hits in order, each distinct secret once (per rule; per file too unless `across_files`)."""

    across_files: bool = False
    hits: list[Hit] = field(default_factory=list)
    _seen: set[tuple[str, ...]] = field(default_factory=set)

    def _key(self, hit: Hit) -> tuple[str, ...]:
        finding = hit.finding
        return (finding.rule, hit.secret) if self.across_files else (finding.rule, finding.path, hit.secret)

    def add(self, hits: Iterable[Hit], commit: str | None = None) -> None:
        for hit in hits:
            key = self._key(hit)
            if key not in self._seen:
                self._seen.add(key)
                self.hits.append(Hit(hit.finding.at_commit(commit), hit.secret) if commit else hit)

    def has(self, hit: Hit) -> bool:
        return self._key(hit) in self._seen

    @property
    def findings(self) -> list[Finding]:
        return [hit.finding for hit in self.hits]


def scan_worktree(root: Path, rules: Rules) -> Collector:
    """Tracked files and untracked ones git would not ignore, as they are on disk."""
    collector = Collector()
    names = git_output(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in sorted(set(filter(None, names))):
        path = root / name
        if path.is_symlink() or not path.is_file():
            continue
        text = _text(path.read_bytes())
        if text is not None:
            collector.add(rules.scan_text(name, text))
    return collector


class BlobReader:
    """One `git cat-file --batch` for many objects (`rev:path` or `:path` for the index)."""

    def __init__(self, root: Path) -> None:
        self._process = subprocess.Popen(["git", "-C", str(root), "cat-file", "--batch"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE)

    def read(self, name: str) -> bytes | None:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(name.encode() + b"\n")
        self._process.stdin.flush()
        header = self._process.stdout.readline().split()
        if len(header) != 3 or header[1] != b"blob":
            return None
        data = self._process.stdout.read(int(header[2]))
        self._process.stdout.read(1)
        return data

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scan_staged(root: Path, rules: Rules) -> Collector:
    """Files added or changed in the index, as staged (what `git commit` is about to record)."""
    collector = Collector()
    names = git_output(root, "diff", "--cached", "--name-only", "-z", "--diff-filter=ACMR", "--no-renames").split("\0")
    with BlobReader(root) as blobs:
        for name in sorted(set(filter(None, names))):
            data = blobs.read(f":{name}")
            text = _text(data) if data is not None else None
            if text is not None:
                collector.add(rules.scan_text(name, text))
    return collector


@dataclass
class FileChange:
    """What one commit did to one file: its path and the lines it added (number, text)."""

    commit: str
    path: str
    added: list[tuple[int, str]] = field(default_factory=list)


def _diff_path(line: bytes) -> str:
    """The path of a `+++ b/PATH` or `diff --git a/X b/PATH` line."""
    text = line.decode("utf-8", errors="replace").rstrip("\n")
    text = text.removeprefix("+++ ") if text.startswith("+++ ") else text[text.rfind(" b/") + 1 :]
    if text.startswith('"'):
        text = text[1:-1].encode("latin-1", errors="replace").decode("unicode_escape").encode("latin-1").decode(
            "utf-8", errors="replace")
    return text[2:] if text.startswith("b/") else text


def parse_log(stream: Iterable[bytes]) -> Iterator[FileChange]:
    """FileChanges from `git log -p -U0` output, in its order."""
    change: FileChange | None = None
    commit = ""
    number = 0
    for raw in stream:
        if raw.startswith(_COMMIT_MARK):
            if change is not None:
                yield change
            change, commit = None, raw[len(_COMMIT_MARK):].decode().strip()
        elif raw.startswith(b"diff --git "):
            if change is not None:
                yield change
            change = FileChange(commit, _diff_path(raw))
        elif change is None:
            continue
        elif raw.startswith(b"+++ "):
            if raw.startswith(b"+++ /dev/null"):
                change = None
            else:
                change.path = _diff_path(raw)
        elif raw.startswith(b"@@ "):
            target = raw.split(b" ")[2]  # +start[,count]
            number = int(target[1:].split(b",")[0])
        elif raw.startswith(b"+"):
            change.added.append((number, raw[1:].decode("utf-8", errors="replace").rstrip("\r\n")))
            number += 1
    if change is not None:
        yield change


def _stashes(root: Path) -> list[str]:
    """Every stash entry (only the newest is a ref; the others live in its reflog)."""
    done = subprocess.run(["git", "-C", str(root), "rev-list", "--walk-reflogs", "refs/stash", "--"],
                          capture_output=True, text=True, check=False)
    return done.stdout.split() if done.returncode == 0 else []


def scan_history(root: Path, rules: Rules, progress: Callable[[int], None] | None = None) -> Collector:
    """Every commit reachable from any ref or stash, oldest first; each distinct secret once, where it began."""
    collector = Collector(across_files=True)
    argv = ["git", "-C", str(root), "-c", "core.quotePath=false", "log", "--all", "--stdin", "--reverse",
            "--topo-order", "--diff-merges=first-parent", "-p", "-U0", "--no-color", "--no-ext-diff", "--no-textconv",
            "--no-renames", _LOG_FORMAT]
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    process.stdin.write("".join(f"{stash}\n" for stash in _stashes(root)).encode())
    process.stdin.close()
    commits: set[str] = set()
    with BlobReader(root) as blobs:
        for change in parse_log(process.stdout):
            if change.commit not in commits:
                commits.add(change.commit)
                if progress is not None:
                    progress(len(commits))
            if is_dvc_config(change.path):
                data = blobs.read(f"{change.commit}:{change.path}")
                text = _text(data) if data is not None else None
                collector.add(rules.scan_text(change.path, text or ""), change.commit)
            elif change.added:
                collector.add(rules.scan_lines(change.path, change.added), change.commit)
    error = process.stderr.read().decode(errors="replace").strip()
    if process.wait() != 0:
        raise ProvisionError(f"git log in {root} failed: {error}")
    return collector


def audit_repository(path: Path, *, history: bool = False, staged: bool = False,
                     update_baseline: bool = False) -> Collector:
    """The findings of `provision audit repo`, with the rules of the repository's own baseline.

    `update_baseline` records them in that baseline (for secrets already rotated: see the README's
    migration guide), so the next run accepts them.
    """
    root = repository_root(path)
    with rules_for(root) as rules:
        if staged:
            return scan_staged(root, rules)
        found = scan_worktree(root, rules)
        if history:
            past = scan_history(root, rules)
            past.hits += [hit for hit in found.hits if not past.has(hit)]  # not committed (yet)
            found = past
        if update_baseline:
            rules.record(root / BASELINE, found.hits)
        return found
