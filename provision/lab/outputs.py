"""What a lab hands to its users: an Ansible inventory of its hosts, their host-key pins beside it, and
an OpenSSH command line that trusts those pins only; the tool then talks to the lab as to any fleet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from provision.lab.processes import SSHD_RELOAD_COMMAND
from provision.local_files import atomic_write
from provision.render import render


@dataclass(frozen=True)
class PublishedHost:
    """A host as the inventory and the pins name it: all are 127.0.0.1, the port tells them apart."""

    name: str
    port: int
    host_keys: list[str]


def write_inventory(path: Path, *, lab_dir: Path, project: str, controller_key: Path,
                    hosts: Sequence[PublishedHost]) -> None:
    """The inventory: the first host is the storage host, the others are clients, all reached as root."""
    atomic_write(path, render("lab/inventory.yml.j2", lab_dir=lab_dir, project=project,
                              sshd_reload_command=SSHD_RELOAD_COMMAND, controller_key=controller_key,
                              storage=hosts[0], clients=hosts[1:]), 0o644)


def write_pins(path: Path, *, lab_dir: Path, hosts: Sequence[PublishedHost]) -> None:
    """The inventory's host-key pins (`<stem>.known_hosts`), a plain OpenSSH known_hosts file."""
    atomic_write(path, render("lab/known_hosts.j2", lab_dir=lab_dir, hosts=hosts), 0o644)


def ssh_argv(pins: Path, key: Path, port: int, user: str) -> list[str]:
    """OpenSSH argv that reaches 127.0.0.1:port with the pins only and this key; append the remote command."""
    return ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={pins}", "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-i", str(key), "-p", str(port), f"{user}@127.0.0.1"]
