"""`data release`: publish paths as a version: dvc add, dvc push, commit, annotated tag, git push.

Refused before anything changes when the tag exists here or in origin, when files unrelated to the
release have uncommitted changes, or when the branch is detached. The apply script puts everything back
when the data push (or any later step) fails, so no tag ever names data missing from the remote.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from provision.data.dvcfile import Output, all_outputs
from provision.data.runner import Checkout, Runner, run_data_script
from provision.errors import ProvisionError
from provision.facts import KeyValues

_PUSHED = re.compile(r"(\d+) files? pushed")


@dataclass(frozen=True)
class ReleaseFacts:
    """The checkout as release_probe.sh saw it."""

    tag_local: str = ""
    tag_remote: str = ""
    branch: str = ""
    changes: tuple[str, ...] = ()
    existing: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, output: str) -> ReleaseFacts:
        values = KeyValues.parse(output)
        return cls(values.get("tag_local"), values.get("tag_remote"), values.get("branch"),
                   tuple(values.all("status")), frozenset(values.all("exists")))


def related_files(paths: list[str]) -> set[str]:
    """What a release of `paths` itself changes: the paths, their .dvc files and .gitignore beside them."""
    related = set()
    for path in paths:
        folder = posixpath.dirname(path)
        related |= {path, f"{path}.dvc", posixpath.join(folder, ".gitignore")}
    return related


def refusal(facts: ReleaseFacts, tag: str, paths: list[str]) -> str | None:
    """Why this release must not start, or None."""
    if facts.tag_local or facts.tag_remote:
        where = " and ".join(w for w, sha in (("here", facts.tag_local), ("in origin", facts.tag_remote)) if sha)
        return f"tag {tag} already exists {where}: choose another version"
    if not facts.branch:
        return "HEAD is detached: check out the branch to release on (git switch main)"
    missing = [path for path in paths if path not in facts.existing]
    if missing:
        return f"nothing at {', '.join(missing)}"
    related = related_files(paths)
    unrelated = [line[3:] for line in facts.changes if line[3:].split(" -> ")[-1].strip('"') not in related]
    if unrelated:
        return f"uncommitted changes in files outside this release: {', '.join(unrelated)}; commit or stash them"
    return None


@dataclass
class ReleaseReport:
    """What a release published (or, under --check, would publish)."""

    tag: str
    paths: list[str]
    check: bool = False
    commit: str = ""
    outputs: list[Output] = field(default_factory=list)
    objects_pushed: int = 0

    def to_json(self) -> dict[str, object]:
        return {"tag": self.tag, "paths": self.paths, "check": self.check, "commit": self.commit,
                "outputs": [out.to_json() for out in self.outputs],
                "files": sum(out.files for out in self.outputs), "bytes": sum(out.size for out in self.outputs),
                "objects_pushed": self.objects_pushed}

    def lines(self) -> list[str]:
        if self.check:
            return [f"would release {self.tag}: dvc add {' '.join(self.paths)}, dvc push, commit, tag, git push"]
        lines = [f"released {self.tag} at {self.commit[:12]}: {self.objects_pushed} new objects pushed"]
        lines += [f"  {out.path}: {out.files} files, {out.size} bytes" for out in self.outputs]
        return lines


def release(runner: Runner, checkout: Checkout, tag: str, paths: list[str], message: str, *,
            check: bool = False) -> ReleaseReport:
    """Publish `paths` (relative to the checkout's top) as version `tag`."""
    facts = ReleaseFacts.parse(run_data_script(runner, checkout, "release_probe", tag, *paths,
                                               what="reading the checkout"))
    reason = refusal(facts, tag, paths)
    if reason:
        raise ProvisionError(f"{runner.label}: release {tag} refused, nothing changed: {reason}")
    if check:
        return ReleaseReport(tag, paths, check=True)
    name, email = checkout.identity
    output = run_data_script(runner, checkout, "release", tag, message, name, email, *paths,
                             what=f"release {tag} (nothing was tagged or committed)")
    released = KeyValues.parse(output)
    pushed = sum(int(match.group(1)) for value in released.all("push") if (match := _PUSHED.search(value)))
    return ReleaseReport(tag, paths, commit=released.get("commit"), outputs=all_outputs(released.files("dvcfile")),
                         objects_pushed=pushed)
