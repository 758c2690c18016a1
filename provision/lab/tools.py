"""The machine's tools a lab needs, and how the lab runs them: a failure names what failed and why."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from provision.errors import InputError, ProvisionError

SSHD = "/usr/sbin/sshd"
SUDO = "/usr/bin/sudo"
_TOOLS = (("unshare", "util-linux"), ("nsenter", "util-linux"), ("mount", "mount"),
          ("ssh-keygen", "openssh-client"), ("/usr/sbin/useradd", "passwd"), ("/usr/sbin/usermod", "passwd"),
          ("/usr/sbin/chpasswd", "passwd"))


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


def run_tool(argv: list[str], *, what: str) -> subprocess.CompletedProcess[str]:
    """Run argv; on failure raise a ProvisionError naming what failed."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise failure(what, result)
    return result


def failure(what: str, result: subprocess.CompletedProcess[str]) -> ProvisionError:
    """`WHAT failed (exit N)` and the last line it printed, which names the cause."""
    detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return ProvisionError(f"{what} failed (exit {result.returncode})" + (f": {detail[-1]}" if detail else ""))
