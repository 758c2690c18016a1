"""The Ansible-compatible inventory: structure, precedence, vars files, defaults, validation, patterns."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from provision.errors import InputError
from provision.inventory import Settings, load_inventory

REPO = Path(__file__).resolve().parents[2]
STORAGE = """\
    storage:
      hosts:
        nas:
"""


def make(root: Path, files: dict[str, str], inventory: str = "site.yml") -> Path:
    """Write files (dedented) under root; return the inventory path."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / inventory


def line_of(path: Path, needle: str) -> int:
    """1-based number of the first line of path containing needle."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def load_error(path: Path) -> InputError:
    """The error of loading the inventory and reading every host's settings and connection vars."""
    with pytest.raises(InputError) as caught:
        inv = load_inventory(path)
        inv.check_targets(inv.hosts.values())
        for host in inv.hosts.values():
            _ = host.settings
    return caught.value


# ---------------------------------------------------------------- structure

def test_groups_hosts_children_and_ungrouped(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": """\
        all:
          vars:
            project: demo
          hosts:
            loner:
          children:
            storage:
              hosts:
                nas:
            clients:
              children:
                gpu:
                  hosts:
                    gpu01:
                    ws01:
              hosts:
                ws01:
                ws02:
            ungrouped:
              hosts:
                odd:
                gpu01:
        extra:
          hosts:
            ws02:
        """})
    inv = load_inventory(path)
    assert list(inv.hosts) == ["loner", "nas", "gpu01", "ws01", "ws02", "odd"]
    assert inv.groups["all"].children == ["ungrouped", "storage", "clients", "extra"]
    assert inv.groups["clients"].children == ["gpu"]
    assert inv.groups["clients"].hosts == ["ws01", "ws02"]
    assert inv.groups["gpu"].parents == ["clients"]
    assert (inv.groups["gpu"].depth, inv.groups["clients"].depth, inv.groups["all"].depth) == (2, 1, 0)
    # gpu01 is in a real group, so it leaves `ungrouped`; loner (only in all) joins it.
    assert inv.groups["ungrouped"].hosts == ["odd", "loner"]
    assert inv.hosts["ws01"].groups == ["all", "clients", "gpu"]
    assert inv.hosts["ws02"].groups == ["all", "clients", "extra"]
    assert inv.hosts["loner"].groups == ["all", "ungrouped"]
    assert inv.storage.name == "nas"
    assert [host.name for host in inv.clients] == ["loner", "gpu01", "ws01", "ws02", "odd"]


def test_host_ranges_and_ports_in_host_keys(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": """\
        all:
          vars: {project: demo}
          children:
            storage:
              hosts:
                nas:2222:
            web:
              hosts:
                web[01:03].lab:
                  role: web
                web[a:b]:
                  role: letters
            again:
              hosts:
                nas:2200:
        """})
    inv = load_inventory(path)
    assert list(inv.hosts) == ["nas", "web01.lab", "web02.lab", "web03.lab", "weba", "webb"]
    assert inv.hosts["nas"].vars["ansible_port"] == 2222  # only the first mention sets the port
    assert inv.hosts["nas"].source("ansible_port") == (str(path), line_of(path, "nas:2222"))
    assert inv.hosts["web02.lab"].vars == {"project": "demo", "role": "web"}
    assert inv.hosts["webb"].source("role") == (str(path), line_of(path, "role: letters"))
    assert inv.storage.port == 2222
    assert inv.hosts["ws01" if "ws01" in inv.hosts else "weba"].settings.storage_port == 2222


def test_host_vars_from_several_mentions_merge_in_file_order(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": """\
        all:
          vars: {project: demo}
          children:
            storage:
              hosts:
                nas: {a: 1, b: 1}
            other:
              hosts:
                nas: {b: 2, c: {x: 1}}
            third:
              hosts:
                nas: {c: {y: 2}}
        """})
    host = load_inventory(path).hosts["nas"]
    # Ansible's default hash_behaviour is `replace`: a later dict replaces an earlier one whole.
    assert host.vars == {"project": "demo", "a": 1, "b": 2, "c": {"y": 2}}


def test_string_sections_are_single_entries(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": """\
        all:
          vars: {project: demo}
          children:
            storage:
              hosts: nas
        """})
    assert load_inventory(path).groups["storage"].hosts == ["nas"]


def test_yaml_merge_keys_and_unsafe_tag(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": """\
        all:
          vars:
            project: demo
            note: !unsafe '{{ not templated }}'
          children:
            storage:
              hosts:
                nas: &common
                  color: red
                  size: 1
            clients:
              hosts:
                other:
                  <<: *common
                  size: 2
        """})
    inv = load_inventory(path)
    assert inv.hosts["other"].vars["color"] == "red"
    assert inv.hosts["other"].vars["size"] == 2
    assert inv.hosts["nas"].vars["note"] == "{{ not templated }}"


# ---------------------------------------------------------------- precedence

PRECEDENCE = """\
all:
  vars:
    project: demo
    v_all: all
    v_parent: all
    v_child: all
    v_host: all
  children:
    parent:
      vars:
        v_parent: parent
        v_child: parent
        v_host: parent
      children:
        child:
          vars:
            v_child: child
            v_host: child
          hosts:
            h1:
              v_host: host
    storage:
      hosts:
        nas:
    alpha:
      vars:
        same_depth: alpha
      hosts:
        h1:
    beta:
      vars:
        same_depth: beta
      hosts:
        h1:
"""


def test_precedence_all_parent_child_host(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": PRECEDENCE})
    host = load_inventory(path).hosts["h1"]
    assert {key: host.vars[key] for key in ("v_all", "v_parent", "v_child", "v_host")} == {
        "v_all": "all", "v_parent": "parent", "v_child": "child", "v_host": "host"}
    assert host.source("v_child") == (str(path), line_of(path, "v_child: child"))
    assert host.source("v_all") == (str(path), line_of(path, "v_all: all"))
    assert host.source("missing") is None
    # Same depth: alphabetical, the later name wins.
    assert host.vars["same_depth"] == "beta"
    assert host.groups == ["all", "alpha", "beta", "parent", "child"]


def test_group_priority_overrides_alphabetical_order(tmp_path: Path) -> None:
    priority = "        same_depth: alpha\n        ansible_group_priority: 5\n"
    path = make(tmp_path, {"site.yml": PRECEDENCE.replace("        same_depth: alpha\n", priority)})
    inv = load_inventory(path)
    assert inv.hosts["h1"].vars["same_depth"] == "alpha"
    assert inv.groups["alpha"].priority == 5
    assert "ansible_group_priority" not in inv.hosts["h1"].vars


def test_deeper_group_wins_over_name_order(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": """\
        all:
          vars: {project: demo}
          children:
            storage: {hosts: {nas: }}
            aaa:
              children:
                bbb:
                  vars: {x: deep}
                  hosts: {h: }
            zzz:
              vars: {x: shallow}
              hosts: {h: }
        """})
    assert load_inventory(path).hosts["h"].vars["x"] == "deep"


def test_files_override_inline_vars_at_each_level(tmp_path: Path) -> None:
    path = make(tmp_path, {
        "site.yml": PRECEDENCE,
        "group_vars/parent.yml": "v_parent: parent-file\n",
        "group_vars/child.yml": "v_child: child-file\n",
        "host_vars/h1.yml": "# host file\nv_host: host-file\n",
    })
    host = load_inventory(path).hosts["h1"]
    assert host.vars["v_parent"] == "parent-file"
    assert host.vars["v_child"] == "child-file"
    assert host.vars["v_host"] == "host-file"
    assert host.source("v_host") == (str(tmp_path / "host_vars" / "h1.yml"), 2)


def test_group_vars_all_file_beats_inline_group_vars(tmp_path: Path) -> None:
    """Ansible merges every inline group var before any group_vars file (VARIABLE_PRECEDENCE)."""
    path = make(tmp_path, {
        "site.yml": PRECEDENCE,
        "group_vars/all.yml": "v_child: all-file\nv_host: all-file\n",
        "group_vars/parent.yml": "v_child: parent-file\n",
    })
    host = load_inventory(path).hosts["h1"]
    assert host.vars["v_child"] == "parent-file"
    assert host.vars["v_host"] == "host"


def test_group_vars_directory_is_merged_in_sorted_order(tmp_path: Path) -> None:
    path = make(tmp_path, {
        "site.yml": "all:\n  vars: {project: demo}\n  children:\n    storage: {hosts: {nas: }}\n"
                    "    g: {hosts: {h: }}\n",
        "group_vars/g/20-second.yaml": "y: second\n",
        "group_vars/g/10-first.yml": "x: first\ny: first\n",
        "group_vars/g/30-sub/a.yml": "z: sub\n",
        "group_vars/g/40-plain": "w: plain\n",
        "group_vars/g/.hidden.yml": "x: hidden\n",
        "group_vars/g/50.yml~": "x: backup\n",
        "group_vars/g/60.txt": "x: ignored\n",
        "group_vars/g/70-empty.yml": "",
    })
    inv = load_inventory(path)
    assert inv.hosts["h"].vars == {"project": "demo", "x": "first", "y": "second", "z": "sub", "w": "plain"}
    assert inv.hosts["h"].source("y") == (str(tmp_path / "group_vars" / "g" / "20-second.yaml"), 1)
    assert inv.groups["g"].vars == {"x": "first", "y": "second", "z": "sub", "w": "plain"}


@pytest.mark.parametrize("file_name", ["g.yml", "g.yaml", "g", "g.json"])
def test_group_vars_file_forms(tmp_path: Path, file_name: str) -> None:
    content = '{"color": "blue"}\n' if file_name.endswith(".json") else "---\ncolor: blue\n"
    path = make(tmp_path, {
        "site.yml": "all:\n  vars: {project: demo}\n  children:\n    storage: {hosts: {nas: }}\n"
                    "    g: {hosts: {h: }}\n",
        f"group_vars/{file_name}": content,
        "host_vars/nas.json": '{\n  "ansible_host": "10.1.2.3"\n}\n',
    })
    inv = load_inventory(path)
    assert inv.hosts["h"].vars["color"] == "blue"
    assert inv.hosts["h"].source("color")[1] == (1 if file_name.endswith(".json") else 2)
    assert inv.storage.address == "10.1.2.3"
    assert inv.hosts["nas"].source("ansible_host") == (str(tmp_path / "host_vars" / "nas.json"), 2)


def test_first_vars_file_form_wins(tmp_path: Path) -> None:
    """Like Ansible, NAME (file or directory) is looked up first, then NAME.yml, NAME.yaml, NAME.json."""
    path = make(tmp_path, {
        "site.yml": "all:\n  vars: {project: demo}\n  children:\n    storage: {hosts: {nas: }}\n",
        "group_vars/storage": "pick: bare\n",
        "group_vars/storage.yml": "pick: yml\nonly_yml: 1\n",
    })
    assert load_inventory(path).hosts["nas"].vars == {"project": "demo", "pick": "bare"}


def test_relative_inventory_path_names_files_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path, {
        "inv/site.yml": "all:\n  children:\n    storage: {hosts: {nas: }}\n",
        "inv/group_vars/all.yml": "project: demo\nstorage_port: 0\n",
    })
    monkeypatch.chdir(tmp_path)
    error = load_error(Path("inv/site.yml"))
    assert str(error) == (f"{os.path.join('inv', 'group_vars', 'all.yml')}:2: storage_port: "
                          "0 is outside 1..65535: expected a TCP port number")


# ---------------------------------------------------------------- defaults and settings

def test_defaults(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": "all:\n  vars: {project: demo}\n  children:\n    storage: {hosts: {nas: }}\n"
                                       "    clients: {hosts: {ws01: }}\n"})
    inv = load_inventory(path)
    assert inv.name == "site"
    assert inv.known_hosts_path == tmp_path / "site.known_hosts"
    assert inv.hosts["ws01"].settings == Settings(
        inventory_name="site", project="demo", dvc_remote="data", nfs_root="/mnt/nfs",
        dvc_storage="/mnt/nfs/cache", git_remote="/mnt/nfs/git/demo.git", server_repo="/mnt/nfs/demo",
        server_cache="separate", storage_address="nas", storage_port=22, storage_connections=6, storage_user="dvc",
        git_user="git",
        storage_group="dvc", storage_gid=None, auth="key", access="readwrite", workdir="~/demo",
        client_key="~/.ssh/id_ed25519_demo", shared_cache=None, dvc_version=">=3.50,<4",
        dvc_venv="/opt/provision/dvc", cache_types="reflink,symlink,hardlink,copy",
        sshd_reload_command=["systemctl", "reload", "ssh"])
    assert inv.hosts["ws01"].settings.git_remote_is_path
    assert inv.hosts["ws01"].vars == {"project": "demo"}


def test_derived_defaults_follow_nfs_root_and_storage_host(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": """\
        all:
          vars:
            project: vision
            nfs_root: /data/nfs/
            git_remote: git@github.com:lab/vision.git
            workdir: ~/work/vision
            shared_cache: ~/mnt/cache
            storage_gid: "2400"
            sshd_reload_command: "sh -c 'kill -HUP $(cat /run/sshd.pid)'"
            dvc_version: ">= 3.50 , < 4"
            cache_types: [symlink, copy]
          children:
            storage:
              hosts:
                nas: {ansible_host: 10.0.0.5, ansible_port: "2200"}
        """})
    settings = load_inventory(path).hosts["nas"].settings
    assert (settings.nfs_root, settings.dvc_storage, settings.server_repo) == (
        "/data/nfs", "/data/nfs/cache", "/data/nfs/vision")
    assert settings.git_remote == "git@github.com:lab/vision.git"
    assert not settings.git_remote_is_path
    assert (settings.storage_address, settings.storage_port) == ("10.0.0.5", 2200)
    assert (settings.workdir, settings.shared_cache, settings.client_key) == (
        "~/work/vision", "~/mnt/cache", "~/.ssh/id_ed25519_vision")
    assert settings.storage_gid == 2400
    assert settings.sshd_reload_command == ["sh", "-c", "kill -HUP $(cat /run/sshd.pid)"]
    assert settings.dvc_version == ">=3.50,<4"
    assert settings.cache_types == "symlink,copy"


def test_per_host_settings(tmp_path: Path) -> None:
    path = make(tmp_path, {
        "site.yml": "all:\n  vars: {project: demo, inventory_name: lab}\n  children:\n"
                    "    storage: {hosts: {nas: }}\n    readers: {hosts: {viewer: }}\n",
        "group_vars/readers.yml": "access: read\nstorage_address: nas.example.org\nstorage_port: 2222\n",
    })
    inv = load_inventory(path)
    assert inv.name == "lab"
    viewer = inv.hosts["viewer"].settings
    assert (viewer.access, viewer.storage_address, viewer.storage_port) == ("read", "nas.example.org", 2222)
    assert inv.hosts["nas"].settings.access == "readwrite"


def test_connection_properties(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = make(tmp_path, {"site.yml": """\
        all:
          vars: {project: demo}
          children:
            storage:
              hosts:
                nas:
                  ansible_host: 192.168.1.10
                  ansible_port: "2222"
                  ansible_user: admin
                  ansible_ssh_private_key_file: ~/.ssh/lab_key
                  ansible_become: "Yes"
                  ansible_become_user: operator
            local:
              hosts:
                me: {ansible_connection: local, ansible_become: 0}
        """})
    inv = load_inventory(path)
    nas, me = inv.hosts["nas"], inv.hosts["me"]
    assert (nas.address, nas.port, nas.user, nas.connection) == ("192.168.1.10", 2222, "admin", "ssh")
    assert nas.key_file == str(tmp_path / ".ssh" / "lab_key")
    assert (nas.become, nas.become_user) == (True, "operator")
    assert (me.address, me.port, me.user, me.key_file) == ("me", None, None, None)
    assert (me.connection, me.become, me.become_user) == ("local", False, "root")


def test_inventory_name_must_agree_between_hosts(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": """\
        all:
          vars: {project: demo}
          children:
            storage: {hosts: {nas: }}
            other:
              vars: {inventory_name: elsewhere}
              hosts: {ws: }
        """})
    error = load_error(path)
    assert (error.file, error.line, error.key) == (str(path), line_of(path, "elsewhere"), "inventory_name")
    assert "'elsewhere' differs from the inventory's name 'site'" in str(error)


def test_stem_that_is_no_name_needs_inventory_name(tmp_path: Path) -> None:
    body = "all:\n  vars: {project: demo}\n  children:\n    storage: {hosts: {nas: }}\n"
    path = make(tmp_path, {"my site.yml": body}, inventory="my site.yml")
    error = load_error(path)
    assert error.key == "inventory_name"
    path.write_text(body.replace("project: demo", "project: demo, inventory_name: mysite"))
    assert load_inventory(path).name == "mysite"


# ---------------------------------------------------------------- storage

def test_storage_group_with_no_host_fails_at_load(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": "all:\n  vars: {project: demo}\n  hosts: {ws: }\n"})
    error = load_error(path)
    assert error.file == str(path)
    assert "no host in group 'storage'" in str(error)


def test_two_storage_hosts_are_refused(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": """\
        all:
          vars: {project: demo}
          children:
            storage:
              hosts: {nas1: }
              children:
                more: {hosts: {nas2: }}
        """})
    assert "exactly one host, found 2: nas1, nas2" in str(load_error(path))


def test_explicit_storage_address_loads_without_storage_host(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": "all:\n  vars: {project: demo, storage_address: 10.9.9.9}\n"
                                       "  hosts: {ws: }\n"})
    inv = load_inventory(path)
    assert (inv.hosts["ws"].settings.storage_address, inv.hosts["ws"].settings.storage_port) == ("10.9.9.9", 22)
    with pytest.raises(InputError, match="no host in group 'storage'") as caught:
        _ = inv.storage
    assert caught.value.file == str(path)


# ---------------------------------------------------------------- validation

def vars_inventory(tmp_path: Path, key: str, value: Any) -> Path:
    """An inventory with `key: value` on line 4."""
    first = "color: plain" if key == "project" else "project: demo"
    return make(tmp_path, {"site.yml": f"all:\n  vars:\n    {first}\n    {key}: {json.dumps(value)}\n"
                                       "  children:\n    storage:\n      hosts:\n        nas:\n"})


@pytest.mark.parametrize(("key", "value", "message"), [
    ("storage_port", 70000, "70000 is outside 1..65535"),
    ("storage_port", "ssh", "expected a TCP port number 1..65535, got str 'ssh'"),
    ("storage_port", True, "expected a TCP port"),
    ("ansible_port", 0, "0 is outside 1..65535"),
    ("nfs_root", "mnt/nfs", "is relative: expected an absolute path"),
    ("dvc_storage", "/mnt/nfs/cache; touch /tmp/pwned", "contains ';', which is not allowed in a path"),
    ("dvc_storage", "/mnt/nfs/my cache", "contains ' '"),
    ("server_repo", "/srv/it's", "contains \"'\""),
    ("dvc_venv", "/opt/x\n/y", "contains '\\n'"),
    ("nfs_root", "/mnt/../etc", "contains '..'"),
    ("nfs_root", ["/mnt"], "expected an absolute path, got list"),
    ("workdir", "work/demo", "expected an absolute path or one starting with ~/"),
    ("client_key", "~", "expected an absolute path or one starting with ~/"),
    ("client_key", "~/", "home directory itself"),
    ("shared_cache", "cache", "is relative"),
    ("project", "-rf", "starts with '-'"),
    ("project", "a/b", "contains '/'"),
    ("project", 42, "expected a name"),
    ("project", "..", "is not a name"),
    ("dvc_remote", "data remote", "contains ' '"),
    ("storage_user", "$(id)", "contains '$'"),
    ("git_user", "g" * 33, "longer than 32"),
    ("storage_group", "grp`x`", "contains '`'"),
    ("inventory_name", "a;b", "contains ';'"),
    ("server_cache", "both", "expected one of separate, shared"),
    ("auth", "token", "expected one of key, password"),
    ("access", "write", "expected one of readwrite, read"),
    ("dvc_version", "latest", "not a PEP 440 version specifier"),
    ("dvc_version", "3.5", "not a PEP 440 version specifier"),
    ("dvc_version", "", "empty version specifier"),
    ("git_remote", "relative/repo.git", "neither a path nor a URL"),
    ("git_remote", "http://host/repo.git", "uses scheme 'http'"),
    ("git_remote", "ssh://host/repo.git;rm -rf", "contains ';'"),
    ("git_remote", "https:///repo.git", "needs a host"),
    ("git_remote", "ssh://host:99999/r.git", "not a valid URL"),
    ("git_remote", "file://relative", "no absolute path"),
    ("storage_address", "bad host", "not a hostname or IP address"),
    ("storage_address", "-x.example", "not a hostname or IP address"),
    ("storage_gid", 0, "not a usable group id"),
    ("storage_gid", -5, "not a usable group id"),
    ("storage_gid", "abc", "expected a positive group id"),
    ("cache_types", "reflink,magic", "unknown link type(s) 'magic'"),
    ("cache_types", "copy,copy", "listed twice"),
    ("sshd_reload_command", "systemctl 'reload", "cannot split the command"),
    ("sshd_reload_command", "", "empty command"),
    ("sshd_reload_command", ["kill", "-HUP\n1"], "newline"),
    ("ansible_host", "bad host!", "not a hostname or IP address"),
    ("ansible_connection", "winrm", "provision connects only with ssh"),
    ("ansible_become", "maybe", "expected a boolean"),
    ("ansible_user", "root user", "contains ' '"),
    ("ansible_become_user", "", "is not a name"),
    ("ansible_ssh_private_key_file", "/k\n", "one line"),
    ("nfs_root", "{{ base }}/nfs", "Jinja templates are not evaluated"),
])
def test_invalid_values_name_file_line_and_key(tmp_path: Path, key: str, value: Any, message: str) -> None:
    path = vars_inventory(tmp_path, key, value)
    error = load_error(path)
    assert (error.file, error.line, error.key) == (str(path), 4, key)
    assert message in str(error)
    assert str(error).startswith(f"{path}:4: {key}: ")
    assert "\n" not in str(error)


@pytest.mark.parametrize(("key", "value"), [
    ("git_remote", "/srv/git/demo.git"),
    ("git_remote", "ssh://git@nas.lab:2222/srv/git/demo.git"),
    ("git_remote", "https://github.com/lab/demo.git"),
    ("git_remote", "git://nas/demo.git"),
    ("git_remote", "file:///srv/git/demo.git"),
    ("git_remote", "git@github.com:lab/demo.git"),
    ("storage_address", "10.0.0.1"),
    ("storage_address", "::1"),
    ("storage_address", "nas.lab.example.org"),
    ("dvc_version", "==3.51.0"),
    ("storage_gid", None),
    ("ansible_become", "no"),
    ("color", "any value; even this"),
    ("ansible_python_interpreter", "/usr/bin/python3"),
    ("ansible_prot", 1),
    ("project_owner_team", "ml"),
    ("path", "/data"),
    ("arch", "x86_64"),
])
def test_valid_values_and_users_own_keys(tmp_path: Path, key: str, value: Any) -> None:
    inv = load_inventory(vars_inventory(tmp_path, key, value))
    assert inv.hosts["nas"].vars[key] == value


def test_only_the_value_a_host_uses_is_checked(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": """\
        all:
          vars: {project: demo, storage_port: 0}
          children:
            storage:
              hosts:
                nas: {storage_port: 22}
        """})
    assert load_inventory(path).hosts["nas"].settings.storage_port == 22


@pytest.mark.parametrize(("key", "near"), [
    ("projct", "project"), ("dvc_remot", "dvc_remote"), ("acess", "access"), ("storage_prt", "storage_port"),
    ("atuh", "auth"), ("stroage_user", "storage_user"), ("projects", "project"), ("work_dir", "workdir"),
])
def test_probable_typos_warn_once_with_file_line_and_the_var(tmp_path: Path, key: str, near: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = vars_inventory(tmp_path, key, "x")
    path.write_text(path.read_text() + f"    clients:\n      hosts:\n        ws: {{{key}: y}}\n")
    inv = load_inventory(path)
    assert inv.hosts["nas"].vars[key] == "x"
    assert inv.hosts["nas"].settings.project == "demo"
    err = capsys.readouterr().err
    assert err.count(f"resembles {near!r}") == 1
    assert f"[WARNING]: {path}:4: {key!r} is not a provision var but resembles {near!r}" in err


def test_typo_hints_can_be_silenced(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = vars_inventory(tmp_path, "projects", ["a"])
    load_inventory(path)
    assert "resembles 'project'" in capsys.readouterr().err
    monkeypatch.setenv("PROVISION_NO_TYPO_HINTS", "1")
    load_inventory(path)
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("PROVISION_NO_TYPO_HINTS")
    path.write_text(path.read_text().replace("project: demo", "project: demo\n    provision_typo_hints: false"))
    load_inventory(path)
    assert capsys.readouterr().err == ""


def test_errors_in_vars_files_name_the_file(tmp_path: Path) -> None:
    path = make(tmp_path, {
        "site.yml": "all:\n  children:\n    storage: {hosts: {nas: }}\n",
        "group_vars/all/10.yml": "project: demo\n",
        "group_vars/all/20.yml": "# comment\n\nnfs_root: relative\n",
    })
    error = load_error(path)
    assert (error.file, error.line, error.key) == (str(tmp_path / "group_vars" / "all" / "20.yml"), 3, "nfs_root")


def test_project_is_required(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": "all:\n  children:\n    storage: {hosts: {nas: }}\n"})
    error = load_error(path)
    assert (error.file, error.line, error.key) == (str(path), None, "project")
    assert str(error).startswith(f"{path}: project: required")


@pytest.mark.parametrize(("text", "line", "message"), [
    ("all:\n  vars: [\n", 3, "invalid YAML"),
    ("all:\n  hosts: [a, b]\n", 2, 'Invalid "hosts" entry for "all" group, requires a dictionary'),
    ("all:\n  hosts:\n    nas: text\n", 3, "Invalid data from file, expected dictionary and got: 'text'"),
    ("all:\n  hosts:\n    123:\n", 3, "Host pattern 123 must be a string"),
    ("all:\n  hosts:\n    bad[1:2:x]:\n", 3, "bad host range"),
    ("all:\n  hosts:\n    '':\n", 3, "Invalid empty host name"),
    ("all:\n  children:\n    1:\n", 3, "Invalid group name supplied, expected a string"),
    ("all:\n  children:\n    web: [a, b]\n", 3, "web is not a known host nor group"),
    ("all:\n  children:\n    web:\n      vars: {ansible_group_priority: high}\n", 4, "expected an integer"),
    ("all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n", 5,
     "Adding group 'b' as child to 'a' creates a recursive dependency loop."),
    ("[1, 2]\n", 1, "expected a mapping of groups"),
    ("plugin: constructed\n", 1, "inventory plugin configuration"),
    ("all:\n  vars:\n    ? [a, b]\n    : 1\n", 3, "must be a scalar"),
    ("all:\n  vars:\n    blob: !!binary aGVsbG8=\n", 3, "!!binary values are not supported"),
])
def test_structural_errors(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = make(tmp_path, {"site.yml": text})
    error = load_error(path)
    assert (error.file, error.line) == (str(path), line)
    assert message in str(error)


@pytest.mark.parametrize(("text", "line", "warning"), [
    ("all:\n  vars:\n    color: red\n    color: blue\n", 4,
     "Found duplicate mapping key 'color'. Using last defined value only."),
    ("all:\n  hosts:\n    nas:\n    ws:\n    nas:\n", 5, "Found duplicate mapping key 'nas'."),
    ("all:\n  host:\n    nas:\n", 2,
     'Skipping unexpected key (host) in group (all), only "vars", "children" and "hosts" are valid'),
    ("all:\n  size: 3\n", 2, "Skipping key (size) in group (all) as it is not a mapping, it is a <class 'int'>"),
    ("web: [a, b]\nall:\n  hosts: {nas: }\n", 1, "Skipping 'web' as this is not a valid group definition"),
    ("all:\n  children:\n    'bad group':\n      hosts: {nas: }\n", 3,
     "Invalid characters were found in group names but not replaced, use -vvvv to see details"),
    ("all:\n  vars:\n    7.2: bar\n", 3, "Accepting inventory variable with invalid name 7.2."),
    ("all:\n  hosts:\n    nas: {my-var: 1}\n", 3, "Accepting inventory variable with invalid name 'my-var'."),
])
def test_what_ansible_skips_warns_with_file_and_line(tmp_path: Path, text: str, line: int, warning: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = make(tmp_path, {"site.yml": text})
    load_inventory(path)
    err = capsys.readouterr().err
    assert f"WARNING]: {path}:{line}: {warning}" in err
    assert err.count(warning) == 1


def test_values_ansible_loads_come_out_as_ansible_shows_them(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": """\
        all:
          vars:
            secret: !vault |
              $ANSIBLE_VAULT;1.1;AES256
              3031
            template: !unsafe '{{ x }}'
            tags: !!set {a: null}
            7.2: float name
            true: bool name
            color: red
            color: blue
          hosts:
            příbor:
            "2001:db8::1":
            user@h1:
            web[1:3:-1]:
            db[ab:cd]:
        """})
    inv = load_inventory(path)
    assert list(inv.hosts) == ["příbor", "2001:db8::1", "user@h1", "dba", "dbb", "dbc"]
    shown = inv.to_ansible_list()["_meta"]["hostvars"]["dba"]
    assert shown == {"secret": {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n3031\n"},
                     "template": {"__ansible_unsafe": "{{ x }}"}, "tags": ["a"], "7.2": "float name",
                     "true": "bool name", "color": "blue"}
    json.dumps(inv.to_ansible_list())


def test_empty_inventory(tmp_path: Path) -> None:
    assert "the inventory is empty" in str(load_error(make(tmp_path, {"site.yml": "# nothing\n"})))


def test_vault_encrypted_vars_file(tmp_path: Path) -> None:
    path = make(tmp_path, {
        "site.yml": "all:\n  vars: {project: demo}\n  children:\n    storage: {hosts: {nas: }}\n",
        "group_vars/all.yml": "$ANSIBLE_VAULT;1.1;AES256\n6162\n",
    })
    error = load_error(path)
    assert error.file == str(tmp_path / "group_vars" / "all.yml")
    assert "ansible-vault" in str(error)


def test_vars_file_must_be_a_mapping(tmp_path: Path) -> None:
    path = make(tmp_path, {
        "site.yml": "all:\n  vars: {project: demo}\n  children:\n    storage: {hosts: {nas: }}\n",
        "host_vars/nas.yml": "- a\n- b\n",
    })
    error = load_error(path)
    assert (error.file, error.line) == (str(tmp_path / "host_vars" / "nas.yml"), 1)


def test_group_vars_that_is_no_directory_is_skipped_with_a_warning(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = make(tmp_path, {
        "site.yml": "all:\n  vars: {project: demo}\n  children:\n    storage: {hosts: {nas: }}\n",
        "group_vars": "x: 1\n",
    })
    assert "x" not in load_inventory(path).hosts["nas"].vars
    assert "Found group_vars that is not a directory, skipping" in capsys.readouterr().err


def test_bad_yaml_in_vars_file(tmp_path: Path) -> None:
    path = make(tmp_path, {
        "site.yml": "all:\n  vars: {project: demo}\n  children:\n    storage: {hosts: {nas: }}\n",
        "group_vars/storage.yml": "a: 1\nb: [\n",
    })
    error = load_error(path)
    assert error.file == str(tmp_path / "group_vars" / "storage.yml")
    assert error.line == 3 and "invalid YAML" in str(error)


# ---------------------------------------------------------------- finding the inventory

def test_inventory_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make(tmp_path, {"site.yml": "all:\n  vars: {project: demo}\n  children:\n    storage: {hosts: {nas: }}\n"})
    monkeypatch.setenv("PROVISION_INVENTORY", str(path))
    assert load_inventory(None).path == path
    monkeypatch.delenv("PROVISION_INVENTORY")
    with pytest.raises(InputError, match="pass -i/--inventory FILE or set PROVISION_INVENTORY"):
        load_inventory(None)


def test_missing_directory_and_wrong_type(tmp_path: Path) -> None:
    assert "not found" in str(load_error(tmp_path / "none.yml"))
    assert "is a directory" in str(load_error(tmp_path))
    ini = make(tmp_path, {"hosts.ini": "[storage]\nnas\n"}, inventory="hosts.ini")
    assert "unsupported inventory type '.ini'" in str(load_error(ini))


# ---------------------------------------------------------------- patterns through the inventory

SELECT = """\
all:
  vars: {project: demo}
  children:
    storage:
      hosts: {nas: }
    workstations:
      hosts: {ws01: , ws02: , ws10: }
    gpu:
      hosts: {gpu01: , ws02: }
"""


@pytest.mark.parametrize(("pattern", "expected"), [
    (None, ["nas", "ws01", "ws02", "ws10", "gpu01"]),
    ("all", ["nas", "ws01", "ws02", "ws10", "gpu01"]),
    ("*", ["nas", "ws01", "ws02", "ws10", "gpu01"]),
    ("ws01", ["ws01"]),
    ("ws0*", ["ws01", "ws02"]),
    ("gpu", ["ws02", "gpu01"]),
    ("gpu:nas", ["nas", "ws02", "gpu01"]),
    ("gpu,ws01", ["ws01", "ws02", "gpu01"]),
    ("workstations:!gpu", ["ws01", "ws10"]),
    ("workstations:&gpu", ["ws02"]),
    ("~ws\\d0", ["ws10"]),
    ("!storage", ["ws01", "ws02", "ws10", "gpu01"]),
])
def test_select(tmp_path: Path, pattern: str | None, expected: list[str]) -> None:
    inv = load_inventory(make(tmp_path, {"site.yml": SELECT}))
    assert [host.name for host in inv.select(pattern)] == expected


@pytest.mark.parametrize("pattern", ["nothing", "gpu:&storage", "ws9*", "all:!all"])
def test_select_without_match_is_an_input_error(tmp_path: Path, pattern: str) -> None:
    inv = load_inventory(make(tmp_path, {"site.yml": SELECT}))
    with pytest.raises(InputError, match="no host matches --limit"):
        inv.select(pattern)


def test_select_refuses_limit_files(tmp_path: Path) -> None:
    inv = load_inventory(make(tmp_path, {"site.yml": SELECT}))
    with pytest.raises(InputError, match="limit files"):
        inv.select("@retry.txt")


# ---------------------------------------------------------------- ansible-inventory shapes

def test_to_ansible_list_and_graph(tmp_path: Path) -> None:
    path = make(tmp_path, {"site.yml": """\
        all:
          vars: {project: demo}
          hosts: {loner: }
          children:
            storage:
              hosts: {nas: {ansible_host: 10.0.0.1, inventory_file: hidden}}
            web:
              children:
                gpu: {hosts: {g1: }}
              hosts: {w1: }
            empty:
        """})
    inv = load_inventory(path)
    assert inv.to_ansible_list() == {
        "_meta": {"hostvars": {
            "loner": {"project": "demo"},
            "nas": {"project": "demo", "ansible_host": "10.0.0.1"},
            "g1": {"project": "demo"},
            "w1": {"project": "demo"},
        }, "profile": "inventory_legacy"},
        "all": {"children": ["ungrouped", "storage", "web", "empty"]},
        "ungrouped": {"hosts": ["loner"]},
        "storage": {"hosts": ["nas"]},
        "web": {"hosts": ["w1"], "children": ["gpu"]},
        "gpu": {"hosts": ["g1"]},
    }
    assert inv.graph() == "\n".join([
        "@all:",
        "  |--@ungrouped:",
        "  |  |--loner",
        "  |--@storage:",
        "  |  |--nas",
        "  |--@web:",
        "  |  |--@gpu:",
        "  |  |  |--g1",
        "  |  |--w1",
        "  |--@empty:",
    ])


def test_example_inventory() -> None:
    inv = load_inventory(REPO / "inventories" / "example.yml")
    assert inv.name == "example-site"
    assert inv.storage.name == "nas01"
    assert inv.storage.become
    readers = {host.name for host in inv.select("readers")}
    assert readers == {"dashboard01", "ws03"}
    assert all(inv.hosts[name].settings.access == "read" for name in readers)
    assert inv.hosts["ws01"].settings.access == "readwrite"
    assert inv.hosts["gpu01"].settings.shared_cache == "/mnt/nfs/cache"
    assert inv.hosts["gpu02"].port == 2202
    assert inv.hosts["gpu02"].settings.workdir == "/scratch/vision-data"
    assert inv.hosts["ws02"].settings.storage_address == "10.20.0.10"
    assert inv.hosts["ws02"].settings.storage_gid == 2400
    assert [host.name for host in inv.clients] == ["ws01", "ws02", "ws03", "gpu01", "gpu02", "dashboard01"]
