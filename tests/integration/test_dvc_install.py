"""The real install path: a host without dvc gets it from pip into dvc_venv, linked onto PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.clirunner import provision_json

pytestmark = pytest.mark.integration


def test_bootstrap_installs_dvc_where_missing(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["storage"], share_dvc=False)
    assert lab.exec("storage", ["test", "-e", "/opt/provision/dvc/bin/dvc"]).returncode == 1
    status, document = provision_json("bootstrap", "-i", str(lab.inventory_path), home=tmp_path)
    assert status == 0, document
    dvc_task = next(t for t in document["hosts"]["storage"]["tasks"] if t["name"] == "dvc")
    assert dvc_task["changed"] and "install" in dvc_task["msg"]
    version = lab.exec("storage", ["su", "-s", "/bin/sh", "git", "-c", "dvc --version"])
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("3.")
    assert lab.exec("storage", ["readlink", "/usr/local/bin/dvc"]).stdout.strip() == "/opt/provision/dvc/bin/dvc"
    status, document = provision_json("bootstrap", "-i", str(lab.inventory_path), home=tmp_path)
    assert status == 0
    assert not any(t["changed"] for t in document["hosts"]["storage"]["tasks"])
