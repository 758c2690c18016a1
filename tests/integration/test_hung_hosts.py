"""Hung hosts: one that accepts TCP but never speaks SSH, one whose command hangs, one whose sshd (and every
process in it) stops in the middle of a clone. Each is reported after --timeout or when it goes away; the
other hosts finish; the exit status says which kind of trouble there was; a rerun converges.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from provision.lab import Lab
from tests.integration.clirunner import provision_json
from tests.integration.helpers import bootstrap_storage, failures, own_lab, run, when_file_appears
from tests.unit.helpers import Listener

pytestmark = pytest.mark.integration

#: A `git` early on PATH that never returns (for every use, or only for `git clone` after saying so).
HANGING_GIT = "#!/bin/sh\nexec sleep 3600\n"
CLONE_STARTED = "/tmp/clone-started"
HANGING_CLONE = f"""#!/bin/sh
if [ "$1" = clone ]; then touch {CLONE_STARTED}; exec sleep 3600; fi
exec /usr/bin/git "$@"
"""
FAKE_GIT = "/usr/local/bin/git"
#: How OpenSSH's client says a connection to storage failed: refused, cut in key exchange, lost afterwards.
OPENSSH_CAUSES = ("ssh: connect to host", "Connection closed by", "Connection reset by", "kex_exchange_identification",
                  "closed by remote host", "Read from remote host", "client_loop: ", "Timeout, server")
#: How dvc (asyncssh) says it.
DVC_CAUSES = ("Connection lost",)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path]]:
    """storage (bootstrapped), ws1 and ws2; each test leaves every host running with its real git."""
    with own_lab(tmp_path_factory, "hung", ["storage", "ws1", "ws2"]) as (lab, home):
        bootstrap_storage(lab, home)
        yield lab, home


@contextmanager
def fake_git(lab: Lab, host: str, script: str) -> Iterator[None]:
    """`script` as the host's git, ahead of the real one on PATH, until the block ends (the host started again)."""
    run(lab, host, ["sh", "-c", 'cat > "$1" && chmod 0755 "$1"', "sh", FAKE_GIT], input=script)
    try:
        yield
    finally:
        lab.start(host)
        run(lab, host, ["rm", "-f", FAKE_GIT, CLONE_STARTED])


def test_a_host_that_never_sends_a_banner_is_unreachable_after_the_timeout(lab: tuple[Lab, Path],
                                                                             tmp_path: Path) -> None:
    site, home = lab
    silent = Listener()
    try:
        data = yaml.safe_load(site.inventory_path.read_text())
        data["all"]["children"]["clients"]["hosts"]["ws2"]["ansible_port"] = silent.port
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(yaml.safe_dump(data))
        (tmp_path / "inventory.known_hosts").write_bytes(site.known_hosts_path.read_bytes())
        status, document = provision_json("ping", "-i", str(inventory), "--timeout", "3", home=home)
    finally:
        silent.close()
    assert silent.accepted >= 1
    assert status == 4
    assert document["hosts"]["ws2"]["status"] == "unreachable"
    assert "no SSH banner in time" in document["hosts"]["ws2"]["tasks"][0]["msg"]
    assert {document["hosts"][host]["status"] for host in ("storage", "ws1")} == {"ok"}


def test_a_command_that_hangs_fails_its_host_after_the_timeout(lab: tuple[Lab, Path]) -> None:
    site, home = lab
    with fake_git(site, "ws1", HANGING_GIT):
        status, document = provision_json("onboard", "-i", str(site.inventory_path), "--timeout", "5", home=home)
    assert status == 2, failures(document)
    assert document["hosts"]["ws1"]["status"] == "failed"
    assert "a command ran longer than 5s" in str(failures(document)["ws1"])
    assert document["hosts"]["ws2"]["status"] == "changed", failures(document)
    status, document = provision_json("onboard", "-i", str(site.inventory_path), home=home)
    assert status == 0, failures(document)


def test_a_host_whose_sshd_stops_mid_clone_is_reported_and_a_rerun_converges(lab: tuple[Lab, Path]) -> None:
    site, home = lab
    status, document = provision_json("onboard", "-i", str(site.inventory_path), "ws1", home=home)
    assert status == 0, failures(document)  # ws1 onboarded already, whatever the tests before did
    run(site, "ws2", ["rm", "-rf", "/root/demo"])
    with fake_git(site, "ws2", HANGING_CLONE), \
            when_file_appears(site.host_path("ws2", CLONE_STARTED), lambda: site.stop("ws2")):
        status, document = provision_json("onboard", "-i", str(site.inventory_path), "--timeout", "5", home=home)
    assert status & 6 and not status & 1, failures(document)
    assert document["hosts"]["ws2"]["status"] in ("failed", "unreachable")
    assert document["hosts"]["ws1"]["status"] == "ok", [t for t in document["hosts"]["ws1"]["tasks"] if t["changed"]]

    status, document = provision_json("onboard", "-i", str(site.inventory_path), home=home)
    assert status == 0, failures(document)
    assert document["hosts"]["ws2"]["status"] == "changed"


def test_storage_restarted_mid_onboard_of_eight_clients_names_what_to_rerun(make_lab, tmp_path: Path) -> None:
    """Storage's sshd (and every process in it) stops when the first clone starts, and comes back: each client
    ends done or failed with its reason, and rerunning the failed ones converges.

    The reason is OpenSSH's line, whenever the connection was refused, cut during key exchange or lost in
    the middle of the clone (where git only adds its advice about access rights), or dvc's own."""
    clients = [f"ws{n}" for n in range(1, 9)]
    lab = make_lab(["storage", *clients])
    bootstrap_storage(lab, tmp_path)

    def restart_storage() -> None:
        lab.stop("storage")
        lab.start("storage")

    with fake_git(lab, "ws1", f'#!/bin/sh\n[ "$1" = clone ] && touch {CLONE_STARTED}\nexec /usr/bin/git "$@"\n'), \
            when_file_appears(lab.host_path("ws1", CLONE_STARTED), restart_storage):
        status, document = provision_json("onboard", "-i", str(lab.inventory_path), "--timeout", "10", home=tmp_path)
    statuses = {host: document["hosts"][host]["status"] for host in clients}
    to_rerun = sorted(host for host, result in statuses.items() if result not in ("ok", "changed"))
    assert (status == 0) == (not to_rerun), (status, statuses)
    for host in to_rerun:
        reasons = str(failures(document)[host])
        assert document["hosts"][host]["status"] == "failed", (host, reasons)
        assert any(cause in reasons for cause in OPENSSH_CAUSES + DVC_CAUSES), reasons
    for host in set(clients) - set(to_rerun):
        assert lab.exec(host, ["test", "-d", "/root/demo/.git"]).returncode == 0, host

    if to_rerun:
        status, document = provision_json("onboard", "-i", str(lab.inventory_path), "--limit", ":".join(to_rerun),
                                          home=tmp_path)
        assert status == 0, failures(document)
    status, document = provision_json("onboard", "-i", str(lab.inventory_path), home=tmp_path)
    assert status == 0 and sum(stats["changed"] for stats in document["stats"].values()) == 0, failures(document)
