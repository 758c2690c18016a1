"""A private D-Bus session bus with gnome-keyring's Secret Service, so the keyring store is tested for real.

The bus has no service directories, so nothing is activated behind the test's back: the only Secret
Service on it is the gnome-keyring-daemon started here, with a fresh login keyring unlocked by a known
password in a temporary HOME. Both daemons are stopped by process id afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import secretstorage
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

INSTALL_HINT = "apt-get install gnome-keyring dbus"
SECRETS_BUS_NAME = "org.freedesktop.secrets"
STARTUP_TIMEOUT = 20.0

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@dataclass
class SecretServiceSession:
    """Where the session lives; `env` is what a child process needs to reach the same keyring."""

    bus_address: str
    home: Path
    env: dict[str, str]
    keyring_daemon: subprocess.Popen[bytes]


def _require_tools() -> None:
    missing = [tool for tool in ("dbus-daemon", "gnome-keyring-daemon") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: the keyring tests need a real Secret Service; "
                    f"install it with `{INSTALL_HINT}`", pytrace=False)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _service_ready(bus_address: str) -> bool:
    """The daemon owns the Secret Service name and its default collection is unlocked."""
    with open_dbus_connection(bus=bus_address) as connection:
        reply = connection.send_and_get_reply(message_bus.NameHasOwner(SECRETS_BUS_NAME))
        if not reply.body[0]:
            return False
        try:
            return not secretstorage.get_default_collection(connection).is_locked()
        except secretstorage.exceptions.SecretStorageException:
            return False


def _log_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()[-500:]
    except FileNotFoundError:
        return ""


@contextlib.contextmanager
def secret_service_session(monkeypatch: pytest.MonkeyPatch,
                           keyring_password: bytes = b"provision-test-login") -> Iterator[SecretServiceSession]:
    """Start dbus-daemon and gnome-keyring-daemon; point this process's environment at them."""
    _require_tools()
    # A short base path: the bus socket path must fit in sun_path (108 bytes).
    base = Path(tempfile.mkdtemp(prefix="prov-ks-"))
    home = base / "home"
    runtime = base / "run"
    for directory in (home, runtime, home / ".local" / "share", home / ".config", home / ".cache"):
        directory.mkdir(parents=True, mode=0o700)
    config = base / "bus.conf"
    config.write_text(_BUS_CONFIG.format(socket=base / "bus"))
    env = {key: value for key, value in os.environ.items()
           if key not in {"DISPLAY", "WAYLAND_DISPLAY", "GNOME_KEYRING_CONTROL", "SSH_AUTH_SOCK"}}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"),
               XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_RUNTIME_DIR=str(runtime))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with (base / "dbus.log").open("wb") as log:
            bus = subprocess.Popen(["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env)
        processes.append(bus)
        assert bus.stdout is not None
        bus_address = bus.stdout.readline().decode().strip()
        if not bus_address:
            pytest.fail(f"dbus-daemon did not start: {_log_tail(base / 'dbus.log')}", pytrace=False)
        env["DBUS_SESSION_BUS_ADDRESS"] = bus_address
        with (base / "gnome-keyring.log").open("wb") as log:
            daemon = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--unlock",
                                       "--components=secrets"],
                                      stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log, env=env)
        processes.append(daemon)
        assert daemon.stdin is not None
        daemon.stdin.write(keyring_password)
        daemon.stdin.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _service_ready(bus_address):
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail("gnome-keyring-daemon did not offer an unlocked Secret Service: "
                            f"{_log_tail(base / 'gnome-keyring.log')}", pytrace=False)
            time.sleep(0.1)
        for key in ("DISPLAY", "WAYLAND_DISPLAY", "GNOME_KEYRING_CONTROL", "SSH_AUTH_SOCK"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            if os.environ.get(key) != value:
                monkeypatch.setenv(key, value)
        yield SecretServiceSession(bus_address=bus_address, home=home, env=env, keyring_daemon=daemon)
    finally:
        for process in reversed(processes):
            _stop(process)
            if process.stdout is not None:
                process.stdout.close()
        shutil.rmtree(base, ignore_errors=True)
