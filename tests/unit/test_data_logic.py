"""The decisions of `provision data` made from what the scripts read back: refusals and reports."""

from __future__ import annotations

import base64

import pytest

from provision.data.checkout import file_changes, local_changes
from provision.data.dvcfile import all_outputs, outputs
from provision.data.release import ReleaseFacts, refusal
from provision.data.versions import parse_versions
from provision.errors import ProvisionError

DIR_DVCFILE = """outs:
- md5: 0123456789abcdef0123456789abcdef.dir
  size: 25011
  nfiles: 3
  hash: md5
  path: images
"""
FILE_DVCFILE = """outs:
- md5: fedcba9876543210fedcba9876543210
  size: 7
  hash: md5
  path: model.pt
"""


def facts(*lines: str) -> ReleaseFacts:
    return ReleaseFacts.parse("".join(f"{line}\n" for line in lines))


def test_release_goes_ahead_when_only_its_own_files_changed() -> None:
    found = facts("branch main", "status  M data.dvc", "status  M .gitignore", "exists data")
    assert refusal(found, "v2", ["data"]) is None
    nested = facts("branch main", "status M  models/.gitignore", "status A  models/net.dvc", "exists models/net")
    assert refusal(nested, "m1", ["models/net"]) is None


@pytest.mark.parametrize(("lines", "reason"), [
    (("tag_local abc", "branch main", "exists data"), "tag v2 already exists here"),
    (("tag_remote abc", "branch main", "exists data"), "tag v2 already exists in origin"),
    (("branch ", "exists data"), "HEAD is detached"),
    (("branch main",), "nothing at data"),
    (("branch main", "exists data", "status  M train.py", "status  M data.dvc"), "outside this release: train.py"),
    (("branch main", "exists data", 'status R  old.txt -> "new name.txt"'), "outside this release"),
])
def test_release_refusals_name_the_reason(lines: tuple[str, ...], reason: str) -> None:
    assert reason in (refusal(facts(*lines), "v2", ["data"]) or "")


def test_checkout_refuses_for_modified_and_added_files_not_directories_or_deletions() -> None:
    status = {"uncommitted": {"modified": ["data/", "data/a.txt"], "added": ["data/new.txt"],
                              "deleted": ["data/gone.txt"]}}
    assert local_changes(status) == ["data/a.txt", "data/new.txt"]
    assert local_changes({}) == []


def test_checkout_report_keeps_files_of_the_versions_outputs_only() -> None:
    diff = {"added": [{"path": "data/"}, {"path": "data/new.bin"}, {"path": "model_output/model.pt"}],
            "deleted": [{"path": "data/old.bin"}], "modified": [{"path": "data/hello.txt"}, {"path": "database"}]}
    assert file_changes(diff, ["data"]) == (["data/new.bin"], ["data/old.bin"], ["data/hello.txt"])


def test_dvcfile_outputs_resolve_paths_counts_and_sizes() -> None:
    (images,) = outputs("sets/images.dvc", DIR_DVCFILE)
    assert (images.path, images.files, images.size, images.is_dir) == ("sets/images", 3, 25011, True)
    (model,) = outputs("model.pt.dvc", FILE_DVCFILE)
    assert (model.path, model.files, model.is_dir) == ("model.pt", 1, False)
    assert [out.path for out in all_outputs({"z.dvc": FILE_DVCFILE, "a.dvc": DIR_DVCFILE})] == ["images", "model.pt"]
    with pytest.raises(ProvisionError, match=r"bad\.dvc"):
        outputs("bad.dvc", "outs: [")


def test_versions_parse_tags_with_their_dvcfiles() -> None:
    def encoded(text: str) -> str:
        return base64.b64encode(text.encode()).decode()
    message = "first\n\nbody\n"
    output = (f"tag v1.0 aaa 2026-01-01T00:00:00+00:00 {encoded(message)}\n"
              f"dvcfile data.dvc {encoded(DIR_DVCFILE)}\n"
              f"tag v1.1 bbb 2026-02-01T00:00:00+00:00 {encoded('')}\n"
              f"dvcfile data.dvc {encoded(DIR_DVCFILE)}\n"
              f"dvcfile model.pt.dvc {encoded(FILE_DVCFILE)}\n")
    first, second = parse_versions(output)
    assert (first.tag, first.commit, first.message, len(first.outputs)) == ("v1.0", "aaa", message, 1)
    assert [out.path for out in second.outputs] == ["images", "model.pt"]
    assert second.to_json()["datasets"][1] == {"path": "model.pt", "md5": "fedcba9876543210fedcba9876543210",
                                               "files": 1, "bytes": 7}
    assert first.lines()[0].endswith("first")
