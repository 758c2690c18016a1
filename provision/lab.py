"""A local lab of real OpenSSH hosts on 127.0.0.1, for demos and integration tests.

Each host is one `/usr/sbin/sshd -D` in its own mount and UTS namespace: it has its own hostname, a private
copy of /etc (its own users and host keys) and private /home, /root, /opt, /usr/local, /run, /tmp, /var/tmp
and /mnt/nfs, all directories under DIR/hosts/<name>/; the rest of the machine is shared. The lab writes
an Ansible inventory and its host-key pins, so that the tool talks to the lab as to any fleet.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import venv
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provision.errors import InputError, ProvisionError
from provision.render import render

SSHD = "/usr/sbin/sshd"
SUDO = "/usr/bin/sudo"
ADMIN_USER = "labadmin"
HOST_KEY_TYPES = ("ed25519", "ecdsa")
# Paths each host keeps to itself, in the order they are bind-mounted; everything else is the machine's.
PRIVATE_PATHS = ("/etc", "/home", "/root", "/opt", "/usr/local", "/run", "/tmp", "/var/tmp", "/mnt/nfs")
PRIVATE_PATH_MODES = {"/root": 0o700, "/tmp": 0o1777, "/var/tmp": 0o1777}
USR_LOCAL_SKELETON = ("bin", "etc", "include", "lib", "sbin", "share", "src")
NFS_EXPORT = "/mnt/nfs"
#: Each host's own virtualenv, whose dvc is the controller venv's (the inventory's default dvc_venv).
HOST_DVC_VENV = "/opt/provision/dvc"
SSHD_LOG = "/run/sshd.log"
# Inside a host; the log lands in DIR/hosts/<name>/run/sshd.log.
SSHD_ARGV = (SSHD, "-D", "-f", "/etc/ssh/sshd_config", "-E", SSHD_LOG)
# How a host's sshd re-reads its config, run on that host: check the config first, as Debian's
# `systemctl reload ssh` does, since sshd exits on a SIGHUP with a broken config.
SSHD_RELOAD_COMMAND = "sh -c '/usr/sbin/sshd -t && kill -HUP \"$(cat /run/sshd.pid)\"'"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TOOLS = (("unshare", "util-linux"), ("nsenter", "util-linux"), ("mount", "mount"),
          ("ssh-keygen", "openssh-client"), ("/usr/sbin/useradd", "passwd"), ("/usr/sbin/usermod", "passwd"),
          ("/usr/sbin/chpasswd", "passwd"))


@dataclass(frozen=True)
class HostStatus:
    """One line of `lab status`."""

    name: str
    group: str
    port: int
    pid: int | None
    running: bool


def _install_sudo() -> None:
    """The lab's admin account needs sudo; on Debian it is installed, elsewhere the user is told."""
    if shutil.which("apt-get") is None:
        raise InputError(f"provision lab needs {SUDO}: install the sudo package")
    print("provision lab: installing sudo (apt-get install sudo)", file=sys.stderr)
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "sudo"]):
        if subprocess.run(argv, env=environment, capture_output=True, check=False).returncode != 0:
            raise InputError(f"provision lab needs {SUDO} and `{' '.join(argv)}` failed: install sudo by hand")


def require_prerequisites() -> None:
    """Refuse, in one line saying what is needed, where the lab cannot run."""
    if not sys.platform.startswith("linux"):
        raise InputError("provision lab needs Linux: it runs sshd in mount and UTS namespaces")
    if os.geteuid() != 0:
        raise InputError("provision lab needs root: it creates mount namespaces and runs sshd; "
                         "run it as root (e.g. with sudo)")
    if not Path(SSHD).is_file():
        raise InputError(f"provision lab needs {SSHD}: apt-get install openssh-server")
    if not Path(SUDO).is_file():
        _install_sudo()
    for tool, package in _TOOLS:
        if shutil.which(tool) is None:
            raise InputError(f"provision lab needs {tool}: apt-get install {package}")


def _under(path: Path, ancestor: str) -> bool:
    return path == Path(ancestor) or Path(ancestor) in path.parents


def _private_ancestor(path: Path) -> str | None:
    return next((private for private in PRIVATE_PATHS if _under(path, private)), None)


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


def _run(argv: list[str], *, what: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run argv; on failure raise a ProvisionError naming what failed (never the input: it may be secret)."""
    result = subprocess.run(argv, input=input, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise _failure(what, result)
    return result


def _failure(what: str, result: subprocess.CompletedProcess[str]) -> ProvisionError:
    """`WHAT failed (exit N)` and the last line it printed, which names the cause."""
    detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return ProvisionError(f"{what} failed (exit {result.returncode})" + (f": {detail[-1]}" if detail else ""))


def _write_file(path: Path, text: str, mode: int, uid: int = 0, gid: int = 0) -> None:
    """Write text atomically with exactly this owner and mode."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w") as handle:
        os.fchown(handle.fileno(), uid, gid)
        os.fchmod(handle.fileno(), mode)
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _process_state(pid: int) -> str | None:
    """The /proc state letter of pid, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    return _process_state(pid) not in (None, "Z", "X")


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

    def host_path(self, host: str, path: str) -> Path:
        """Where a path inside a host lives on the controller, for private paths (`/etc/passwd`...)."""
        return self.host_dir(host) / path.lstrip("/")

    def log_path(self, host: str) -> Path:
        """The host's sshd log: in its private /run (DIR/hosts/<name>/sshd.log links to it)."""
        return self.host_path(host, SSHD_LOG)

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
        return recorded if recorded and self._is_lab_sshd(host, recorded) else None

    def _save_facts(self) -> None:
        _write_file(self.facts_path, json.dumps(self.facts, indent=2) + "\n", 0o644)

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
        dvc_venv = self._dvc_venv_to_share(share_dvc)
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
        for old_key in self.host_path(host, "/etc/ssh").glob("ssh_host_*"):
            old_key.unlink()
        self._generate_host_keys(host)
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
        return subprocess.run(["nsenter", "--target", str(pid), "--mount", "--uts", "--", *argv],
                              input=input, capture_output=True, text=True, check=check)

    def ssh_command(self, host: str, *, user: str = "root", key: Path | None = None) -> list[str]:
        """OpenSSH argv that reaches host with the lab's pins only; append the remote command."""
        return ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts_path}", "-o", "IdentitiesOnly=yes",
                "-o", "IdentityAgent=none", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                "-i", str(key or self.controller_key), "-p", str(self.port(host)), f"{user}@127.0.0.1"]

    # -- creation ------------------------------------------------------------------------------------

    def _check_same_lab(self, hosts: list[str], shared_nfs: bool, project: str) -> None:
        asked = {"hosts": hosts, "shared_nfs": shared_nfs, "project": project}
        recorded = {"hosts": self.hosts, "shared_nfs": self.facts["shared_nfs"], "project": self.facts["project"]}
        if asked != recorded:
            differences = ", ".join(f"{key} {recorded[key]!r} (asked {asked[key]!r})"
                                    for key in asked if asked[key] != recorded[key])
            raise InputError(f"the lab in {self.dir} has {differences}: use it as it is, or "
                             f"`provision lab down --purge --dir {self.dir}` first")

    def _dvc_venv_to_share(self, share_dvc: bool | None) -> Path | None:
        """The running venv when lab hosts can run its dvc; see docs/architecture.md, Tests."""
        if share_dvc is False:
            return None
        venv = Path(sys.prefix).resolve()
        reason = None
        if sys.prefix == sys.base_prefix:
            reason = f"{sys.executable} does not run in a virtualenv"
        elif not (venv / "bin" / "dvc").is_file():
            reason = f"{venv}/bin/dvc is missing"
        elif hidden := _private_ancestor(venv):
            reason = f"the venv {venv} is under {hidden}, which is private in lab hosts"
        elif hidden := _private_ancestor(_venv_base_interpreter_dir(venv)):
            reason = f"the venv's Python comes from under {hidden}, which is private in lab hosts"
        if reason is None:
            return venv
        advice = (f"{reason}; the venv must be made with /usr/bin/python3 outside "
                  f"{', '.join(p for p in PRIVATE_PATHS if p != '/etc')}")
        if share_dvc:
            raise InputError(f"cannot share dvc with the lab hosts: {advice}")
        self.warnings.append(f"dvc not shared with the lab hosts ({advice})")
        return None

    def _create(self, hosts: list[str], *, shared_nfs: bool, project: str, dvc_venv: Path | None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        Path(NFS_EXPORT).mkdir(mode=0o755, parents=True, exist_ok=True)  # mount point on the machine
        for key, comment in ((self.controller_key, "provision-lab-controller"),
                             (self.admin_key, f"provision-lab-{ADMIN_USER}")):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
                 what=f"ssh-keygen {key}")
        descriptor = os.open(self.admin_password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
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
        _for_each_host(self._create_host, hosts)
        self._save_facts()
        self._write_inventory()

    def _create_host(self, host: str) -> None:
        root = self.host_dir(host)
        root.mkdir(parents=True)
        _run(["cp", "-a", "/etc", str(root / "etc")], what=f"copying /etc for lab host {host}")
        for path in PRIVATE_PATHS[1:]:
            private = self.host_path(host, path)
            private.mkdir(parents=True, exist_ok=True)
            private.chmod(PRIVATE_PATH_MODES.get(path, 0o755))
        self.host_path(host, "/run/sshd").mkdir(mode=0o755)
        (root / "sshd.log").symlink_to(self.log_path(host).relative_to(root))
        for name in USR_LOCAL_SKELETON:
            self.host_path(host, f"/usr/local/{name}").mkdir(mode=0o755)
        _write_file(self.host_path(host, "/etc/hostname"), f"{host}\n", 0o644)
        hosts_file = self.host_path(host, "/etc/hosts")
        _write_file(hosts_file, hosts_file.read_text() + f"127.0.1.1\t{host}\n", 0o644)
        drop_ins = self.host_path(host, "/etc/ssh/sshd_config.d")
        for drop_in in drop_ins.iterdir():  # the machine's drop-ins would make hosts differ by machine
            drop_in.unlink()
        _write_file(self.host_path(host, "/etc/ssh/sshd_config"),
                    render("lab/sshd_config.j2", host=host, port=self.port(host), host_key_types=HOST_KEY_TYPES),
                    0o644)
        for old_key in self.host_path(host, "/etc/ssh").glob("ssh_host_*"):
            old_key.unlink()
        self._generate_host_keys(host)
        _write_file(self.host_path(host, "/etc/sudoers.d/provision-lab"),
                    render("lab/sudoers.j2", admin_user=ADMIN_USER), 0o440)
        root_ssh = self.host_path(host, "/root/.ssh")
        root_ssh.mkdir(mode=0o700)
        _write_file(root_ssh / "authorized_keys", self._public_key(self.controller_key), 0o600)
        if self.shared_dvc:
            self._lend_dvc(host, self.shared_dvc)

    def _lend_dvc(self, host: str, controller_venv: Path) -> None:
        """A virtualenv of the host's own at /opt/provision/dvc whose dvc is the controller venv's packages.

        Its site-packages names the controller venv's with a `.pth` path line, so nothing is installed twice,
        and what provision installs into a host's dvc_venv (its dvc-ssh guard) stays in that host, as on a
        real machine, instead of landing in the controller venv that every lab shares.
        """
        host_venv = self.host_path(host, HOST_DVC_VENV)
        venv.EnvBuilder(symlinks=True, with_pip=False).create(host_venv)
        for directory in (host_venv.parent, host_venv, *host_venv.rglob("*")):
            if directory.is_dir() and not directory.is_symlink():
                directory.chmod(0o755)  # whatever the umask: root installs only where nobody else writes
        python = f"python{sys.version_info.major}.{sys.version_info.minor}"
        controller_packages = sysconfig.get_path("purelib", vars={"base": str(controller_venv),
                                                                   "platbase": str(controller_venv)})
        _write_file(host_venv / "lib" / python / "site-packages" / "provision-lab-dvc.pth",
                    f"{controller_packages}\n", 0o644)
        _write_file(host_venv / "bin" / "dvc",
                    render("lab/dvc.j2", python=f"{HOST_DVC_VENV}/bin/python", controller_venv=controller_venv), 0o755)

    def _generate_host_keys(self, host: str) -> None:
        for key_type in HOST_KEY_TYPES:
            key = self.host_path(host, f"/etc/ssh/ssh_host_{key_type}_key")
            _run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", f"root@{host}", "-f", str(key)],
                 what=f"ssh-keygen for lab host {host}")

    def _add_admin(self, host: str) -> None:
        """The sudo-capable admin, with the lab's password; root becomes key-only (`*`)."""
        password = self.admin_password_file.read_text().strip()
        for argv in (["/usr/sbin/usermod", "--password", "*", "root"],
                     ["/usr/sbin/useradd", "--create-home", "--shell", "/bin/bash",
                      "--comment", "provision lab admin", ADMIN_USER]):
            self._exec_checked(host, argv)
        self._exec_checked(host, ["/usr/sbin/chpasswd"], input=f"{ADMIN_USER}:{password}\n")
        uid, gid = self._user_ids(host, ADMIN_USER)
        ssh_dir = self.host_path(host, f"/home/{ADMIN_USER}/.ssh")
        ssh_dir.mkdir(mode=0o700)
        os.chown(ssh_dir, uid, gid)
        _write_file(ssh_dir / "authorized_keys", self._public_key(self.admin_key), 0o600, uid, gid)

    def _exec_checked(self, host: str, argv: list[str], input: str | None = None) -> None:
        result = self.exec(host, argv, input=input)
        if result.returncode != 0:
            raise _failure(f"lab host {host}: {argv[0]}", result)

    def _user_ids(self, host: str, user: str) -> tuple[int, int]:
        for line in self.host_path(host, "/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return int(fields[2]), int(fields[3])
        raise ProvisionError(f"lab host {host}: no user {user} in its /etc/passwd")

    @staticmethod
    def _public_key(private_key: Path) -> str:
        return private_key.with_name(private_key.name + ".pub").read_text()

    def _host_public_keys(self, host: str) -> list[str]:
        """`type base64` of each host key, comment dropped."""
        return [" ".join(self.host_path(host, f"/etc/ssh/ssh_host_{key_type}_key.pub").read_text().split()[:2])
                for key_type in HOST_KEY_TYPES]

    def _write_inventory(self) -> None:
        hosts = [{"name": host["name"], "port": host["port"], "host_keys": self._host_public_keys(host["name"])}
                 for host in self.facts["hosts"]]
        _write_file(self.inventory_path,
                    render("lab/inventory.yml.j2", lab_dir=self.dir, project=self.facts["project"],
                            sshd_reload_command=SSHD_RELOAD_COMMAND, controller_key=self.controller_key,
                            storage=hosts[0], clients=hosts[1:]),
                    0o644)
        _write_file(self.known_hosts_path, render("lab/known_hosts.j2", lab_dir=self.dir, hosts=hosts), 0o644)

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

    def _is_lab_sshd(self, host: str, pid: int) -> bool:
        """Whether pid still is this host's listening sshd (pids get reused).

        The listener retitles itself `sshd: <its command line> [listener] ...`, and it lives inside
        the host: its /etc is the host's own copy under DIR.
        """
        if not _alive(pid):
            return False
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            inside_host = os.path.samestat(os.stat(f"/proc/{pid}/root/etc"), os.stat(self.host_path(host, "/etc")))
        except OSError:
            return False
        command_line = " ".join(SSHD_ARGV)
        return inside_host and title.startswith((f"{command_line} ", f"sshd: {command_line} "))

    def _namespace_argv(self, host: str) -> list[str]:
        argv = ["unshare", "--mount", "--uts", "--propagation", "private", "--",
                sys.executable, "-m", "provision.lab_namespace", "--hostname", host]
        for path in PRIVATE_PATHS:
            source = self.host_path(host, path)
            if path == NFS_EXPORT and self.facts["shared_nfs"]:
                source = self.host_path(self.storage_host, NFS_EXPORT)
            argv += ["--bind", str(source), path]
        return [*argv, "--", *SSHD_ARGV]

    def _start(self, host: str) -> None:
        facts = self._host_facts(host)
        pid_file = self.host_path(host, "/run/sshd.pid")
        pid_file.unlink(missing_ok=True)
        log = self.log_path(host)
        with log.open("ab") as log_file:
            launched = subprocess.run(self._namespace_argv(host), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=log_file, start_new_session=True,
                                      timeout=60, check=False)
        if launched.returncode != 0:
            raise ProvisionError(f"lab host {host}: could not set up its namespace: {self._log_tail(host)}")
        pid = int(launched.stdout)
        deadline = time.monotonic() + START_TIMEOUT
        while not (pid_file.is_file() and pid_file.read_text().strip() == str(pid)):
            if not _alive(pid) or time.monotonic() > deadline:
                raise ProvisionError(f"lab host {host}: sshd on port {facts['port']} did not start: "
                                     f"{self._log_tail(host)} (log: {log})")
            time.sleep(0.02)
        facts["pid"] = pid
        _write_file(self.host_dir(host) / "sshd.pid", f"{pid}\n", 0o644)
        self._save_facts()

    def _log_tail(self, host: str) -> str:
        lines = self.log_path(host).read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no log output"

    def _host_processes(self, host: str) -> Iterator[int]:
        """Every process that lives inside the host: its root directory's /etc is the host's own."""
        try:
            host_etc = os.stat(self.host_path(host, "/etc"))
        except FileNotFoundError:
            return
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                if os.path.samestat(os.stat(f"/proc/{entry}/root/etc"), host_etc):
                    yield int(entry)
            except OSError:
                continue

    def _stop(self, host: str) -> None:
        facts = self._host_facts(host)
        listener = self.pid(host)
        processes = ([listener] if listener else []) + [pid for pid in self._host_processes(host) if pid != listener]
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
            for pid in processes:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    continue
            deadline = time.monotonic() + wait
            while (processes := [pid for pid in processes if _alive(pid)]) and time.monotonic() < deadline:
                time.sleep(0.02)
            if not processes:
                break
        if processes:
            raise ProvisionError(f"lab host {host}: processes {processes} survived SIGKILL")
        facts["pid"] = None
        (self.host_dir(host) / "sshd.pid").unlink(missing_ok=True)
        self._save_facts()


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


def _venv_base_interpreter_dir(venv: Path) -> Path:
    """The `home` of a venv's pyvenv.cfg: the directory of the Python it was made from."""
    config = venv / "pyvenv.cfg"
    for line in config.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            return Path(value.strip()).resolve()
    raise InputError(f"{config} names no `home`: recreate the venv with /usr/bin/python3 -m venv")

