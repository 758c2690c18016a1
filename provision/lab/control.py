"""`Lab`: one lab in one directory, its record (DIR/lab.json) and the commands that change it.

`up` creates the lab (keys, each host's private files, the inventory and its pins) and starts the hosts;
`start`, `stop`, `rekey` and `down` act on hosts that exist; `exec` runs a command inside a host. How a
host's files are laid out is provision.lab.host_tree's, how its processes run provision.lab.processes'.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provision.errors import InputError, ProvisionError
from provision.lab import outputs, processes
from provision.lab.host_tree import ADMIN_USER, NFS_EXPORT, HostTree, shareable_dvc_venv
from provision.lab.tools import failure, require_prerequisites, run_tool
from provision.local_files import atomic_write

_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class HostStatus:
    """One line of `lab status`."""

    name: str
    group: str
    port: int
    pid: int | None
    running: bool


class Lab:
    """A lab in one directory: its facts live in DIR/lab.json, each host's files in DIR/hosts/<name>/."""

    def __init__(self, directory: str | os.PathLike[str] = "lab") -> None:
        self.dir = Path(directory).resolve()
        self.warnings: list[str] = []
        self.started: list[str] = []
        self._facts: dict[str, Any] | None = None

    # -- paths and facts -------------------------------------------------------------------------

    @property
    def facts_path(self) -> Path:
        return self.dir / "lab.json"

    @property
    def inventory_path(self) -> Path:
        return self.dir / "inventory.yml"

    @property
    def known_hosts_path(self) -> Path:
        return self.dir / "inventory.known_hosts"

    @property
    def controller_key(self) -> Path:
        return self.dir / "controller_ed25519"

    @property
    def admin_key(self) -> Path:
        return self.dir / "admin_ed25519"

    @property
    def admin_password_file(self) -> Path:
        return self.dir / f"{ADMIN_USER}.password"

    @property
    def admin_user(self) -> str:
        return ADMIN_USER

    @property
    def exists(self) -> bool:
        return self.facts_path.is_file()

    @property
    def facts(self) -> dict[str, Any]:
        if self._facts is None:
            if not self.exists:
                raise InputError(f"no lab in {self.dir}: start one with `provision lab up --dir {self.dir}`")
            self._facts = json.loads(self.facts_path.read_text())
        return self._facts

    @property
    def hosts(self) -> list[str]:
        return [host["name"] for host in self.facts["hosts"]]

    @property
    def storage_host(self) -> str:
        return self.hosts[0]

    @property
    def shared_dvc(self) -> Path | None:
        """The controller venv whose dvc hosts run from their own venv at /opt/provision/dvc, if shared."""
        venv = self.facts["dvc_venv"]
        return Path(venv) if venv else None

    def host_dir(self, host: str) -> Path:
        return self.dir / "hosts" / host

    def _tree(self, host: str) -> HostTree:
        return HostTree(host, self.host_dir(host))

    def host_path(self, host: str, path: str) -> Path:
        """Where a path inside a host lives on the controller, for private paths (`/etc/passwd`...)."""
        return self._tree(host).path(path)

    def log_path(self, host: str) -> Path:
        """The host's sshd log: in its private /run (DIR/hosts/<name>/sshd.log links to it)."""
        return self._tree(host).log

    def _host_facts(self, host: str) -> dict[str, Any]:
        for facts in self.facts["hosts"]:
            if facts["name"] == host:
                return facts
        raise InputError(f"no host {host!r} in the lab in {self.dir} (hosts: {', '.join(self.hosts)})")

    def port(self, host: str) -> int:
        return int(self._host_facts(host)["port"])

    def pid(self, host: str) -> int | None:
        """The pid of the host's running sshd, or None when it is stopped."""
        recorded = self._host_facts(host)["pid"]
        return recorded if recorded and processes.is_host_sshd(self._tree(host), recorded) else None

    def _save_facts(self) -> None:
        atomic_write(self.facts_path, json.dumps(self.facts, indent=2) + "\n", 0o644)

    # -- commands ----------------------------------------------------------------------------------

    def up(self, hosts: Sequence[str], *, shared_nfs: bool = False, project: str = "demo",
           share_dvc: bool | None = None) -> Lab:
        """Create and start the lab, or start the stopped hosts of the lab already in this directory.

        The first host is the storage host. share_dvc: True requires sharing the running venv's dvc
        with the hosts, None shares it when possible (else adds a warning), False never shares it.
        """
        require_prerequisites()
        hosts = list(hosts)
        _check_names(hosts, project)
        self.started = []
        if self.exists:
            self._check_same_lab(hosts, shared_nfs, project)
            for host in self.hosts:
                if self.pid(host) is None:
                    self._start(host)
                    self.started.append(host)
            return self
        if self.dir.exists() and any(self.dir.iterdir()):
            raise InputError(f"{self.dir} exists and holds no lab: choose another --dir")
        dvc_venv = shareable_dvc_venv(share_dvc, self.warnings)
        created_dir = not self.dir.exists()
        try:
            self._create(hosts, shared_nfs=shared_nfs, project=project, dvc_venv=dvc_venv)
            for host in hosts:
                self._start(host)
                self.started.append(host)
            _for_each_host(self._add_admin, hosts)
        except BaseException:
            self._undo_create(created_dir)
            raise
        return self

    def start(self, host: str) -> None:
        """Start a stopped host again, with its port, keys and private directories."""
        require_prerequisites()
        if self.pid(host) is None:
            self._start(host)

    def stop(self, host: str) -> None:
        """Stop a host's sshd and every process inside that host; it stays in the inventory."""
        require_prerequisites()
        self._stop(host)

    def rekey(self, host: str) -> None:
        """Give a host new host keys and restart it; the pins file keeps the old keys on purpose."""
        require_prerequisites()
        was_running = self.pid(host) is not None
        self._stop(host)
        self._tree(host).new_host_keys()
        if was_running:
            self._start(host)

    def down(self, *, purge: bool = False) -> None:
        """Stop every host; with purge, also remove the lab directory (nothing outside it)."""
        require_prerequisites()
        for host in self.hosts:
            self._stop(host)
        if purge:
            shutil.rmtree(self.dir)
            self._facts = None

    def status(self) -> list[HostStatus]:
        statuses = []
        for host in self.facts["hosts"]:
            pid = self.pid(host["name"])
            statuses.append(HostStatus(name=host["name"], group=host["group"], port=host["port"], pid=pid,
                                       running=pid is not None))
        return statuses

    def exec(self, host: str, argv: Sequence[str], *, input: str | None = None,
             check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run argv as root inside a running host's namespaces (its /etc, /home, hostname...)."""
        pid = self.pid(host)
        if pid is None:
            raise ProvisionError(f"lab host {host} is stopped: `provision lab start {host} --dir {self.dir}`")
        return processes.enter(pid, argv, input=input, check=check)

    def ssh_command(self, host: str, *, user: str = "root", key: Path | None = None) -> list[str]:
        """OpenSSH argv that reaches host with the lab's pins only; append the remote command."""
        return outputs.ssh_argv(self.known_hosts_path, key or self.controller_key, self.port(host), user)

    # -- creation ------------------------------------------------------------------------------------

    def processes(self, host: str) -> list[int]:
        """The pids of every process running inside the host (its sshd, sessions and what they started)."""
        return list(processes.host_processes(self._tree(host)))

    def _check_same_lab(self, hosts: list[str], shared_nfs: bool, project: str) -> None:
        asked = {"hosts": hosts, "shared_nfs": shared_nfs, "project": project}
        recorded = {"hosts": self.hosts, "shared_nfs": self.facts["shared_nfs"], "project": self.facts["project"]}
        if asked != recorded:
            differences = ", ".join(f"{key} {recorded[key]!r} (asked {asked[key]!r})"
                                    for key in asked if asked[key] != recorded[key])
            raise InputError(f"the lab in {self.dir} has {differences}: use it as it is, or "
                             f"`provision lab down --purge --dir {self.dir}` first")

    def _create(self, hosts: list[str], *, shared_nfs: bool, project: str, dvc_venv: Path | None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        Path(NFS_EXPORT).mkdir(mode=0o755, parents=True, exist_ok=True)  # mount point on the machine
        for key, comment in ((self.controller_key, "provision-lab-controller"),
                             (self.admin_key, f"provision-lab-{ADMIN_USER}")):
            run_tool(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
                     what=f"ssh-keygen {key}")
        atomic_write(self.admin_password_file, secrets.token_urlsafe(24) + "\n", 0o600)
        ports = _free_ports(len(hosts))
        self._facts = {
            "version": 1,
            "dir": str(self.dir),
            "project": project,
            "shared_nfs": shared_nfs,
            "dvc_venv": str(dvc_venv) if dvc_venv else None,
            "admin_user": ADMIN_USER,
            "hosts": [{"name": host, "group": "storage" if index == 0 else "clients", "port": port, "pid": None}
                      for index, (host, port) in enumerate(zip(hosts, ports, strict=True))],
            "paths": {"inventory": str(self.inventory_path), "known_hosts": str(self.known_hosts_path),
                      "controller_key": str(self.controller_key), "admin_key": str(self.admin_key),
                      "admin_password_file": str(self.admin_password_file)},
        }
        controller_public_key = _public_key(self.controller_key)
        _for_each_host(lambda host: self._tree(host).create(port=self.port(host), dvc_venv=self.shared_dvc,
                                                            controller_public_key=controller_public_key), hosts)
        self._save_facts()
        published = [outputs.PublishedHost(host, self.port(host), self._tree(host).host_public_keys())
                     for host in hosts]
        outputs.write_inventory(self.inventory_path, lab_dir=self.dir, project=project,
                                controller_key=self.controller_key, hosts=published)
        outputs.write_pins(self.known_hosts_path, lab_dir=self.dir, hosts=published)

    def _add_admin(self, host: str) -> None:
        """The sudo-capable admin, with the lab's password; root becomes key-only (`*`)."""
        password = self.admin_password_file.read_text().strip()
        for argv in (["/usr/sbin/usermod", "--password", "*", "root"],
                     ["/usr/sbin/useradd", "--create-home", "--shell", "/bin/bash",
                      "--comment", "provision lab admin", ADMIN_USER]):
            self._exec_checked(host, argv)
        self._exec_checked(host, ["/usr/sbin/chpasswd"], input=f"{ADMIN_USER}:{password}\n")
        tree = self._tree(host)
        tree.authorize_key(f"/home/{ADMIN_USER}", *tree.user_ids(ADMIN_USER), _public_key(self.admin_key))

    def _exec_checked(self, host: str, argv: list[str], input: str | None = None) -> None:
        result = self.exec(host, argv, input=input)
        if result.returncode != 0:
            raise failure(f"lab host {host}: {argv[0]}", result)

    def _undo_create(self, created_dir: bool) -> None:
        """After a failed `up`: stop what started; remove what this call created."""
        if self._facts is not None:
            for host in self.hosts:
                self._stop(host)
        if created_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            for entry in self.dir.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()
        self._facts = None

    # -- processes -----------------------------------------------------------------------------------

    def _start(self, host: str) -> None:
        nfs_export_of = self._tree(self.storage_host if self.facts["shared_nfs"] else host)
        tree = self._tree(host)
        self._host_facts(host)["pid"] = processes.start_sshd(tree, tree.binds(nfs_export_of), self.port(host))
        self._save_facts()

    def _stop(self, host: str) -> None:
        processes.stop_host(self._tree(host), self.pid(host))
        self._host_facts(host)["pid"] = None
        self._save_facts()


def _public_key(private_key: Path) -> str:
    return private_key.with_name(private_key.name + ".pub").read_text()


def _free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (all held open at once, so no two are the same)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _for_each_host(work: Callable[[str], None], hosts: Sequence[str]) -> None:
    """Run work for every host at once: creating a host is mostly waiting for the filesystem."""
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        for done in [pool.submit(work, host) for host in hosts]:
            done.result()


def _check_names(hosts: list[str], project: str) -> None:
    if not hosts:
        raise InputError("a lab needs at least one host (the first one is the storage host)", key="hosts")
    for host in hosts:
        if not _HOST_NAME.match(host):
            raise InputError(f"{host!r} is not a host name (lowercase letters, digits, '-')", key="hosts")
    if len(set(hosts)) != len(hosts):
        raise InputError(f"host names repeat in {', '.join(hosts)}", key="hosts")
    if not _PROJECT_NAME.match(project):
        raise InputError(f"{project!r} is not a project name (letters, digits, '.', '_', '-')", key="project")
