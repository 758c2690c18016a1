"""`provision audit hosts` and `audit repo` on a lab that bootstrap and onboard set up, then broken on purpose.

A freshly onboarded lab has nothing to find; after planting a rogue key line, a stale client marker,
a 0644 config.local and a group-writable repository, each is found exactly once, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provision.inventory import Settings, load_inventory
from provision.lab import Lab
from provision.tasks.authorized_keys import SFTP, key_line
from tests.integration.clirunner import provision, provision_json
from tests.integration.helpers import WORKDIR, bootstrap_with_dataset, failures, own_lab, run

pytestmark = pytest.mark.integration

ROGUE_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8UoQD7CQXPa6WZQKq7xJn03aThFlp/MY/unOaKFawL admin@laptop"
STALE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMd1RpfT6mkg3Zxcv3SXptQ0rkuTaNhk7cH8WDqv3Ddh"


@dataclass
class AuditedLab:
    lab: Lab
    home: Path
    settings: Settings
    fresh: tuple[int, dict[str, Any]]
    planted: tuple[int, dict[str, Any]]


def audit_hosts(lab: Lab, home: Path) -> tuple[int, dict[str, Any]]:
    return provision_json("audit", "hosts", "-i", str(lab.inventory_path), home=home)


def found(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(f["host"], f["rule"], f["file"]) for f in document["findings"]}


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditedLab]:
    with own_lab(tmp_path_factory, "audit", ["storage", "ws1", "ws2"]) as (lab, home):
        bootstrap_with_dataset(lab, home)
        done = provision("onboard", "-i", str(lab.inventory_path), home=home)
        assert done.returncode == 0, done.stdout + done.stderr
        settings = load_inventory(lab.inventory_path).storage.settings
        fresh = audit_hosts(lab, home)
        keys = f"/home/{settings.storage_user}/.ssh/authorized_keys"
        stale = key_line(SFTP, STALE_KEY, f"provision:{settings.inventory_name}:ws9")
        run(lab, "storage", ["sh", "-c", 'printf "%s\\n%s\\n" "$2" "$3" >> "$1"', "sh", keys, ROGUE_LINE, stale])
        run(lab, "storage", ["chmod", "-R", "g+rwX", settings.git_remote])
        run(lab, "ws1", ["chmod", "0644", f"{WORKDIR}/.dvc/config.local"])
        yield AuditedLab(lab, home, settings, fresh, audit_hosts(lab, home))


def test_a_freshly_onboarded_lab_has_nothing_to_find(audited: AuditedLab) -> None:
    status, document = audited.fresh
    assert found(document) == set(), document["findings"]
    assert status == 0, failures(document)
    assert {t["name"] for t in document["hosts"]["storage"]["tasks"]} == {
        "audit authorized_keys of dvc", "audit authorized_keys of git", "audit storage"}


def test_each_planted_problem_is_found_once_and_nothing_else(audited: AuditedLab) -> None:
    status, document = audited.planted
    settings = audited.settings
    keys = f"/home/{settings.storage_user}/.ssh/authorized_keys"
    assert status == 8, failures(document)
    assert sorted(found(document)) == sorted({
        ("storage", "key-line-unmarked", keys),
        ("storage", "key-line-stale", keys),
        ("storage", "repository-writable", settings.git_remote),
        ("ws1", "config-local", f"{WORKDIR}/.dvc/config.local"),
    })
    assert len(document["findings"]) == 4
    by_rule = {f["rule"]: f for f in document["findings"]}
    assert "ws9" in by_rule["key-line-stale"]["message"] and "offboard ws9" in by_rule["key-line-stale"]["fix"]
    assert by_rule["config-local"]["fix"] == "`provision onboard ws1`"
    assert by_rule["key-line-unmarked"]["line"] != by_rule["key-line-stale"]["line"]


def test_checkouts_that_onboard_made_have_no_findings_in_tree_or_history(audited: AuditedLab) -> None:
    checkout = audited.lab.host_path("ws2", WORKDIR)
    done = provision("audit", "repo", str(checkout), "--history", home=audited.home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "no findings"
