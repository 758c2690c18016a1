"""`data fetch`: a version's objects into the cache only, so a later `data checkout` has nothing to download.

The work tree is not touched (the fetch runs in a temporary git worktree at the tag that shares this
checkout's cache). The report tells bytes copied into the cache from bytes that were there already:
with `shared_cache` the cache is the mounted export, so those are linked by checkout, never copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from provision.data.dvcfile import Output, all_outputs
from provision.data.runner import Checkout, Runner, run_data_script
from provision.facts import KeyValues


@dataclass
class FetchReport:
    """What a fetch put into the cache."""

    tag: str
    commit: str = ""
    check: bool = False
    outputs: list[Output] = field(default_factory=list)
    objects_copied: int = 0
    bytes_copied: int = 0

    @property
    def bytes_total(self) -> int:
        return sum(out.size for out in self.outputs)

    @property
    def bytes_present(self) -> int:
        """The version's bytes that were in the cache already (linked, not copied, by checkout)."""
        return max(0, self.bytes_total - self.bytes_copied)

    def to_json(self) -> dict[str, object]:
        return {"tag": self.tag, "commit": self.commit, "check": self.check,
                "outputs": [out.to_json() for out in self.outputs], "bytes": self.bytes_total,
                "objects_copied": self.objects_copied, "bytes_copied": self.bytes_copied,
                "bytes_already_in_cache": self.bytes_present}

    def lines(self) -> list[str]:
        if self.check:
            return [f"would fetch {self.tag} into the cache (work tree untouched)"]
        return [f"fetched {self.tag} ({self.commit[:12]}) into the cache, work tree untouched: "
                f"{self.objects_copied} objects, {self.bytes_copied} bytes copied; "
                f"{self.bytes_present} of {self.bytes_total} bytes already in the cache (linked, not copied)"]


def fetch(runner: Runner, checkout: Checkout, tag: str, *, jobs: int = 4, check: bool = False) -> FetchReport:
    """Fetch version `tag`'s objects into the cache."""
    if check:
        return FetchReport(tag, check=True)
    fetched = KeyValues.parse(run_data_script(runner, checkout, "fetch", tag, str(jobs), what=f"fetch {tag}"))
    copied = [int(value) for value in fetched.all("copied")]
    return FetchReport(tag, fetched.get("target"), outputs=all_outputs(fetched.files("dvcfile")),
                       objects_copied=len(copied), bytes_copied=sum(copied))
