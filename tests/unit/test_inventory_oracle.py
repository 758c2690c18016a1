"""Oracle: our inventory must equal what ansible-core's `ansible-inventory --list` (and `--graph`) print.

Two sources of inventories, each compared without a limit and with 10 `--limit` patterns (the documents,
the refusals and the warnings):
- the corpus under tests/inventories/NN-name/ (one inventory file, group_vars/host_vars, an optional
  `limits` file with patterns of its own): the shapes public inventories use and the edge cases where
  provision used to differ from Ansible;
- seeded random inventories: nested groups (a group under several parents, groups outside `all:`),
  hosts in several groups, vars at every level, `ansible_group_priority`, host ranges and `host:port`
  keys, group_vars/host_vars as files of every form and as directories, with the edge cases mixed in
  (no project, odd host names, other connections, `!vault`, `!unsafe`, `!!set`, non-string var names,
  unknown group keys, a group named `hosts`, duplicate keys, range quirks, subscripted globs).
  PROVISION_ORACLE_SEEDS=N sets how many (default 200) for a longer sweep.
ansible-core runs in-process in a helper (tests/ansible_oracle.py): one parse per inventory, its own
--list code per limit, two processes at a time. No network: it only reads the files.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.errors import InputError
from provision.inventory import Inventory, load_inventory

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "inventories"
SEEDS = range(int(os.environ.get("PROVISION_ORACLE_SEEDS", "200")))
GRAPH_SEEDS = range(4)
LIMITS_PER_INVENTORY = 10
ORACLE_PROCESSES = 2
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


class Vault(str):
    """Written as an inline `!vault` value."""


class Unsafe(str):
    """Written as `!unsafe`."""


class _TaggedDumper(yaml.SafeDumper):
    """SafeDumper that also writes Ansible's tags and YAML sets."""


_TaggedDumper.add_representer(Vault, lambda dumper, value: dumper.represent_scalar("!vault", str(value), style="|"))
_TaggedDumper.add_representer(Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value)))
_TaggedDumper.add_representer(set, lambda dumper, value: dumper.represent_set(value))
VAULT_TEXT = "$ANSIBLE_VAULT;1.1;AES256\n6231336539666234\n"
ODD_HOSTS = ["příbor", "2001:db8::1", "user@h1", "10.0.0.[1:2]", "web[1:3:-1]", "db[ab:cd]", "localhost"]


def add_edge_cases(rng: random.Random, document: dict[str, Any]) -> None:
    """Mix in what public inventories hold and provision used to refuse or mangle (each case at random)."""
    all_body = document["all"]
    all_vars = all_body["vars"]
    if rng.random() < 0.2:
        del all_vars["project"]
    if rng.random() < 0.3:
        key, value = rng.choice([("projects", ["a"]), ("work_dir", "/w"), ("dc_env", "dev"), ("acess", "x")])
        all_vars[key] = value
    if rng.random() < 0.3:
        all_body["children"]["odd"] = {"hosts": {name: None for name in rng.sample(ODD_HOSTS, rng.randint(1, 4))}}
    if rng.random() < 0.3:
        connection = rng.choice(["paramiko", "ansible.netcommon.network_cli", "winrm"])
        all_body["children"]["net"] = {"vars": {"ansible_connection": connection}, "hosts": {"r1": None}}
    if rng.random() < 0.3:
        all_vars["db_password"] = Vault(VAULT_TEXT)
    if rng.random() < 0.3:
        all_vars["raw"] = Unsafe("{{ not_templated }}")
    if rng.random() < 0.3:
        all_vars["tags_set"] = {rng.choice(["web", "db", "cache"])}
    if rng.random() < 0.2:
        all_vars[rng.choice([7.2, 12, True])] = "odd name"
    if rng.random() < 0.2:
        all_body[rng.choice(["foo", "bar"])] = rng.choice([{}, 3, "text"])
    if rng.random() < 0.2:
        document["hosts"] = {"hosts": {"z1": {"color": "z"}}}


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
    add_edge_cases(rng, document)
    path = root / "inventory.yml"
    root.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(document, Dumper=_TaggedDumper, sort_keys=False, allow_unicode=True)
    if rng.random() < 0.3:
        text += "dupes:\n  vars:\n    twice: 1\n    twice: 2\n  hosts:\n    d1:\n    d2:\n    d1:\n      late: true\n"
    path.write_text(text)
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
    completed = subprocess.run([ansible_inventory(), "-i", str(path), action], cwd=work, env=ansible_env(work),
                               capture_output=True, text=True, timeout=120, check=False)
    if completed.returncode:
        pytest.fail(f"ansible-inventory {action} failed on {path}:\n{completed.stderr}")
    return completed.stdout


def ansible_env(work: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "LANG": "C.UTF-8",
        "ANSIBLE_CONFIG": str(work / "ansible.cfg"),
        "ANSIBLE_HOME": str(work / "home"),
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        "ANSIBLE_INVENTORY_ENABLED": "yaml",
        "ANSIBLE_NOCOLOR": "1",
    }


def corpus_inventory(directory: Path) -> Path:
    """The one inventory file of a corpus directory (beside group_vars/, host_vars/ and `limits`)."""
    files = [path for path in directory.iterdir() if path.is_file() and path.name != "limits"]
    assert len(files) == 1, f"{directory} must hold exactly one inventory file, found {files}"
    return files[0]


def limits_for(path: Path, own: list[str]) -> list[str | None]:
    """No limit, then the directory's own patterns, then patterns made from its names, 10 in all."""
    try:
        inv = load_inventory(path)
    except InputError:
        return [None, *own[:LIMITS_PER_INVENTORY]]
    groups = [name for name in inv.groups if name not in ("all", "ungrouped")] or ["ungrouped"]
    hosts = list(inv.hosts) or ["nohost"]
    first, last, host = groups[0], groups[-1], hosts[0]
    made = ["all", first, host, f"{first}:{last}", f"{first}:!{last}", f"{first}:&{last}", f"{host[:1]}*",
            f"{first}[0]", f"{first}[1:]", "*[1:2]", f"~{re.escape(hosts[-1][:2])}", "nothing_matches",
            f"!{first}", f"{last}[-1]", "ungrouped"]
    patterns = list(dict.fromkeys([*own, *made]))
    return [None, *patterns[:LIMITS_PER_INVENTORY]]


def run_oracle(jobs: list[dict[str, Any]], work: Path) -> list[dict[str, Any]]:
    """ansible-core's documents for every job, in ORACLE_PROCESSES processes."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "ansible.cfg").write_text("")
    chunks = [jobs[index::ORACLE_PROCESSES] for index in range(ORACLE_PROCESSES)]
    python = Path(ansible_inventory()).parent / "python"

    def run(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        completed = subprocess.run([str(python), str(REPO / "tests" / "ansible_oracle.py")], input=json.dumps(chunk),
                                   cwd=work, env=ansible_env(work), capture_output=True, text=True, timeout=900,
                                   check=False)
        if completed.returncode:
            pytest.fail(f"the ansible-core oracle failed:\n{completed.stderr}")
        return json.loads(completed.stdout)

    with ThreadPoolExecutor(max_workers=ORACLE_PROCESSES) as pool:
        answers = list(pool.map(run, chunks))
    results: list[dict[str, Any]] = [{}] * len(jobs)
    for index, answer in enumerate(answers):
        for offset, result in enumerate(answer):
            results[index + offset * ORACLE_PROCESSES] = result
    return results


Case = tuple[Path, list[str | None], dict[str, Any]]


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    """Every case: its inventory, its limits and ansible-core's answer for each."""
    root = tmp_path_factory.mktemp("oracle")
    paths = {directory.name: corpus_inventory(directory) for directory in sorted(CORPUS.iterdir())}
    paths |= {f"seed{seed}": generate(seed, root / f"seed{seed}") for seed in SEEDS}
    paths["example"] = REPO / "inventories" / "example.yml"
    limits = {}
    for name, path in paths.items():
        own_file = path.parent / "limits"
        own = own_file.read_text().splitlines() if path.parent.parent == CORPUS and own_file.exists() else []
        limits[name] = limits_for(path, own)
    jobs = [{"path": str(paths[name]), "limits": limits[name]} for name in paths]
    answers = run_oracle(jobs, root / "work")
    return {name: (paths[name], limits[name], answer) for name, answer in zip(paths, answers, strict=True)}


def _set_valued(inv: Inventory, host: str) -> set[str]:
    return {key for key, value in inv.hosts[host].vars.items() if isinstance(value, set)}


def canonical(document: dict[str, Any], inv: Inventory) -> dict[str, Any]:
    """`!!set` values come out in hash order (random per process in Ansible too): compare them sorted."""
    for host, shown in document.get("_meta", {}).get("hostvars", {}).items():
        for key in _set_valued(inv, host):
            shown[key] = sorted(shown[key])
    return document


def _warning_text(warning: str) -> str:
    """A warning without Ansible's internal type names (`_AnsibleTaggedInt` is our `int`)."""
    return re.sub(r"<class '[^']*'>", "<class>", warning.removeprefix("DEPRECATION: "))


#: ansible-inventory's own notes that are not about the inventory.
_NOT_ABOUT_THE_INVENTORY = ("Deprecation warnings can be disabled",)


def assert_same_as_ansible(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    path, limits, answer = case
    if answer["error"] or "error" in answer["lists"][0]:  # ansible refuses to parse, or to list what it parsed
        with pytest.raises(InputError) as caught:
            load_inventory(path)
        assert caught.value.file, f"ansible refuses ({answer['error']}); our refusal names no file"
        return
    capsys.readouterr()
    inv = load_inventory(path)
    for limit, expected in zip(limits, answer["lists"], strict=True):
        if "error" in expected:
            with pytest.raises(InputError):
                inv.to_ansible_list(limit)
            continue
        ours = json.loads(json.dumps(inv.to_ansible_list(limit)))
        assert canonical(ours, inv) == canonical(expected, inv), f"--limit {limit!r}"
    ours_warned = _warning_text(capsys.readouterr().err)
    for warning in answer["warnings"]:
        if not warning.startswith(_NOT_ABOUT_THE_INVENTORY):
            assert _warning_text(warning) in ours_warned


@pytest.mark.parametrize("case", sorted(directory.name for directory in CORPUS.iterdir()))
def test_corpus_matches_ansible_inventory(oracle: dict[str, Case], case: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert_same_as_ansible(oracle[case], capsys)


@pytest.mark.parametrize("case", [*(f"seed{seed}" for seed in SEEDS), "example"])
def test_random_inventories_match_ansible_inventory(oracle: dict[str, Case], case: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert_same_as_ansible(oracle[case], capsys)


def test_the_corpus_is_large_and_exercises_limits(oracle: dict[str, Case]) -> None:
    corpus = [case for name, case in oracle.items() if not name.startswith("seed") and name != "example"]
    assert len(corpus) >= 60
    loaded = [case for case in corpus if not case[2]["error"] and "error" not in case[2]["lists"][0]]
    assert all(len(limits) == LIMITS_PER_INVENTORY + 1 for _, limits, _ in loaded)
    refused = len(corpus) - len(loaded)
    assert 0 < refused < 15
    empty = [doc for _, _, answer in loaded for doc in answer["lists"]
             if "error" not in doc and not any("hosts" in entry for name, entry in doc.items() if name != "_meta")]
    assert empty, "some limits must select nothing"


@pytest.mark.parametrize("seed", [*GRAPH_SEEDS, None])
def test_graph_matches_ansible_inventory(tmp_path: Path, seed: int | None) -> None:
    path = REPO / "inventories" / "example.yml" if seed is None else generate(seed, tmp_path / "inv")
    assert load_inventory(path).graph() == run_ansible(path, "--graph", tmp_path / "work").rstrip("\n")


def test_generated_cases_cover_the_interesting_shapes(oracle: dict[str, Case]) -> None:
    """The seeds must exercise what the oracle is for, or a passing run proves little."""
    seen: set[str] = set()
    for seed in SEEDS:
        path = oracle[f"seed{seed}"][0]
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
            base = path.parent / sub
            if base.is_dir():
                seen.update(f"{sub} {'dir' if entry.is_dir() else entry.suffix or 'bare'}" for entry in base.iterdir())
        sources = {src[0] for host in inv.hosts.values() for src in host.sources.values()}
        if any("/group_vars/" in src and "/40-sub/" in src for src in sources):
            seen.add("nested vars directory wins")
        seen.update(edge for edge, marker in EDGE_MARKERS.items() if marker in text)
        if "project:" not in text:
            seen.add("no project")
    assert seen >= {
        "group with two parents", "nesting three deep", "host in two groups", "group priority",
        "depth is the longest path", "host range", "host:port key", "group outside all", "ungrouped hosts",
        "grouped host listed in ungrouped", "group_vars dir", "group_vars .yml", "group_vars .yaml",
        "group_vars .json", "group_vars bare", "host_vars dir", "nested vars directory wins",
        *EDGE_MARKERS, "no project",
    }, seen


EDGE_MARKERS = {
    "vault": "!vault", "unsafe": "!unsafe", "set": "!!set", "float var name": "7.2:", "unicode host": "příbor",
    "ipv6 host": "2001:db8::1", "user@ host": "user@h1", "range quirk": "db[ab:cd]", "other connection": "net:",
    "typo-like var": "work_dir", "duplicate key": "twice: 2", "group named hosts": "\nhosts:",
    "unknown group key": "\n  foo:",
}
