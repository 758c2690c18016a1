"""The pins file: lookups (hashed entries too), foreign lines kept, locked atomic writes."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import paramiko

from provision.known_hosts_file import KnownHosts, forget_host, known_hosts_name, pin_keys


def test_names_follow_openssh() -> None:
    assert known_hosts_name("nas", 22) == "nas"
    assert known_hosts_name("127.0.0.1", 2201) == "[127.0.0.1]:2201"


def test_hashed_entries_and_foreign_lines(tmp_path: Path) -> None:
    key = paramiko.ECDSAKey.generate()
    hashed = paramiko.HostKeys.hash_host("[10.0.0.5]:2222")
    path = tmp_path / "pins"
    path.write_text(f"# kept comment\n@cert-authority *.lab ssh-ed25519 AAAAfake\n"
                    f"{hashed} {key.get_name()} {key.get_base64()}\n")
    pins = KnownHosts(path)
    assert pins.lookup("10.0.0.5", 2222) == {key.get_name(): key}
    shown = subprocess.run(["ssh-keygen", "-lf", "-"], input=f"{key.get_name()} {key.get_base64()}\n",
                           capture_output=True, text=True, check=True).stdout.split()[1]
    assert pins.pins("10.0.0.5", 2222)[0].fingerprint == shown, "as ssh-keygen -l shows it"
    other = paramiko.ECDSAKey.generate()
    pins.add("nas", 22, other)
    pins.save()
    text = path.read_text()
    assert text.startswith("# kept comment\n@cert-authority *.lab ssh-ed25519 AAAAfake\n")
    assert f"nas {other.get_name()} {other.get_base64()}" in text
    assert path.stat().st_mode & 0o777 == 0o644
    assert forget_host(path, "10.0.0.5", 2222, check=True)
    assert KnownHosts(path).lookup("10.0.0.5", 2222)  # --check removes nothing
    assert forget_host(path, "10.0.0.5", 2222)
    assert KnownHosts(path).lookup("10.0.0.5", 2222) == {}
    assert "# kept comment" in path.read_text()


def test_concurrent_pin_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "pins"
    keys = [paramiko.ECDSAKey.generate() for _ in range(12)]
    threads = [threading.Thread(target=pin_keys, args=(path, "127.0.0.1", 2200 + n, [key]))
               for n, key in enumerate(keys)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pins = KnownHosts(path)
    assert all(pins.lookup("127.0.0.1", 2200 + n) for n in range(12))
    pin_keys(path, "127.0.0.1", 2200, [keys[0]])  # already there: no duplicate
    assert path.read_text().count("[127.0.0.1]:2200 ") == 1


def test_the_pins_file_splits_on_newlines_only(tmp_path: Path) -> None:
    key = paramiko.ECDSAKey.generate()
    path = tmp_path / "pins"
    path.write_text(f"# note\u2028[10.0.0.5]:2222 {key.get_name()} {key.get_base64()}\n")
    pins = KnownHosts(path)
    assert pins.lookup("10.0.0.5", 2222) == {}
    pins.add("nas", 22, key)
    pins.save()
    assert path.read_text().startswith(f"# note\u2028[10.0.0.5]:2222 {key.get_name()} ")
