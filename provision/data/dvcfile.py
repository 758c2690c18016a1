"""What a `.dvc` file says about its outputs: path, hash, size and file count, without reading data."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

import yaml

from provision.errors import ProvisionError

#: The suffix DVC gives a directory's hash: the object is the directory's listing (the `.dir` object).
DIR_SUFFIX = ".dir"


@dataclass(frozen=True)
class Output:
    """One output of a `.dvc` file; `path` is relative to the repository's top."""

    path: str
    md5: str
    size: int
    files: int

    @property
    def is_dir(self) -> bool:
        return self.md5.endswith(DIR_SUFFIX)

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "md5": self.md5, "files": self.files, "bytes": self.size}


def outputs(dvcfile: str, text: str) -> list[Output]:
    """The outputs of the `.dvc` file at `dvcfile` (repository-relative) with content `text`."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ProvisionError(f"{dvcfile}: not a .dvc file ({error.__class__.__name__})") from None
    base = posixpath.dirname(dvcfile)
    found = []
    for out in document.get("outs") or []:
        path = posixpath.normpath(posixpath.join(base, str(out.get("path", ""))))
        md5 = str(out.get("md5", ""))
        found.append(Output(path, md5, int(out.get("size") or 0),
                            int(out.get("nfiles") or (0 if md5.endswith(DIR_SUFFIX) else 1))))
    return found


def all_outputs(dvcfiles: dict[str, str]) -> list[Output]:
    """The outputs of several `.dvc` files ({path: content}), in path order."""
    return [out for name in sorted(dvcfiles) for out in outputs(name, dvcfiles[name])]
