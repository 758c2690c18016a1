"""Oracle: our inventory must equal what ansible-core's `ansible-inventory --list` and `--graph` print.

Seeded random inventories cover nested groups (a group under several parents, groups outside `all:`),
hosts in several groups, vars at every level, `ansible_group_priority`, host ranges and `host:port`
keys, and group_vars/host_vars as files of every form and as directories, with overrides at several
levels. No network: ansible-inventory only reads the files.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.inventory import load_inventory

REPO = Path(__file__).resolve().parents[2]
SEEDS = range(12)
GRAPH_SEEDS = range(4)
GROUP_NAMES = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "theta"]
USER_KEYS = ["color", "rack_zone", "site_label"]
OUR_VALUES: dict[str, list[Any]] = {
    "dvc_remote": ["data", "models"],
    "access": ["read", "readwrite"],
    "storage_port": [22, 2222],
    "workdir": ["~/work", "/srv/checkout"],
    "ansible_port": [22, 2201],
    "ansible_host": ["10.0.0.7", "node.lab.example.org"],
}
DIR_FILES = ["10-a.yml", "20-b.yaml", "30-c", "40-sub/x.yml", "50-d.json"]


def ansible_inventory() -> str:
    for candidate in (Path(sys.executable).parent / "ansible-inventory",
                      Path("/var/lib/provision/venv/bin/ansible-inventory")):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("ansible-inventory")
    if not found:
        pytest.fail("ansible-inventory not found: install the dev extras (ansible-core)")
    return found


def random_value(rng: random.Random) -> Any:
    kind = rng.randrange(8)
    if kind == 7:
        return rng.choice([datetime.date(2024, 1, 2), datetime.datetime(2024, 1, 2, 10, 30), 1.5])
    if kind == 0:
        return rng.randint(-5, 500)
    if kind == 1:
        return rng.choice(["x", "blue", "yes", "10", "a b c", ""])
    if kind == 2:
        return rng.choice([True, False])
    if kind == 3:
        return None
    if kind == 4:
        return [rng.randint(0, 9) for _ in range(rng.randint(0, 3))]
    if kind == 5:
        return {rng.choice("pqr"): rng.randint(0, 9) for _ in range(rng.randint(1, 3))}
    return f"v{rng.randint(0, 99)}"


def random_vars(rng: random.Random, most: int = 4) -> dict[str, Any]:
    """Vars drawn from a small key pool, so that levels override one another."""
    result: dict[str, Any] = {}
    for _ in range(rng.randint(0, most)):
        if rng.random() < 0.3:
            key = rng.choice(sorted(OUR_VALUES))
            result[key] = rng.choice(OUR_VALUES[key])
        else:
            result[rng.choice(USER_KEYS)] = random_value(rng)
    return result


def write_vars_files(rng: random.Random, base: Path, name: str) -> None:
    """group_vars/NAME or host_vars/NAME in a random form: .yml, .yaml, bare, .json, or a directory."""
    form = rng.choice(["yml", "yaml", "bare", "json", "dir", "dir"])
    if form == "dir":
        for file_name in rng.sample(DIR_FILES, rng.randint(1, len(DIR_FILES))):
            path = base / name / file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            data = random_vars(rng, 4)
            path.write_text(json.dumps(data, default=str) if file_name.endswith(".json") else yaml.safe_dump(data))
        if rng.random() < 0.3:
            (base / f"{name}.yml").write_text(yaml.safe_dump({"color": "shadowed"}))
        return
    suffix = {"yml": ".yml", "yaml": ".yaml", "bare": "", "json": ".json"}[form]
    data = random_vars(rng, 4)
    base.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, default=str) if form == "json" else yaml.safe_dump(data)
    (base / f"{name}{suffix}").write_text(text)


def add_precedence_traps(rng: random.Random, groups: list[str], parents: dict[str, list[str]],
                         bodies: dict[str, dict[str, Any]], hosts: list[str]) -> None:
    """Shapes where only the exact group order gives Ansible's answer.

    Two top-level groups share a host and a key (alphabetical order unless ansible_group_priority
    says otherwise); a group reached by paths of different lengths takes the longest as its depth.
    """
    if rng.random() < 0.8:
        shared = rng.choice(hosts)
        for name in ("prio_x", "prio_y"):
            groups.append(name)
            parents[name] = []
            bodies[name] = {"hosts": {shared: None}, "vars": {"trap_priority": name}}
            priority = rng.choice([None, 1, 3, 10])
            if priority is not None:
                bodies[name]["vars"]["ansible_group_priority"] = priority
    if rng.random() < 0.8:
        shared = rng.choice(hosts)
        chain = {"lvl1": [], "lvl2": ["lvl1"], "lvl3": ["lvl2"], "multi": rng.sample(["lvl1", "lvl3"], 2)}
        for name, its_parents in chain.items():
            groups.append(name)
            parents[name] = its_parents
            bodies[name] = {"vars": {"trap_depth": name}}
        for name in ("lvl3", "multi"):
            bodies[name]["hosts"] = {shared: None}


def generate(seed: int, root: Path) -> Path:
    """Write one random inventory with its vars files under root; return the inventory path."""
    rng = random.Random(seed)
    groups = rng.sample(GROUP_NAMES, rng.randint(2, len(GROUP_NAMES)))
    parents = {name: rng.sample(groups[:index], rng.randint(0, min(2, index))) for index, name in enumerate(groups)}
    outside_all = {name for name in groups if not parents[name] and rng.random() < 0.25}
    bodies: dict[str, dict[str, Any]] = {name: {} for name in groups}
    for name in groups:
        if rng.random() < 0.6:
            bodies[name]["vars"] = random_vars(rng)
        if rng.random() < 0.35:
            bodies[name].setdefault("vars", {})["ansible_group_priority"] = rng.randint(1, 10)
    bodies["storage"] = {"hosts": {"nas": random_vars(rng) or None}}
    top_level: dict[str, Any] = {"hosts": {}, "children": {"storage": bodies["storage"]}}
    hosts = [f"h{index}" for index in range(rng.randint(3, 8))]
    ported = rng.choice(hosts)
    for host in hosts:
        memberships = rng.sample(groups, rng.randint(0, 2))
        if not memberships:
            target = rng.choice(["all", "ungrouped"])
            section = top_level["hosts"] if target == "all" else bodies.setdefault("ungrouped", {"hosts": {}})["hosts"]
            section[host] = random_vars(rng) or None
        for group in memberships:
            key = f"{host}:2299" if host == ported else host
            bodies[group].setdefault("hosts", {})[key] = random_vars(rng) or None
        if memberships and rng.random() < 0.3:
            bodies.setdefault("ungrouped", {"hosts": {}})["hosts"][host] = None
    if rng.random() < 0.5:
        bodies[rng.choice(groups)].setdefault("hosts", {})["r[1:2]"] = random_vars(rng) or None
    add_precedence_traps(rng, groups, parents, bodies, hosts)
    placed: set[str] = set()

    def body(name: str) -> dict[str, Any] | None:
        if name in placed:
            return None
        placed.add(name)
        result = dict(bodies[name])
        children = [child for child in groups if name in parents[child]]
        if children:
            result["children"] = {child: body(child) for child in children}
        return result or None

    document: dict[str, Any] = {"all": {"vars": {"project": "demo", **random_vars(rng)}, **top_level}}
    for name in groups:
        if not parents[name] and name not in outside_all:
            document["all"]["children"][name] = body(name)
    if "ungrouped" in bodies:
        document["all"]["children"]["ungrouped"] = bodies["ungrouped"]
    for name in groups:
        if name in outside_all:
            document[name] = body(name)
    path = root / "inventory.yml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    for name in ["all", "ungrouped", "storage", *groups]:
        if rng.random() < 0.5:
            write_vars_files(rng, root / "group_vars", name)
    for name in ["nas", *hosts]:
        if rng.random() < 0.4:
            write_vars_files(rng, root / "host_vars", name)
    return path


def run_ansible(path: Path, action: str, work: Path) -> str:
    work.mkdir(parents=True, exist_ok=True)
    (work / "ansible.cfg").write_text("")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "LANG": "C.UTF-8",
        "ANSIBLE_CONFIG": str(work / "ansible.cfg"),
        "ANSIBLE_HOME": str(work / "home"),
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        "ANSIBLE_INVENTORY_ENABLED": "yaml",
        "ANSIBLE_NOCOLOR": "1",
    }
    completed = subprocess.run([ansible_inventory(), "-i", str(path), action], cwd=work, env=env,
                               capture_output=True, text=True, timeout=120, check=False)
    if completed.returncode:
        pytest.fail(f"ansible-inventory {action} failed on {path}:\n{completed.stderr}")
    return completed.stdout


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str, str | None]]:
    """Every case with ansible-inventory's --list (and some --graph) output, run concurrently."""
    root = tmp_path_factory.mktemp("oracle")
    cases = {f"seed{seed}": generate(seed, root / f"seed{seed}") for seed in SEEDS}
    cases["example"] = REPO / "inventories" / "example.yml"
    graphs = {f"seed{seed}" for seed in GRAPH_SEEDS} | {"example"}
    with ThreadPoolExecutor(max_workers=4) as pool:
        lists = {name: pool.submit(run_ansible, path, "--list", root / "work" / name / "list")
                 for name, path in cases.items()}
        graph_runs = {name: pool.submit(run_ansible, cases[name], "--graph", root / "work" / name / "graph")
                      for name in graphs}
        return {name: (path, lists[name].result(), graph_runs[name].result() if name in graph_runs else None)
                for name, path in cases.items()}


@pytest.mark.parametrize("case", [*(f"seed{seed}" for seed in SEEDS), "example"])
def test_list_matches_ansible_inventory(oracle: dict[str, tuple[Path, str, str | None]], case: str) -> None:
    path, listed, _ = oracle[case]
    expected = json.loads(listed)
    ours = load_inventory(path).to_ansible_list()
    assert ours["_meta"]["hostvars"] == expected["_meta"]["hostvars"]
    assert {k: v for k, v in ours.items() if k != "_meta"} == {k: v for k, v in expected.items() if k != "_meta"}
    assert ours == expected


@pytest.mark.parametrize("case", [*(f"seed{seed}" for seed in GRAPH_SEEDS), "example"])
def test_graph_matches_ansible_inventory(oracle: dict[str, tuple[Path, str, str | None]], case: str) -> None:
    path, _, graph = oracle[case]
    assert load_inventory(path).graph() == (graph or "").rstrip("\n")


def test_generated_cases_cover_the_interesting_shapes(tmp_path: Path) -> None:
    """The seeds must exercise what the oracle is for, or a passing run proves little."""
    seen: set[str] = set()
    for seed in SEEDS:
        path = generate(seed, tmp_path / f"seed{seed}")
        inv = load_inventory(path)
        text = path.read_text()
        if any(len(group.parents) > 1 for group in inv.groups.values()):
            seen.add("group with two parents")
        if any(group.depth >= 3 for group in inv.groups.values()):
            seen.add("nesting three deep")
        if any(len(set(host.groups) - {"all", "ungrouped"}) >= 2 for host in inv.hosts.values()):
            seen.add("host in two groups")
        if any(group.priority != 1 for group in inv.groups.values()):
            seen.add("group priority")
        if "multi" in inv.groups and inv.groups["multi"].depth == 4:
            seen.add("depth is the longest path")
        if "r[1:2]" in text:
            seen.add("host range")
        if ":2299" in text:
            seen.add("host:port key")
        if any(not line.startswith(("all:", " ")) for line in text.splitlines()[1:]):
            seen.add("group outside all")
        if inv.groups["ungrouped"].hosts:
            seen.add("ungrouped hosts")
        if any(host in text.split("ungrouped:")[-1] and len(inv.hosts[host].groups) > 2 for host in inv.hosts):
            seen.add("grouped host listed in ungrouped")
        for sub in ("group_vars", "host_vars"):
            base = tmp_path / f"seed{seed}" / sub
            if base.is_dir():
                seen.update(f"{sub} {'dir' if entry.is_dir() else entry.suffix or 'bare'}" for entry in base.iterdir())
        sources = {src[0] for host in inv.hosts.values() for src in host.sources.values()}
        if any("/group_vars/" in src and "/40-sub/" in src for src in sources):
            seen.add("nested vars directory wins")
    assert seen >= {
        "group with two parents", "nesting three deep", "host in two groups", "group priority",
        "depth is the longest path", "host range", "host:port key", "group outside all", "ungrouped hosts",
        "grouped host listed in ungrouped", "group_vars dir", "group_vars .yml", "group_vars .yaml",
        "group_vars .json", "group_vars bare", "host_vars dir", "nested vars directory wins",
    }, seen
