"""provision's dvc-ssh guard: the options DVC's SSH remote connects with, the directory listings DVC accepts, and
how provision finds it installed."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from provision import dvc_ssh_guard
from provision.tasks.packages import GUARD_MODULE, DvcState, guard_files, unguarded_dvc_warning

VENV = "/opt/provision/dvc"
PURELIB = f"{VENV}/lib/python3.11/site-packages"

# Builds dvc-ssh's filesystem as `dvc push` does (no connection yet) and prints the options it would connect with.
_CONNECT_OPTIONS = """
import json, dvc_ssh
fs = dvc_ssh.SSHFileSystem(host="storage.example", port=2222, user="dvc", keyfile="/k/id_ed25519")
options = fs.fs_args
print(json.dumps({"known_hosts": repr(options.get("known_hosts")), "agent_forwarding": options.get("agent_forwarding"),
                  "guarded": dvc_ssh.SSHFileSystem._prepare_credentials.__dict__.get("__provision_guarded__", False)}))
"""


# Reads one-entry directory listings as DVC reads a `.dir` object; prints what became of each path.
_LISTINGS = """
import json
from dvc_data.hashfile.tree import Tree
results = {}
for relpath in ["data/a.txt", "../../.ssh/rc", "/etc/passwd", "data/../../x", "data//a.txt", "./a.txt"]:
    try:
        Tree.from_list([{"md5": "0" * 32, "relpath": relpath}])
        results[relpath] = "read"
    except Exception as error:
        results[relpath] = type(error).__name__
print(json.dumps(results))
"""


def _site_with_guard(directory: Path) -> Path:
    """A site-packages directory holding the guard's files exactly as provision installs them."""
    for name, data in guard_files().items():
        (directory / name).write_bytes(data)
    return directory


def _connect_options(site: Path | None, home: Path) -> dict[str, object]:
    prelude = f"import site; site.addsitedir({str(site)!r})\n" if site else ""
    done = subprocess.run([sys.executable, "-c", prelude + _CONNECT_OPTIONS], capture_output=True, text=True,
                          env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, check=True)
    return json.loads(done.stdout)


def test_the_installed_dvc_ssh_is_a_checked_version() -> None:
    """When dvc-ssh moves on, this fails until the guard is checked against the new version's code."""
    assert importlib.metadata.version("dvc-ssh") in dvc_ssh_guard.CHECKED_DVC_SSH_VERSIONS


def test_without_the_guard_dvc_ssh_trusts_any_host_and_forwards_the_agent(tmp_path: Path) -> None:
    options = _connect_options(None, tmp_path)
    assert options["known_hosts"] == repr(None)  # sshfs then passes known_hosts=None: any key is accepted
    assert options["agent_forwarding"] is True


def test_the_installed_guard_pins_the_users_known_hosts_and_keeps_the_agent_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text("[storage.example]:2222 ssh-ed25519 AAAA\n")
    site = _site_with_guard(tmp_path)
    options = _connect_options(site, home)
    assert options == {"known_hosts": repr(str(home / ".ssh" / "known_hosts")), "agent_forwarding": False,
                       "guarded": True}


def _listings(site: Path | None) -> dict[str, str]:
    prelude = f"import site; site.addsitedir({str(site)!r})\n" if site else ""
    done = subprocess.run([sys.executable, "-c", prelude + _LISTINGS], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_the_guard_refuses_listing_entries_that_leave_their_directory(tmp_path: Path) -> None:
    unsafe = ["../../.ssh/rc", "/etc/passwd", "data/../../x", "data//a.txt", "./a.txt"]
    assert set(_listings(None).values()) == {"read"}  # DVC itself would write each where it leads
    guarded = _listings(_site_with_guard(tmp_path))
    assert guarded == {"data/a.txt": "read", **dict.fromkeys(unsafe, "ObjectFormatError")}


def test_without_known_hosts_no_host_key_is_trusted(tmp_path: Path) -> None:
    options = _connect_options(_site_with_guard(tmp_path), tmp_path / "nohome")
    assert options["known_hosts"] == repr(b"") and options["agent_forwarding"] is False


def test_an_unchecked_version_is_left_alone_and_said(capsys: pytest.CaptureFixture[str]) -> None:
    class SSHFileSystem:
        def _prepare_credentials(self, **config: object) -> dict[str, object]:
            return {"agent_forwarding": True}

    module = types.ModuleType("dvc_ssh")
    module.SSHFileSystem = SSHFileSystem  # type: ignore[attr-defined]
    original = SSHFileSystem._prepare_credentials
    assert dvc_ssh_guard.guard(module, "99.0.0") is False
    assert SSHFileSystem._prepare_credentials is original
    assert "dvc-ssh 99.0.0 is not a version provision's guard was checked against" in capsys.readouterr().err
    checked = next(iter(dvc_ssh_guard.CHECKED_DVC_SSH_VERSIONS))
    assert dvc_ssh_guard.guard(module, checked) is True
    patched = SSHFileSystem._prepare_credentials
    assert dvc_ssh_guard.guard(module, checked) is True and SSHFileSystem._prepare_credentials is patched
    assert patched(SSHFileSystem())["agent_forwarding"] is False


def _probe(*, dvc_ssh: str = "4.3.0", guard: bool = True, path_dvc: str = "") -> DvcState:
    checksums = [hashlib.sha256(data).hexdigest() for data in guard_files().values()]
    lines = [f"venv-dvc yes\nvenv 3.67.1\nvenv-python yes\npurelib {PURELIB}\ndvc-ssh {dvc_ssh}"]
    if guard:
        lines.append(f"guard-py {checksums[0]}\nguard-pth {checksums[1]}")
    if path_dvc:
        lines.append(f"path {path_dvc} 3.55.0")
    return DvcState.parse("\n".join(lines) + "\n")


def test_probe_output_tells_installed_and_active_guard() -> None:
    state = _probe()
    assert state.purelib == PURELIB and state.dvc_ssh_version == "4.3.0"
    assert state.guard_installed and state.guard_active
    assert unguarded_dvc_warning(state, VENV) is None
    assert guard_files()[f"{GUARD_MODULE}.pth"] == f"import {GUARD_MODULE}\n".encode()


def test_a_stale_guard_file_counts_as_missing() -> None:
    stale = DvcState.parse(f"venv-dvc yes\nvenv 3.67.1\npurelib {PURELIB}\ndvc-ssh 4.3.0\nguard-py 00\nguard-pth 11\n")
    assert not stale.guard_installed
    assert "lacks provision's dvc-ssh guard" in (unguarded_dvc_warning(stale, VENV) or "")


@pytest.mark.parametrize(("state", "expected"), [
    (_probe(guard=False), f"{VENV}/bin/dvc lacks provision's dvc-ssh guard"),
    (_probe(dvc_ssh="5.0.0"), "dvc-ssh 5.0.0 in /opt/provision/dvc is not a version provision's guard was checked"),
    (_probe(path_dvc="/usr/bin/dvc"), "dvc on PATH (/usr/bin/dvc) is not the dvc provision installs"),
])
def test_unguarded_dvc_is_warned_about(state: DvcState, expected: str) -> None:
    warning = unguarded_dvc_warning(state, VENV)
    assert warning is not None and warning.startswith(expected) and "verifies no host key" in warning


def test_no_dvc_at_all_is_no_warning() -> None:
    assert unguarded_dvc_warning(DvcState(), VENV) is None


def test_the_guard_refuses_a_checkout_through_a_link_in_it(tmp_path: Path) -> None:
    """`models` committed as a link to a directory outside: no change below it reaches DVC's apply."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "checkout" / "data").mkdir(parents=True)
    (tmp_path / "checkout" / "models").symlink_to(tmp_path / "outside")
    applied: list[str] = []
    module = types.ModuleType("dvc_data.index.checkout")
    module.apply = lambda diff, path, fs, **kwargs: applied.append(path)  # type: ignore[attr-defined]
    assert dvc_ssh_guard.guard_checkout(module) is True
    local = types.SimpleNamespace(protocol="local")

    def diff(*keys: tuple[str, ...]) -> types.SimpleNamespace:
        return types.SimpleNamespace(files_create=[types.SimpleNamespace(key=key) for key in keys])

    root = str(tmp_path / "checkout")
    module.apply(diff(("data", "a.txt"), ("models",)), root, local)  # type: ignore[attr-defined]
    assert applied == [root]
    with pytest.raises(OSError, match=r"models is a link inside the checkout"):
        module.apply(diff(("data", "a.txt"), ("models", "git")), root, local)  # type: ignore[attr-defined]
    assert applied == [root] and not list((tmp_path / "outside").iterdir())
    module.apply(diff(("models", "git")), root, types.SimpleNamespace(protocol="s3"))  # type: ignore[attr-defined]
    assert applied == [root, root]
