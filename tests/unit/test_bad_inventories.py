"""The corpus of bad inventories in tests/bad_inventories: each is refused before any host is contacted.

A case is `NAME.yml`, or a directory `NAME/` holding `site.yml` with its group_vars/host_vars. Its
header names the command to run and the message fragment (file:line: key: why) it must be refused with:

    # command: onboard
    # expect: site.yml:7: project: 'demo; rm -rf /' contains ';'

Every host of a case points at a TCP listener on 127.0.0.1 (the token LISTENER_PORT): the command must
exit 1 with one error line holding the fragment, and the listener must see no connection at all. A
control inventory of the same shape, without the fault, does reach the listener.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.helpers import Listener, run_cli

CORPUS = Path(__file__).resolve().parents[1] / "bad_inventories"
CASES = sorted(path for path in CORPUS.iterdir() if path.suffix == ".yml" or (path / "site.yml").is_file())
_HEADER = re.compile(rb"^# (command|expect): (.*)$", re.MULTILINE)
CONTROL = b"""all:
  vars:
    project: demo
  children:
    storage:
      hosts:
        nas: {ansible_host: 127.0.0.1, ansible_port: LISTENER_PORT}
    clients:
      hosts:
        ws1: {ansible_host: 127.0.0.1, ansible_port: LISTENER_PORT}
"""


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def install_case(case: Path, directory: Path, port: int) -> tuple[Path, str, str]:
    """The case copied into `directory` with the listener's port: (inventory path, command, fragment)."""
    if case.is_dir():
        shutil.copytree(case, directory, dirs_exist_ok=True)
    else:
        shutil.copy(case, directory / "site.yml")
    inventory = directory / "site.yml"
    content = inventory.read_bytes()
    inventory.write_bytes(content.replace(b"LISTENER_PORT", str(port).encode()))
    header = {key.decode(): value.decode("utf-8") for key, value in _HEADER.findall(content)}
    return inventory, header["command"], header["expect"]


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.stem)
def test_a_bad_inventory_is_refused_before_any_host_is_contacted(case: Path, tmp_path: Path,
                                                                   listener: Listener) -> None:
    inventory, command, expected = install_case(case, tmp_path, listener.port)
    before = listener.accepted
    status, stderr = run_cli(command, "-i", str(inventory), "--timeout", "2")
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert status == 1, stderr
    assert len(errors) == 1 and expected in errors[0], stderr
    assert listener.accepted == before, "a host was contacted"


def test_the_control_inventory_does_reach_the_listener(tmp_path: Path, listener: Listener) -> None:
    """Without a fault the same shape of inventory gets as far as connecting: the corpus's check can fail."""
    inventory = tmp_path / "site.yml"
    inventory.write_bytes(CONTROL.replace(b"LISTENER_PORT", str(listener.port).encode()))
    before = listener.accepted
    status, _ = run_cli("bootstrap", "-i", str(inventory), "--timeout", "1")
    assert status == 4
    assert listener.accepted > before
