"""bench/run at N=1, one repetition of each contender: the harness works and every end state is right.

Times are never asserted: they say nothing on a shared machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.endstate import end_state_problems
from bench.seed import make_dataset, seed_plan
from tests.integration.conftest import MakeLab
from tests.integration.helpers import require_lab

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[2]
CONTENDERS = {"provision", "ansible-core", "raw-ssh"}


def test_bench_run_at_one_client_measures_every_contender_and_checks_the_end_state(tmp_path: Path) -> None:
    require_lab()
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(REPOSITORY / "bench" / "run"), "--clients", "1", "--repetitions", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert {(run["contender"], run["phase"]) for run in runs} == {
        (contender, phase) for contender in CONTENDERS for phase in ("first", "rerun")}
    for run in runs:
        assert run["problems"] == [], run
        assert set(run["exit_statuses"].values()) == {0}, run
        assert run["peak_rss_mb"] > 0 and run["machine_cpu_seconds"] > 0
    first = {run["contender"]: run for run in runs if run["phase"] == "first"}
    # Every contender's client cloned and pulled with its own key: storage logged those logins.
    assert all(run["client_logins"] >= 2 and run["logins_by_client"].keys() == {"ws1"} for run in first.values())
    results = (out / "RESULTS.md").read_text()
    assert "## Ratios of median wall time" in results
    assert "| N | provision | ansible-core | raw-ssh |" in results
    assert "<svg" in (out / "wall_time.svg").read_text()


def test_end_state_check_finds_a_lab_where_nothing_was_done(make_lab: MakeLab, tmp_path: Path) -> None:
    lab = make_lab(("storage", "ws1"))
    problems = end_state_problems(lab, seed_plan(lab), make_dataset(tmp_path / "dataset"))
    assert any(problem.startswith("storage: no account dvc") for problem in problems), problems
    assert any(problem.startswith("ws1: no public key") for problem in problems), problems
    assert any("differs from the dataset (200 of 200" in problem for problem in problems), problems
