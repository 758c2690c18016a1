"""`data versions`: every tag with its date, message and datasets, read from git alone (no data)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from provision.data.dvcfile import Output, all_outputs
from provision.data.runner import Checkout, Runner, run_data_script
from provision.facts import KeyValues, named_file


@dataclass(frozen=True)
class Version:
    """A tag and the outputs its commit's .dvc files record."""

    tag: str
    commit: str
    date: str
    message: str
    outputs: tuple[Output, ...]

    def to_json(self) -> dict[str, object]:
        return {"tag": self.tag, "commit": self.commit, "date": self.date, "message": self.message,
                "datasets": [out.to_json() for out in self.outputs]}

    def lines(self) -> list[str]:
        summary = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return [f"{self.tag}  {self.date}  {self.commit[:12]}  {summary}",
                *(f"  {out.path}: {out.files} files, {out.size} bytes" for out in self.outputs)]


def parse_versions(output: str) -> list[Version]:
    """versions.sh's lines: a `tag` line, then that tag's `dvcfile` lines."""
    versions: list[Version] = []
    current: tuple[str, str, str, str] | None = None
    files: dict[str, str] = {}

    def close() -> None:
        if current is not None:
            versions.append(Version(*current, tuple(all_outputs(files))))

    for key, value in KeyValues.parse(output):
        if key == "tag":
            close()
            tag, commit, date, message = [*value.split(" "), "", "", ""][:4]
            current, files = (tag, commit, date, base64.b64decode(message).decode()), {}
        elif key == "dvcfile":
            name, text = named_file(value)
            files[name] = text
    close()
    return versions


def versions(runner: Runner, checkout: Checkout) -> list[Version]:
    """The checkout's versions (tags fetched from origin first), oldest first."""
    return parse_versions(run_data_script(runner, checkout, "versions", what="listing versions"))
