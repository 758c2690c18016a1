"""A whole fleet at once on stock sshd (MaxStartups 10:30:100, MaxSessions 10): no client fails, few logins.

Clients' own connections to storage (clone, proofs, dvc pull) go through the run's storage admission,
so sshd never sheds enough of them to fail a host. Logins per client are counted from storage's
VERBOSE sshd log, as bench/ counts them. N=16 runs in the suite; N=32 when PROVISION_FLEET_32=1.
"""

from __future__ import annotations

import os

import pytest
import yaml

from bench.harness import STOCK_SSHD, stock_sshd
from bench.measure import key_fingerprint, storage_traffic
from provision.lab import Lab
from tests.integration.clirunner import provision_json
from tests.integration.helpers import KEY, WORKDIR, bootstrap_with_dataset, changed, failures, own_lab, sh, task

pytestmark = pytest.mark.integration

FLEET_SIZES = [16, 32] if os.environ.get("PROVISION_FLEET_32") == "1" else [16]


def _logins(lab: Lab, log_offset: int, clients: list[str]) -> dict[str, int]:
    """Logins by each client's key in storage's sshd log since `log_offset` (0 for a client without any)."""
    keys = {key_fingerprint(lab.host_path(client, f"{KEY}.pub").read_text()): client for client in clients}
    text = lab.log_path("storage").read_bytes()[log_offset:].decode(errors="replace")
    traffic = storage_traffic(text, keys)
    return {client: traffic.logins_by_client.get(client, 0) for client in clients}


@pytest.mark.parametrize("size", FLEET_SIZES)
def test_a_fleet_onboards_at_once_on_stock_sshd_with_few_storage_logins(
        tmp_path_factory: pytest.TempPathFactory, size: int) -> None:
    clients = [f"ws{index}" for index in range(1, size + 1)]
    with own_lab(tmp_path_factory, f"fleet{size}", ["storage", *clients]) as (lab, home):
        stock_sshd(lab)
        bootstrap_with_dataset(lab, home, blob=True)
        inventory = str(lab.inventory_path)
        log = lab.log_path("storage")

        offset = log.stat().st_size
        code, first = provision_json("onboard", "-i", inventory, "--pull", home=home)
        assert code == 0, failures(first)
        first_logins = _logins(lab, offset, clients)
        assert all(1 <= count <= 3 for count in first_logins.values()), first_logins
        for client in clients:
            assert sh(lab, client, ["cat", f"{WORKDIR}/data/hello.txt"]) == "hello v1\n"
            assert "git clone" in task(first, client, "prove access")["msg"]

        offset = log.stat().st_size
        code, rerun = provision_json("onboard", "-i", inventory, "--pull", home=home)
        assert code == 0, failures(rerun)
        assert changed(rerun) == 0
        rerun_logins = _logins(lab, offset, clients)
        assert all(count <= 1 for count in rerun_logins.values()), rerun_logins
        for client in clients:
            assert "recorded" in task(rerun, client, "dvc pull")["msg"]

        # storage now refuses the accounts: an authentication failure is reported, never retried.
        stock_sshd(lab, STOCK_SSHD + "DenyUsers dvc git\n")
        offset = log.stat().st_size
        code, refused = provision_json("onboard", "-i", inventory, "--pull", "--verify", "--limit", "ws1,ws2",
                                       home=home)
        assert code == 2
        for client in ("ws1", "ws2"):
            proof = task(refused, client, "prove access")
            assert proof["status"] == "failed" and "git ls-remote" in proof["msg"], proof
            assert refused["stats"][client]["retries"] == 0
        denied = log.read_bytes()[offset:].decode(errors="replace").count("not allowed because listed in DenyUsers")
        assert denied == 2, "one attempt per client, none repeated"


def test_connections_storage_sheds_are_retried_and_counted(tmp_path_factory: pytest.TempPathFactory) -> None:
    """More client steps at once than a tight MaxStartups admits: sshd drops some, each is retried."""
    clients = [f"ws{index}" for index in range(1, 9)]
    with own_lab(tmp_path_factory, "shed", ["storage", *clients]) as (lab, home):
        bootstrap_with_dataset(lab, home)
        data = yaml.safe_load(lab.inventory_path.read_text())
        data["all"]["vars"]["storage_connections"] = len(clients)
        lab.inventory_path.write_text(yaml.safe_dump(data))
        stock_sshd(lab, "LogLevel VERBOSE\nMaxStartups 2:100:2\n")
        offset = lab.log_path("storage").stat().st_size

        code, document = provision_json("onboard", "-i", str(lab.inventory_path), "--pull", home=home)

        assert code == 0, failures(document)
        dropped = storage_traffic(lab.log_path("storage").read_bytes()[offset:].decode(errors="replace"), {}).dropped
        retries = sum(document["stats"][client]["retries"] for client in clients)
        assert dropped > 0 and retries > 0, (dropped, retries)
