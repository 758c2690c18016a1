"""Values written into files stay on one line; addresses (IPv6 scope ids included) are strict at load."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import paramiko
import pytest

from provision.dvc_config import config_text, merge_config
from provision.errors import InputError
from provision.inventory import load_inventory
from provision.known_hosts_file import KnownHosts
from provision.render import MultiLineValue, one_line, render
from provision.tasks.authorized_keys import SFTP, key_line
from provision.tasks.storage_host_key import pinned_known_hosts

INJECTED = "fe80::1%lo\n[nas]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAttackerKey"


def inventory_with(tmp_path: Path, key: str, value: str) -> Path:
    path = tmp_path / "site.yml"
    path.write_text(f"all:\n  vars:\n    project: demo\n    {key}: {json.dumps(value)}\n"
                    "  children:\n    storage:\n      hosts:\n        nas:\n")
    return path


@pytest.mark.parametrize("key", ["storage_address", "ansible_host"])
@pytest.mark.parametrize("value", [INJECTED, "fe80::1%eth0 x", "fe80::1%eth0'", "fe80::1%eth0\r", "fe80::1%e\0"])
def test_ipv6_scope_id_with_other_characters_is_refused(tmp_path: Path, key: str, value: str) -> None:
    path = inventory_with(tmp_path, key, value)
    inventory = load_inventory(path)
    with pytest.raises(InputError) as caught:
        inventory.check_targets([inventory.hosts["nas"]])
        _ = inventory.hosts["nas"].settings
    assert str(caught.value).startswith(f"{path}:4: {key}: ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("value", ["fe80::1%eth0", "fe80::1%enp3s0.100", "fe80::1%2", "fe80::1%br_lan-1"])
def test_plain_ipv6_scope_ids_load(tmp_path: Path, value: str) -> None:
    inventory = load_inventory(inventory_with(tmp_path, "storage_address", value))
    assert inventory.hosts["nas"].settings.storage_address == value


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b", "trailing\n", "a\fb", "a\vb", "a\x1cb", "a\x85b",
                                 "a\u2028b", "a\u2029b"])
def test_one_line_refuses_breaks_without_showing_the_value(bad: str) -> None:
    with pytest.raises(MultiLineValue) as caught:
        one_line(bad, "storage_password")
    assert "storage_password" in str(caught.value)
    assert bad.strip() not in str(caught.value)
    assert one_line("fine value", "x") == "fine value"


def test_a_value_configobj_would_split_is_refused_before_it_reaches_config_local() -> None:
    """DVC reads config.local with configobj, which splits on \\u2028 too: such a value could add a section."""
    with pytest.raises(MultiLineValue):
        config_text({'remote "storage"': {"password": 'x\u2028[remote "evil"]\u2028url = ssh://elsewhere/'}}, [])


def test_every_template_value_is_checked() -> None:
    with pytest.raises(MultiLineValue, match=r"client/authorized_keys_line\.j2"):
        key_line(SFTP, "ssh-ed25519 AAAA", "provision:site:ws1\nssh-ed25519 AAAAevil")
    with pytest.raises(MultiLineValue, match=r"git_shell/no-interactive-login\.j2"):
        render("git_shell/no-interactive-login.j2", user="git\nexec sh")


def test_dvc_config_values_are_checked() -> None:
    remote = 'remote "storage"'
    with pytest.raises(MultiLineValue, match="url"):
        config_text({remote: {"url": "ssh://nas:22/x\n[core]\n    no_scm = true"}})
    assert "    url = ssh://nas:22/srv/dvc\n" in config_text({remote: {"url": "ssh://nas:22/srv/dvc"}})


def test_config_local_values_are_checked() -> None:
    with pytest.raises(MultiLineValue, match="password"):
        merge_config(None, {'remote "storage"': {"password": "pw\n[core]\nremote = evil"}}, {})


def test_known_hosts_names_are_checked(tmp_path: Path) -> None:
    key = paramiko.Ed25519Key.from_private_key_file(str(_key(tmp_path)))
    with pytest.raises(MultiLineValue):
        pinned_known_hosts("", "[nas\nevil]:22", [key])
    pins = KnownHosts(tmp_path / "site.known_hosts")
    with pytest.raises(MultiLineValue):
        pins.add("nas\nevil", 22, key)


def _key(directory: Path) -> Path:
    """A fresh ed25519 private key file (paramiko cannot generate ed25519 keys itself)."""
    path = directory / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path
