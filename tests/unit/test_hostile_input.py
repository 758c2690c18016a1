"""Property-based tests: arbitrary bytes and structures never crash with a traceback.

The inventory loader, host patterns, the vault reader, authorized_keys parsing and the audit scanner
either accept what they are given or refuse it with an InputError (exit 1, one line); no other
exception may escape. The CLI is called in this process for the inventory cases, so the one-line
promise is checked on what a user would see.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from provision.audit.hosts import key_line_findings
from provision.audit.repo import parse_log
from provision.audit.rules import dvc_config_hits, rules_for
from provision.errors import InputError
from provision.inventory import load_inventory
from provision.patterns import expand_hostname_range, match_hosts, parse_address, split_host_pattern
from provision.plays.bootstrap import check_settings
from provision.plays.onboard import select_clients
from provision.secrets.base import SecretsError
from provision.secrets.vault import HEADER, MAGIC, VERSION, VaultFile, decrypt_vault
from provision.tasks.authorized_keys import displayed, file_lines, line_marker, replace_marked_lines
from provision.tasks.key_rotation import line_public_key
from tests.unit.helpers import run_cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "tests/inventories/58-provision-example/inventory.yml").read_text()
FUZZ = settings(max_examples=int(os.environ.get("PROVISION_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

#: Strings that have hurt parsers and shells: metacharacters, line breaks, NUL, bidi controls, look-alikes.
HOSTILE_TEXT = [
    "", " ", "-", "--", ".", "..", "../..", "/", "~", "~/", "a;b", "$(id)", "`id`", "a|b", "a&b", "a>b", "a\nb",
    "a\rb", "a\0b", "a\tb", "'", '"', "\\", "{{ x }}", "{% x %}", "\u202ename", "\u2066x\u2069", "\u0430dmin",
    "ws\u200b1", "\ufeffall", "\x7f", "\udcff", "fe80::1%eth0", "fe80::1%a b", "::1", "[::1]:22", "host:99999",
    "ws[1:", "ws[a:Z]", "ws[0:9:0]", "ws[01:1]", "x" * 300, "*", "!", "&", "~[", "~(", "all:!all", "@file",
    "storage[5]", "storage[-9]", "storage[1:]", "10.0.0.1:22", "*.example.com", "é", "\u0000", "\x1b[31m",
]
#: "Billion laughs": ten aliases of ten aliases, nine levels deep: 50 lines, 10**9 values once expanded.
ALIAS_BOMB = ("all:\n  vars:\n    l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"    l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]\n" for n in range(1, 9))).encode()
hostile_text = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), hostile_text)
structures = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(hostile_text, st.integers()), inner, max_size=4)),
    max_leaves=20)
OUR_KEYS = ["project", "inventory_name", "nfs_root", "dvc_storage", "git_remote", "server_repo", "storage_user",
            "git_user", "storage_group", "storage_gid", "storage_port", "storage_address", "workdir",
            "client_key", "shared_cache", "dvc_version", "dvc_venv", "cache_types", "sshd_reload_command",
            "auth", "access", "server_cache", "dvc_remote", "ansible_host", "ansible_port", "ansible_user",
            "ansible_become", "ansible_connection", "ansible_ssh_private_key_file", "ansible_become_user"]
var_maps = st.dictionaries(st.one_of(st.sampled_from(OUR_KEYS), hostile_text), structures, max_size=5)
host_maps = st.dictionaries(st.one_of(st.sampled_from(["nas", "ws1", "ws[1:3]", "10.0.0.7"]), hostile_text),
                            st.one_of(st.none(), var_maps), min_size=1, max_size=3)
#: Inventories shaped like ours, with hostile names and values where names and values go.
shaped_inventories = st.fixed_dictionaries({"all": st.fixed_dictionaries({
    "vars": var_maps,
    "children": st.fixed_dictionaries({"storage": st.fixed_dictionaries({"hosts": host_maps}),
                                       "clients": st.fixed_dictionaries({"hosts": host_maps, "vars": var_maps})}),
})})


@contextlib.contextmanager
def inventory_file(content: bytes) -> Iterator[Path]:
    """The bytes as `site.yml` in a fresh directory (hypothesis examples cannot share pytest's tmp_path)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "site.yml"
        path.write_bytes(content)
        yield path


def assert_loaded_or_refused(status: int, stderr: str) -> None:
    """Exit 0, or exit 1 with the error on one line of its own; never a traceback or an internal error."""
    assert "Traceback" not in stderr and "error: internal" not in stderr, stderr
    assert status in (0, 1), stderr
    if status == 1:
        errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and stderr.rstrip("\n").endswith(errors[0]), stderr


def refused_in_one_line(step: Callable[[], object]) -> None:
    """Run a step of validation: it passes, or raises InputError with a one-line message."""
    try:
        step()
    except InputError as error:
        assert not {"\n", "\r", "\0"} & set(str(error)), repr(str(error))


def validate_like_the_plays(path: Path) -> None:
    """What bootstrap and onboard check before contacting any host; only one-line InputErrors may come out."""
    inventory = load_inventory(path)
    for pattern in (None, "all", "clients", "storage"):
        inventory.match(pattern)

    def storage_checks() -> None:
        inventory.check_targets([inventory.storage])
        check_settings(inventory.storage)

    refused_in_one_line(storage_checks)
    refused_in_one_line(lambda: select_clients(inventory, (), None))
    for host in inventory.hosts.values():
        refused_in_one_line(lambda host=host: vars(host.settings))
        refused_in_one_line(host.check_reachable)
        refused_in_one_line(host.check_marker)


# ---------------------------------------------------------------- inventory loader


@FUZZ
@given(content=st.binary(max_size=400))
@example(content=b"all: &a [*a, *a]\n")
@example(content=b"\xff\xfe")
@example(content=b"all:\n  hosts:\n    ? [a]\n")
@example(content=b"[" * 5000 + b"]" * 5000)
@example(content=b"a: &a [*a]\n")
@example(content=b"".join(b"g%d: {children: {g%d: }}\n" % (n, n + 1) for n in range(3000)))
@example(content=ALIAS_BOMB)
def test_arbitrary_bytes_load_or_are_refused_in_one_line(content: bytes) -> None:
    with inventory_file(content) as path:
        assert_loaded_or_refused(*run_cli("inventory", "list", "-i", str(path)))


@FUZZ
@given(data=shaped_inventories)
def test_inventories_with_hostile_names_and_values_load_or_are_refused(data: dict[str, Any]) -> None:
    content = yaml.safe_dump(data, allow_unicode=True).encode("utf-8", "surrogatepass")
    with inventory_file(content) as path:
        assert_loaded_or_refused(*run_cli("inventory", "list", "-i", str(path)))
        assert_loaded_or_refused(*run_cli("inventory", "list", "--json", "-i", str(path)))
        refused_in_one_line(lambda: validate_like_the_plays(path))


@FUZZ
@given(data=structures)
def test_arbitrary_yaml_structures_load_or_are_refused(data: Any) -> None:
    content = yaml.safe_dump(data, allow_unicode=True).encode("utf-8", "surrogatepass")
    with inventory_file(content) as path:
        assert_loaded_or_refused(*run_cli("inventory", "graph", "-i", str(path)))


@FUZZ
@given(position=st.integers(0, len(EXAMPLE)), insert=st.sampled_from(
    [":", "-", "[", "]", "{", "}", "&a", "*a", "!vault", "!unsafe", "!!binary", "? ", "\t", "\n", "  ", "%", "|", ">",
     "'", '"', "#", "<<: *a", "\0", "\u2028", "ws[3:1]"]) | hostile_text)
def test_a_damaged_example_inventory_loads_or_is_refused(position: int, insert: str) -> None:
    content = (EXAMPLE[:position] + insert + EXAMPLE[position:]).encode("utf-8", "surrogatepass")
    with inventory_file(content) as path:
        assert_loaded_or_refused(*run_cli("inventory", "list", "-i", str(path)))
        refused_in_one_line(lambda: validate_like_the_plays(path))


def test_the_one_line_promise_holds_in_a_real_process(tmp_path: Path) -> None:
    """A sample through `python -m provision`, as a user runs it: exit 1, one line, no traceback."""
    path = tmp_path / "site.yml"
    for content in (b"\xff\xfe\x00", b"all: [", b"all:\n  vars:\n    project: \"a;b\"\n  hosts:\n    nas:\n"):
        path.write_bytes(content)
        done = subprocess.run([sys.executable, "-m", "provision", "onboard", "-i", str(path)], capture_output=True,
                              text=True, check=False, cwd=REPO)
        assert done.returncode == 1, done.stderr
        assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("error: "), done.stderr


# ---------------------------------------------------------------- host patterns

NAMES = ["nas", "ws1", "ws2", "10.0.0.7", "::1", "localhost", "web-01.example.com"]
GROUPS = {"all": NAMES, "ungrouped": [], "storage": ["nas"], "clients": NAMES[1:]}


@FUZZ
@given(pattern=st.one_of(hostile_text, st.lists(hostile_text, max_size=4).map(":".join),
                         st.lists(hostile_text, max_size=4).map(",".join)))
def test_any_limit_pattern_selects_hosts_or_is_refused(pattern: str) -> None:
    try:
        selected = match_hosts(pattern, NAMES, GROUPS, localhost="localhost")
    except InputError as error:
        assert "\n" not in str(error).replace(repr(pattern), "")
    else:
        assert set(selected) <= set(NAMES)
    split_host_pattern(pattern)


@FUZZ
@given(text=hostile_text | st.from_regex(r"[a-z]{0,3}\[[0-9a-zA-Z:-]{0,8}\][a-z]{0,3}", fullmatch=True))
def test_host_ranges_and_addresses_expand_or_raise_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        expanded = expand_hostname_range(text)
        assert isinstance(expanded, list)
    with contextlib.suppress(ValueError):
        parse_address(text)


def test_a_huge_host_range_is_refused_not_expanded() -> None:
    """`ws[0:99999999]` would make a hundred million hosts: refused with the line, like an alias bomb."""
    with inventory_file(b"all:\n  hosts:\n    ws[0:99999999]:\n") as path:
        status, stderr = run_cli("inventory", "list", "-i", str(path))
    assert status == 1 and "site.yml:3" in stderr, stderr


# ---------------------------------------------------------------- vault reader

def vault_header(log2n: int, r: int, p: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, log2n, r, p, b"s" * 16, b"n" * 12)


@FUZZ
@given(data=st.one_of(
    st.binary(max_size=200),
    st.builds(lambda log2n, r, p, body: vault_header(log2n, r, p) + body,
              st.integers(0, 255), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=64)),
    st.builds(lambda tail: MAGIC + tail, st.binary(max_size=80))))
def test_a_damaged_vault_is_refused_in_one_line(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "site.vault"
        path.write_bytes(data)
        path.chmod(0o600)
        with pytest.raises(SecretsError) as refused:
            VaultFile(path).read(b"password")
    assert "\n" not in str(refused.value)


@settings(max_examples=10, deadline=None)
@given(body=st.binary(max_size=64))
def test_a_vault_with_sane_parameters_but_garbage_body_is_refused(body: bytes) -> None:
    """Passes the header checks, runs the KDF, then fails authentication: still one line."""
    data = vault_header(14, 8, 1) + body + b"t" * 16
    with pytest.raises(SecretsError) as refused:
        decrypt_vault(data, b"password", Path("site.vault"))
    assert "\n" not in str(refused.value)


# ---------------------------------------------------------------- authorized_keys parsing

LINE_BYTES = st.binary(max_size=80) | st.sampled_from([
    b"ssh-ed25519 AAAA provision:site:ws1", b"restrict,command=\"x\" ssh-ed25519 AAAA provision:site:ws1\r",
    b"# provision:site:ws1", b"\x0cssh-rsa AAAA x", b"\xff\xfe provision:site:ws2", b"  \t", b"provision:a:b"])


@FUZZ
@given(content=st.lists(LINE_BYTES, max_size=8).map(b"\n".join), ending=st.sampled_from([b"", b"\n", b"\r\n"]))
def test_any_authorized_keys_content_parses_and_foreign_lines_survive(content: bytes, ending: bytes) -> None:
    content += ending
    foreign = [line for line in file_lines(content) if line_marker(line) != "provision:site:ws1"]
    for line in file_lines(content):
        line_public_key(line.decode(errors="surrogateescape"))
    replaced = replace_marked_lines(content, {"provision:site:ws1": ["restrict ssh-ed25519 BBBB provision:site:ws1"]})
    assert [line for line in file_lines(replaced) if line_marker(line) != "provision:site:ws1"] == foreign
    displayed(content)
    key_line_findings("nas", "/home/dvc/.ssh/authorized_keys", content, "sftp", {}, "site")


# ---------------------------------------------------------------- audit scanner

PATHS = st.sampled_from([".dvc/config", "sub/.dvc/config.local", ".env", ".env.prod", "notes.txt", "a b/c\td",
                         ".secrets.baseline", "\u202e.env"]) | hostile_text.filter(lambda p: "\0" not in p)
CONFIG_TEXT = st.lists(st.sampled_from(["[core]", "['remote \"s\"']", "[remote \"s\"", "password = x", "url = "
                                        "ssh://u:p@h/x", "  password=", "token = $T", "[[x]]", "a = '''", "= x",
                                        "-----BEGIN OPENSSH PRIVATE KEY-----", "K=v", "export PASS=x"]) | hostile_text,
                       max_size=8).map("\n".join)


@FUZZ
@given(path=PATHS, text=(CONFIG_TEXT | st.text(max_size=200)).map(lambda text: text.encode(
    "utf-8", "surrogateescape").decode("utf-8", "replace")))
def test_the_audit_scanner_reads_any_text(path: str, text: str) -> None:
    """Any text as the scanner gets it: decoded from a file's bytes with errors replaced."""
    with rules_for(None) as rules:
        for hit in rules.scan_text(path, text):
            assert hit.finding.line is None or hit.finding.line >= 1
        rules.scan_lines(path, list(enumerate(text.splitlines(), start=1)))
    dvc_config_hits(path, text)


@FUZZ
@given(added=st.lists(st.binary(max_size=60).map(lambda line: line.replace(b"\n", b"")), min_size=1, max_size=6),
       path=st.binary(min_size=1, max_size=20).filter(lambda p: b"\n" not in p and b" " not in p))
def test_the_history_parser_reads_any_added_lines_and_path(added: list[bytes], path: bytes) -> None:
    """`git log -p` output as git writes it, around whatever a commit added, under whatever name."""
    quoted = b'"b/' + b"".join(b"\\%03o" % byte for byte in path) + b'"'
    log = [b"\x01commit " + b"0" * 40 + b"\n", b"diff --git a/x " + quoted + b"\n", b"+++ " + quoted + b"\n",
           b"@@ -0,0 +1,%d @@\n" % len(added), *(b"+" + line + b"\n" for line in added)]
    changes = list(parse_log(log))
    assert len(changes) == 1 and [number for number, _ in changes[0].added] == list(range(1, len(added) + 1))
    with rules_for(None) as rules:
        rules.scan_lines(changes[0].path, changes[0].added)


def test_audit_repo_reads_a_history_of_hostile_names_and_bytes(tmp_path: Path) -> None:
    """Real git: names with line breaks, quotes, backslashes and invalid UTF-8; content that looks like a diff."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    names = [b"new\nline", b'quote"d', b"back\\slash", b"tab\tname", b"\xff\xfe.env", b"\xe2\x80\xaeevil.env",
             b"+++ b", b"@@ x"]
    for name in names:
        (repo / os.fsdecode(name)).write_bytes(b"diff --git a/x b/x\n@@ -1 +x,y @@\n+++ /dev/null\n"
                                              b"PASSWORD=hunter2\n\xff\x00\r\n")
    hostile_directory = repo / os.fsdecode(b"d\xffir\nname")
    hostile_directory.mkdir()
    (hostile_directory / ".env").write_text("DB_PASSWORD=hunter2\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "hostile"], check=True)
    status, stderr = run_cli("audit", "repo", str(repo), "--history")
    assert status == 8 and "Traceback" not in stderr and "internal" not in stderr, stderr
