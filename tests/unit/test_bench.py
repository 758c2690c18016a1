"""The benchmark harness's pure parts: counting in sshd's log, the peers' vars, the results and the plot."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from bench.measure import key_fingerprint, storage_traffic
from bench.results import write_results
from bench.seed import ClientPlan, SeedPlan, make_dataset

CLIENT_KEY = "SHA256:clientkeyclientkeyclientkeyclientkeyclientke"
CONTROLLER_KEY = "SHA256:controllerkeycontrollerkeycontrollerkeycontr"
STORAGE_LOG = f"""\
Connection from 127.0.0.1 port 40000 on 127.0.0.1 port 2200 rdomain ""
Accepted publickey for root from 127.0.0.1 port 40000 ssh2: ED25519 {CONTROLLER_KEY}
Starting session: subsystem 'sftp' for root from 127.0.0.1 port 40000 id 0
Accepted publickey for dvc from 127.0.0.1 port 40002 ssh2: ED25519 {CLIENT_KEY}
Starting session: forced-command (key-option) 'internal-sftp -u 0002' for dvc from 127.0.0.1 port 40002 id 0
Starting session: forced-command (key-option) 'internal-sftp -u 0002' for dvc from 127.0.0.1 port 40002 id 1
Accepted publickey for git from 127.0.0.1 port 40004 ssh2: ED25519 {CLIENT_KEY}
Starting session: forced-command (key-option) 'git-shell -c "$X"' for git from 127.0.0.1 port 40004 id 0
drop connection #10 from [127.0.0.1]:40006 on [127.0.0.1]:2200 past MaxStartups
Accepted publickey for root from 127.0.0.1 port 40002 ssh2: ED25519 {CONTROLLER_KEY}
Starting session: subsystem 'sftp' for root from 127.0.0.1 port 40002 id 0
"""


def test_storage_traffic_counts_clients_logins_and_sftp_sessions_only() -> None:
    traffic = storage_traffic(STORAGE_LOG, {CLIENT_KEY: "ws1"})
    assert (traffic.client_logins, traffic.client_sftp_sessions) == (2, 2)
    assert traffic.logins_by_client == {"ws1": 2}
    # Every login counts in the total; the controller's later login on a reused port is not the client's.
    assert (traffic.logins, traffic.dropped) == (4, 1)


def test_key_fingerprint_is_what_ssh_keygen_shows(tmp_path: Path) -> None:
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    shown = subprocess.run(["ssh-keygen", "-l", "-f", str(key)], capture_output=True, text=True, check=True).stdout
    assert key_fingerprint(key.with_suffix(".pub").read_text()) == shown.split()[1]


def _plan(clients: list[ClientPlan]) -> SeedPlan:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(SeedPlan):
        if field.name == "clients":
            continue
        values[field.name] = {"git-shell": "#!/bin/sh\necho 'it''s'\n", "no login": "x"} \
            if field.name == "git_shell_commands" else 3 if field.type == "int" else f"{field.name} value"
    return SeedPlan(**values, clients=clients)


def _client(name: str, port: int) -> ClientPlan:
    return ClientPlan(name=name, port=port, home="/root", key="/root/.ssh/id", workdir="/root/demo",
                      marker=f"provision:inventory:{name}", git_url="ssh://git@127.0.0.1:2200/x.git",
                      git_ssh_command="ssh -F /dev/null -i '/root/.ssh/id'", known_hosts="/root/.ssh/known_hosts",
                      known_hosts_content="[127.0.0.1]:2200 ssh-ed25519 AAAA\n[127.0.0.1]:2200 ecdsa AAAB\n",
                      config_local="['remote \"data\"']\nuser = dvc\n",
                      sftp_line=('restrict,command="internal-sftp -u 0002" ', f" provision:inventory:{name}"),
                      git_line=('restrict,command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"" ', f" m:{name}"))


def test_shell_vars_give_bash_the_same_values_as_the_plan(tmp_path: Path) -> None:
    plan = _plan([_client("ws1", 2201), _client("ws2", 2202)])
    env = tmp_path / "plan.env"
    plan.write_shell_vars(env)
    script = ('. "$1"; printf "%s\\0" "$storage_user" "${client_name[1]}" "${client_port[1]}" '
              '"${client_known_hosts_content[0]}" "${client_git_line_prefix[1]}" "${client_sftp_line_suffix[1]}" '
              '"${git_shell_command_names[1]}" "${git_shell_command_texts[0]}" "$retry_attempts"')
    shown = subprocess.run(["bash", "-c", script, "bash", str(env)], capture_output=True, text=True, check=True)
    ws2 = plan.clients[1]
    assert shown.stdout.split("\0")[:-1] == [
        "storage_user value", "ws2", "2202", plan.clients[0].known_hosts_content, ws2.git_line[0], ws2.sftp_line[1],
        "no login", "#!/bin/sh\necho 'it''s'\n", "3"]


def test_ansible_vars_key_clients_by_name(tmp_path: Path) -> None:
    plan = _plan([_client("ws1", 2201)])
    path = tmp_path / "plan.json"
    plan.write_ansible_vars(path)
    document = json.loads(path.read_text())
    assert document["clients"]["ws1"]["sftp_line"] == list(plan.clients[0].sftp_line)
    assert document["committed_config"] == "committed_config value"


def test_dataset_is_the_same_every_time(tmp_path: Path) -> None:
    first, second = make_dataset(tmp_path / "a"), make_dataset(tmp_path / "b")
    assert first == second and len(first) == 200
    assert sum(path.stat().st_size for path in (tmp_path / "a").rglob("*") if path.is_file()) == 20_000_000


def _run(contender: str, clients: int, phase: str, wall: float, repetition: int = 1, **extra: Any) -> dict[str, Any]:
    return {"contender": contender, "clients": clients, "repetition": repetition, "phase": phase,
            "wall_seconds": wall, "job_cpu_seconds": wall / 2, "machine_cpu_seconds": wall, "peak_rss_mb": 50.0,
            "client_logins": 2 * clients, "client_sftp_sessions": clients, "logins": 3 * clients, "dropped": 0,
            "retries": 0, "exit_statuses": {"bootstrap": 0, "dataset": 0, "onboard": 0}, "step_seconds": {},
            "logins_by_client": {}, "problems": [], **extra}


def test_results_give_medians_ratios_growth_and_a_plot(tmp_path: Path) -> None:
    runs = [_run("provision", 1, "first", wall) for wall in (10.0, 12.0, 30.0)]
    runs += [_run("ansible-core", 1, "first", 24.0), _run("provision", 4, "first", 18.0),
             _run("ansible-core", 4, "first", 36.0), _run("provision", 1, "rerun", 5.0),
             _run("ansible-core", 1, "rerun", 20.0, problems=["ws1: data/ differs"])]
    write_results(tmp_path, runs, facts={"cpu": "test"}, command="bench/run --clients 1,4", note="a check",
                  cpu_source="cgroup test")
    results = (tmp_path / "RESULTS.md").read_text()
    assert "**a check**" in results and "`bench/run --clients 1,4`" in results
    assert "| 1 | 12.0 (10.0-30.0) | 24.0 |" in results
    assert "| 1 | first | 0.50x |" in results and "| 4 | first | 0.50x |" in results
    assert "| 1 | rerun | 0.25x |" in results
    assert "| provision | 1.50x |" in results  # growth: 18 s at N=4 over the median 12 s at N=1
    assert "- ansible-core N=1 rep 1 rerun: ws1: data/ differs" in results
    plot = ElementTree.fromstring((tmp_path / "wall_time.svg").read_text())
    svg = "{http://www.w3.org/2000/svg}"
    assert len(plot.findall(f"{svg}polyline")) == 4  # per contender: first run and re-run
    assert len(plot.findall(f"{svg}circle")) == 6  # one per contender, phase and N measured
