"""`data checkout`: switch the work tree's data to a version (its .dvc files, then `dvc pull`).

Local changes to tracked data are never overwritten silently: DVC's own view of them (`dvc data status
--granular`) is read first and the files are named in the refusal, unless --force.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from provision.data.dvcfile import all_outputs
from provision.data.runner import Checkout, Runner, run_data_script
from provision.errors import ProvisionError
from provision.facts import KeyValues


def _json(value: str, what: str) -> dict:
    try:
        return json.loads(value or "{}")
    except json.JSONDecodeError:
        raise ProvisionError(f"{what}: dvc printed no JSON") from None


def local_changes(status: dict) -> list[str]:
    """Tracked files whose work-tree content differs from what DVC recorded (a checkout would replace)."""
    uncommitted = status.get("uncommitted", {})
    paths = {*uncommitted.get("modified", []), *uncommitted.get("added", [])}
    return sorted(path for path in paths if not path.endswith("/"))


@dataclass
class CheckoutReport:
    """What a checkout changed in the work tree (or, under --check, would refuse or do)."""

    tag: str
    commit: str
    check: bool = False
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    bytes_written: int = 0

    def to_json(self) -> dict[str, object]:
        return {"tag": self.tag, "commit": self.commit, "check": self.check, "added": self.added,
                "removed": self.removed, "modified": self.modified, "bytes": self.bytes_written}

    def lines(self) -> list[str]:
        if self.check:
            return [f"would check out {self.tag} ({self.commit[:12]}): its .dvc files, then dvc pull"]
        return [f"checked out {self.tag} ({self.commit[:12]}): {len(self.added)} added, {len(self.removed)} removed, "
                f"{len(self.modified)} modified, {self.bytes_written} bytes written",
                *(f"  {mark} {path}" for mark, paths in (("A", self.added), ("D", self.removed),
                                                         ("M", self.modified)) for path in paths)]


def file_changes(diff: dict, outputs: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Added, removed and modified files of `dvc diff --json` within `outputs` (the version's; outputs it
    does not track stay in the work tree as they are). Directory entries are left out."""
    def within(path: str) -> bool:
        return any(path == out or path.startswith(f"{out}/") for out in outputs)

    def files(kind: str) -> list[str]:
        return sorted(entry["path"] for entry in diff.get(kind, [])
                      if not entry["path"].endswith("/") and within(entry["path"]))
    return files("added"), files("deleted"), files("modified")


def checkout_version(runner: Runner, checkout: Checkout, tag: str, *, force: bool = False,
             check: bool = False) -> CheckoutReport:
    """Bring the work tree's data to version `tag`."""
    probed = KeyValues.parse(run_data_script(runner, checkout, "checkout_probe", tag, what=f"reading {tag}"))
    commit = probed.get("target")
    outputs = all_outputs(probed.files("dvcfile"))
    status = _json(probed.get("status"), "dvc data status")
    changed = local_changes(status)
    if changed and not force:
        raise ProvisionError(f"{runner.label}: checkout {tag} refused, nothing changed: locally modified tracked "
                             f"data would be overwritten: {', '.join(changed)} (commit it, or pass --force)")
    if check:
        return CheckoutReport(tag, commit, check=True)
    output = run_data_script(runner, checkout, "checkout", commit, "--force" if force else "",
                             *(out.path for out in outputs), what=f"checkout {tag}")
    applied = KeyValues.parse(output)
    diff = _json(applied.get("diff"), "dvc diff")
    added, removed, modified = file_changes(diff, [out.path for out in outputs])
    sizes = {}
    for value in applied.all("size"):
        size, _, path = value.partition(" ")
        sizes[path] = int(size)
    return CheckoutReport(tag, commit, added=added, removed=removed, modified=modified,
                          bytes_written=sum(sizes.get(path, 0) for path in (*added, *modified)))
