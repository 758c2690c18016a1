"""A lab host's private filesystem: the directories under DIR/hosts/<name>/ that its mount namespace binds
over /etc, /home, /root, /opt, /usr/local, /run, /tmp, /var/tmp and /mnt/nfs, and what the lab writes there
(hostname, sshd_config, host keys, sudoers, authorized keys, a dvc virtualenv). The rest of the machine is
shared, which is why a venv under a private path cannot be shared with the hosts.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import venv
from dataclasses import dataclass
from pathlib import Path

from provision.errors import InputError, ProvisionError
from provision.lab.tools import run_tool
from provision.local_files import atomic_write
from provision.render import render

ADMIN_USER = "labadmin"
HOST_KEY_TYPES = ("ed25519", "ecdsa")
# Paths each host keeps to itself, in the order they are bind-mounted; everything else is the machine's.
PRIVATE_PATHS = ("/etc", "/home", "/root", "/opt", "/usr/local", "/run", "/tmp", "/var/tmp", "/mnt/nfs")
PRIVATE_PATH_MODES = {"/root": 0o700, "/tmp": 0o1777, "/var/tmp": 0o1777}
USR_LOCAL_SKELETON = ("bin", "etc", "include", "lib", "sbin", "share", "src")
NFS_EXPORT = "/mnt/nfs"
#: Each host's own virtualenv, whose dvc is the controller venv's (the inventory's default dvc_venv).
HOST_DVC_VENV = "/opt/provision/dvc"
#: Inside a host; the log lands in DIR/hosts/<name>/run/sshd.log (DIR/hosts/<name>/sshd.log links to it).
SSHD_LOG = "/run/sshd.log"
#: Where the host's sshd_config (templates/lab/sshd_config.j2) has sshd write its pid.
SSHD_PID_FILE = "/run/sshd.pid"


@dataclass(frozen=True)
class HostTree:
    """One host's files as the controller sees them, under `root` (DIR/hosts/<name>/)."""

    name: str
    root: Path

    def path(self, path: str) -> Path:
        """Where a path inside the host lives on the controller, for private paths (`/etc/passwd`...)."""
        return self.root / path.lstrip("/")

    @property
    def log(self) -> Path:
        return self.path(SSHD_LOG)

    def binds(self, nfs_export_of: HostTree) -> list[tuple[Path, str]]:
        """(source, target) of each private path, in mount order; /mnt/nfs may be another host's export."""
        return [(nfs_export_of.path(path) if path == NFS_EXPORT else self.path(path), path)
                for path in PRIVATE_PATHS]

    def create(self, *, port: int, controller_public_key: str, dvc_venv: Path | None) -> None:
        """A private copy of the machine's /etc and empty private directories, set up as this lab host."""
        self.root.mkdir(parents=True)
        run_tool(["cp", "-a", "/etc", str(self.path("/etc"))], what=f"copying /etc for lab host {self.name}")
        for path in PRIVATE_PATHS[1:]:
            private = self.path(path)
            private.mkdir(parents=True, exist_ok=True)
            private.chmod(PRIVATE_PATH_MODES.get(path, 0o755))
        self.path("/run/sshd").mkdir(mode=0o755)
        (self.root / "sshd.log").symlink_to(self.log.relative_to(self.root))
        for name in USR_LOCAL_SKELETON:
            self.path(f"/usr/local/{name}").mkdir(mode=0o755)
        atomic_write(self.path("/etc/hostname"), f"{self.name}\n", 0o644)
        hosts_file = self.path("/etc/hosts")
        atomic_write(hosts_file, hosts_file.read_text() + f"127.0.1.1\t{self.name}\n", 0o644)
        for drop_in in self.path("/etc/ssh/sshd_config.d").iterdir():  # the machine's would make hosts differ
            drop_in.unlink()
        atomic_write(self.path("/etc/ssh/sshd_config"),
                     render("lab/sshd_config.j2", host=self.name, port=port, host_key_types=HOST_KEY_TYPES), 0o644)
        self.new_host_keys()
        atomic_write(self.path("/etc/sudoers.d/provision-lab"), render("lab/sudoers.j2", admin_user=ADMIN_USER),
                     0o440)
        self.authorize_key("/root", 0, 0, controller_public_key)
        if dvc_venv:
            self._lend_dvc(dvc_venv)

    def _lend_dvc(self, controller_venv: Path) -> None:
        """A virtualenv of the host's own at /opt/provision/dvc whose dvc is the controller venv's packages.

        Its site-packages names the controller venv's with a `.pth` path line, so nothing is installed twice,
        and what provision installs into a host's dvc_venv (its dvc-ssh guard) stays in that host, as on a
        real machine, instead of landing in the controller venv that every lab shares.
        """
        host_venv = self.path(HOST_DVC_VENV)
        venv.EnvBuilder(symlinks=True, with_pip=False).create(host_venv)
        for directory in (host_venv.parent, host_venv, *host_venv.rglob("*")):
            if directory.is_dir() and not directory.is_symlink():
                directory.chmod(0o755)  # whatever the umask: root installs only where nobody else writes
        python = f"python{sys.version_info.major}.{sys.version_info.minor}"
        controller_packages = sysconfig.get_path("purelib", vars={"base": str(controller_venv),
                                                                   "platbase": str(controller_venv)})
        atomic_write(host_venv / "lib" / python / "site-packages" / "provision-lab-dvc.pth",
                     f"{controller_packages}\n", 0o644)
        atomic_write(host_venv / "bin" / "dvc",
                     render("lab/dvc.j2", python=f"{HOST_DVC_VENV}/bin/python", controller_venv=controller_venv),
                     0o755)

    def new_host_keys(self) -> None:
        """Replace the host's keys (the copy of /etc brought the machine's) with new ones."""
        for old_key in self.path("/etc/ssh").glob("ssh_host_*"):
            old_key.unlink()
        for key_type in HOST_KEY_TYPES:
            key = self.path(f"/etc/ssh/ssh_host_{key_type}_key")
            run_tool(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", f"root@{self.name}", "-f", str(key)],
                     what=f"ssh-keygen for lab host {self.name}")

    def host_public_keys(self) -> list[str]:
        """`type base64` of each host key, comment dropped."""
        return [" ".join(self.path(f"/etc/ssh/ssh_host_{key_type}_key.pub").read_text().split()[:2])
                for key_type in HOST_KEY_TYPES]

    def authorize_key(self, home: str, uid: int, gid: int, public_key: str) -> None:
        """`home`/.ssh/authorized_keys holding one key, owned by the account, as sshd's StrictModes wants."""
        ssh_dir = self.path(f"{home}/.ssh")
        ssh_dir.mkdir(mode=0o700)
        os.chown(ssh_dir, uid, gid)
        atomic_write(ssh_dir / "authorized_keys", public_key, 0o600, owner=(uid, gid))

    def user_ids(self, user: str) -> tuple[int, int]:
        """(uid, gid) of an account in the host's own /etc/passwd."""
        for line in self.path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return int(fields[2]), int(fields[3])
        raise ProvisionError(f"lab host {self.name}: no user {user} in its /etc/passwd")


def shareable_dvc_venv(share_dvc: bool | None, warnings: list[str]) -> Path | None:
    """The running venv when lab hosts can run its dvc; see docs/architecture.md, Tests.

    share_dvc: True requires it (else InputError), None shares it when possible (else adds a warning),
    False never shares it.
    """
    if share_dvc is False:
        return None
    running = Path(sys.prefix).resolve()
    reason = None
    if sys.prefix == sys.base_prefix:
        reason = f"{sys.executable} does not run in a virtualenv"
    elif not (running / "bin" / "dvc").is_file():
        reason = f"{running}/bin/dvc is missing"
    elif hidden := _private_ancestor(running):
        reason = f"the venv {running} is under {hidden}, which is private in lab hosts"
    elif hidden := _private_ancestor(_venv_base_interpreter_dir(running)):
        reason = f"the venv's Python comes from under {hidden}, which is private in lab hosts"
    if reason is None:
        return running
    advice = (f"{reason}; the venv must be made with /usr/bin/python3 outside "
              f"{', '.join(p for p in PRIVATE_PATHS if p != '/etc')}")
    if share_dvc:
        raise InputError(f"cannot share dvc with the lab hosts: {advice}")
    warnings.append(f"dvc not shared with the lab hosts ({advice})")
    return None


def _private_ancestor(path: Path) -> str | None:
    return next((private for private in PRIVATE_PATHS if path == Path(private) or Path(private) in path.parents),
                None)


def _venv_base_interpreter_dir(venv_dir: Path) -> Path:
    """The `home` of a venv's pyvenv.cfg: the directory of the Python it was made from."""
    config = venv_dir / "pyvenv.cfg"
    for line in config.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            return Path(value.strip()).resolve()
    raise InputError(f"{config} names no `home`: recreate the venv with /usr/bin/python3 -m venv")
