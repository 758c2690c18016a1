"""The command line as a user meets it: help with examples, completion, usage errors, packaging."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import click.testing
import pytest

from provision.cli.main import cli

REPO = Path(__file__).resolve().parents[2]


def all_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provision", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)


def test_a_command_imports_only_what_it_uses() -> None:
    """`onboard` on a fleet starts once per run: it must not load the audit's detect-secrets or kfp."""
    probe = ("import sys; from provision.cli.main import main; sys.argv = ['provision', 'onboard', '--help']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('detect_secrets', 'kfp', 'provision.cli.audit', 'provision.cli.data') "
             "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", all_commands(), ids=lambda c: " ".join(c) or "provision")
def test_every_command_has_summary_and_example(command: tuple[str, ...]) -> None:
    result = click.testing.CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output
    assert "provision " in result.output.split("Example:", 1)[1]


def test_python_dash_m_and_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and "provision" in done.stdout


def test_usage_errors_exit_1() -> None:
    assert run("no-such-command").returncode == 1
    assert run("ping", "--forks", "zero").returncode == 1
    assert run("ping", "--no-such-option").returncode == 1


def test_missing_inventory_is_one_line_exit_1(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROVISION_INVENTORY"}
    done = subprocess.run([sys.executable, "-m", "provision", "ping"], capture_output=True, text=True, env=env,
                          check=False)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "PROVISION_INVENTORY" in done.stderr
    done = run("ping", "-i", str(tmp_path / "nope.yml"))
    assert done.returncode == 1 and "nope.yml" in done.stderr and "Traceback" not in done.stderr


def test_shell_completion_script() -> None:
    done = run(env={"_PROVISION_COMPLETE": "bash_source"})
    assert done.returncode == 0
    assert "_PROVISION_COMPLETE=bash_complete" in done.stdout
    done = run(env={"_PROVISION_COMPLETE": "bash_complete", "COMP_WORDS": "provision host", "COMP_CWORD": "1"})
    assert "hostkeys" in done.stdout


def test_inventory_list_json_and_graph() -> None:
    example = str(REPO / "inventories" / "example.yml")
    done = run("inventory", "list", "-i", example, "--json")
    assert done.returncode == 0
    import json

    document = json.loads(done.stdout)
    assert "_meta" in document and "storage" in document
    graph = run("inventory", "graph", "-i", example)
    assert graph.returncode == 0 and graph.stdout.startswith("@all:")


def test_wheel_ships_templates(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    wheel = next(tmp_path.glob("provision-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "provision/templates/remote/install_file.sh" in names
    assert any(n.startswith("provision/templates/lab/") for n in names)


def test_inventory_list_json_honours_limit() -> None:
    import json

    example = str(REPO / "inventories" / "example.yml")
    everything = json.loads(run("inventory", "list", "-i", example, "--json").stdout)
    limited = json.loads(run("inventory", "list", "-i", example, "--json", "--limit", "storage").stdout)
    assert set(limited["_meta"]["hostvars"]) != set(everything["_meta"]["hostvars"])
    assert limited["_meta"]["hostvars"]
    assert set(limited["_meta"]["hostvars"]) <= set(everything["_meta"]["hostvars"])


def test_verbose_is_the_commands_own_option_not_any_v_on_the_line(tmp_path: Path) -> None:
    """`-v` of a play shows the traceback of an error; a `-v` meant for another program does not."""
    missing = str(tmp_path / "nope.yml")
    quiet = run("ping", "-i", missing)
    verbose = run("ping", "-v", "-i", missing)
    assert quiet.returncode == verbose.returncode == 1
    assert "Traceback" not in quiet.stderr and "Traceback" in verbose.stderr
    elsewhere = run("lab", "exec", "--dir", str(tmp_path / "no-lab"), "ws1", "--", "ls", "-v")
    assert elsewhere.returncode != 0 and "Traceback" not in elsewhere.stderr
