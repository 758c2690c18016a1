"""Hostile state on real hosts: odd bytes in authorized_keys, symbolic links where provision writes, markers
in known_hosts. Foreign bytes are kept exactly; a link is refused and never followed; @revoked and
@cert-authority lines are kept, and OpenSSH on the client still honours them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provision.lab import Lab
from tests.integration.helpers import KEY, WORKDIR, bootstrap_with_dataset, failures, onboard, own_lab, run, task

pytestmark = pytest.mark.integration

#: authorized_keys lines an admin wrote by hand: a comment, options, CRLF, a form feed, bytes that are not
#: UTF-8, and a last line without its newline.
FOREIGN_LINES = [
    b"# ops key below\r",
    b'from="10.0.0.0/8",no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8UoQD7CQXPa6WZQKq7xJn03aThFlp/MY/unOaKFawL ops\r',
    b"\x0cssh-rsa AAAAB3NzaC1yc2E x",
    b"\xff\xfe not utf-8",
    b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMd1RpfT6mkg3Zxcv3SXptQ0rkuTaNhk7cH8WDqv3Ddh last-without-newline",
]
CERT_AUTHORITY = ("@cert-authority *.example.com ssh-ed25519 "
                  "AAAAC3NzaC1lZDI1NTE5AAAAIC8UoQD7CQXPa6WZQKq7xJn03aThFlp/MY/unOaKFawL")
#: Where the links point: files and directories that must stay exactly as they are.
ELSEWHERE = "/root/elsewhere"


@dataclass
class Site:
    lab: Lab
    home: Path
    revoked: list[str]
    first: tuple[int, dict[str, Any]]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """storage, ws1 (odd known_hosts), ws2 (~/.ssh a link), ws3 (workdir a link); storage's dvc account has
    hand-written lines. One onboard of all, as a user would run it."""
    with own_lab(tmp_path_factory, "hostile", ["storage", "ws1", "ws2", "ws3"]) as (lab, home):
        bootstrap_with_dataset(lab, home)
        lab.host_path("storage", "/home/dvc/.ssh/authorized_keys").write_bytes(b"\n".join(FOREIGN_LINES))
        storage_port = lab.port("storage")
        pinned = [line.split(" ", 1)[1] for line in lab.known_hosts_path.read_text().splitlines()
                  if line.startswith(f"[127.0.0.1]:{storage_port} ")]
        revoked = [f"@revoked * {key}" for key in pinned]
        run(lab, "ws1", ["sh", "-c", 'printf "%s\\n" "$@" >> /root/.ssh/known_hosts', "sh", CERT_AUTHORITY])
        run(lab, "ws2", ["sh", "-c", f"mkdir -m 0700 {ELSEWHERE} && cp -a /root/.ssh/. {ELSEWHERE}/ && "
                         f"rm -r /root/.ssh && ln -s {ELSEWHERE} /root/.ssh"])
        run(lab, "ws3", ["sh", "-c", f"mkdir -m 0700 {ELSEWHERE} && touch {ELSEWHERE}/notes && "
                         f"ln -s {ELSEWHERE} {WORKDIR}"])
        yield Site(lab, home, revoked, onboard(lab, home))


def test_foreign_authorized_keys_lines_keep_every_byte(site: Site) -> None:
    _, document = site.first
    assert document["hosts"]["ws1"]["status"] == "changed", failures(document)
    content = site.lab.host_path("storage", "/home/dvc/.ssh/authorized_keys").read_bytes()
    lines = content.split(b"\n")
    assert lines[:len(FOREIGN_LINES)] == FOREIGN_LINES
    ours = lines[len(FOREIGN_LINES):]
    assert [line.rsplit(b" ", 1)[-1] for line in ours[:-1]] == [b"provision:inventory:ws1", b"provision:inventory:ws3"]
    assert ours[-1] == b""


def test_a_linked_ssh_directory_is_refused_and_not_followed(site: Site) -> None:
    status, document = site.first
    assert status & 2
    assert document["hosts"]["ws2"]["status"] == "failed"
    assert "/root/.ssh on ws2 is a symbolic link" in task(document, "ws2", "client key")["msg"]
    assert not site.lab.host_path("ws2", f"{ELSEWHERE}/{Path(KEY).name}").exists()
    assert run(site.lab, "ws2", ["stat", "-c", "%a", ELSEWHERE]).stdout.strip() == "700"


def test_a_linked_checkout_is_refused_and_not_followed(site: Site) -> None:
    _, document = site.first
    assert document["hosts"]["ws3"]["status"] == "failed"
    assert f"{WORKDIR} on ws3 is a symbolic link" in task(document, "ws3", "checkout")["msg"]
    assert run(site.lab, "ws3", ["ls", "-A", ELSEWHERE]).stdout.split() == ["notes"]


def test_a_linked_config_local_and_authorized_keys_are_refused_and_not_followed(site: Site) -> None:
    lab = site.lab
    config_local = f"{WORKDIR}/.dvc/config.local"
    run(lab, "ws1", ["sh", "-c", f'echo "[core]" > {ELSEWHERE}-config && ln -sf {ELSEWHERE}-config "$1"', "sh",
                     config_local])
    keys = "/home/git/.ssh/authorized_keys"
    run(lab, "storage", ["sh", "-c", f'mv "$1" {ELSEWHERE}-keys && ln -s /etc/shadow "$1"', "sh", keys])
    try:  # the module's storage gets its real file back whatever this finds
        shadow = lab.host_path("storage", "/etc/shadow").read_bytes()
        status, document = onboard(lab, site.home, "ws1")
        assert status == 2
        assert "is a symbolic link, which provision never follows" in task(
            document, "storage", "authorized_keys of git (git)")["msg"]
        assert lab.host_path("storage", "/etc/shadow").read_bytes() == shadow
    finally:
        run(lab, "storage", ["sh", "-c", f'rm "$1" && mv {ELSEWHERE}-keys "$1"', "sh", keys])

    try:
        status, document = onboard(lab, site.home, "ws1")
        assert status == 2
        assert "config.local on ws1 is not a regular file" in task(document, "ws1", "dvc config.local")["msg"]
        assert run(lab, "ws1", ["cat", f"{ELSEWHERE}-config"]).stdout == "[core]\n"
    finally:
        run(lab, "ws1", ["rm", config_local])
    status, document = onboard(lab, site.home, "ws1")
    assert status == 0, failures(document)


def test_revoked_and_cert_authority_lines_are_kept_and_honoured(site: Site) -> None:
    lab = site.lab
    run(lab, "ws1", ["sh", "-c", 'printf "%s\\n" "$@" >> /root/.ssh/known_hosts', "sh", *site.revoked])
    status, document = onboard(lab, site.home, "ws1")
    assert status == 2
    assert "Host key verification failed" in task(document, "ws1", "prove access")["msg"]
    known_hosts = run(lab, "ws1", ["cat", "/root/.ssh/known_hosts"]).stdout.splitlines()
    assert CERT_AUTHORITY in known_hosts and all(line in known_hosts for line in site.revoked)

    kept = [line for line in known_hosts if line not in site.revoked]
    run(lab, "ws1", ["sh", "-c", 'printf "%s\\n" "$@" > /root/.ssh/known_hosts', "sh", *kept])
    status, document = onboard(lab, site.home, "ws1")
    assert status == 0, failures(document)
    assert CERT_AUTHORITY in run(lab, "ws1", ["cat", "/root/.ssh/known_hosts"]).stdout.splitlines()
