"""Lab fixtures: real OpenSSH hosts on 127.0.0.1 (see provision.lab). Without root or sshd they fail."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest

from provision.lab import Lab
from tests.integration.helpers import FAILED, require_lab, vault_settings

LAB_HOSTS = ("storage", "ws1", "ws2")

MakeLab = Callable[..., Lab]


def _down(lab: Lab) -> None:
    if lab.exists:
        lab.down()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One lab for the whole session: storage, ws1, ws2; this venv's dvc shared when possible."""
    require_lab()
    session_lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        yield session_lab.up(LAB_HOSTS)
    finally:
        _down(session_lab)


@pytest.fixture
def make_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeLab]:
    """A factory for a test's own lab (to stop, rekey or share /mnt/nfs); each is torn down after the test."""
    with ExitStack() as teardown:

        def make(hosts: Sequence[str] = ("storage", "ws1"), shared_nfs: bool = False, project: str = "demo",
                 share_dvc: bool | None = None) -> Lab:
            require_lab()
            own_lab = Lab(tmp_path_factory.mktemp("lab"))
            teardown.callback(_down, own_lab)
            return own_lab.up(list(hosts), shared_nfs=shared_nfs, project=project, share_dvc=share_dvc)

        yield make


@pytest.fixture()
def vault_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The vault as the secrets backend, for the test and the tool it runs."""
    env = vault_settings(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Mark a failed test (helpers.failed): a module's shared lab is then put back before the next test."""
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report
