"""Ansible host patterns and host ranges, without an inventory file."""

from __future__ import annotations

import pytest

from provision.errors import InputError
from provision.patterns import (
    expand_hostname_range,
    match_hosts,
    order_patterns,
    parse_address,
    split_host_pattern,
)


@pytest.mark.parametrize(("address", "expected"), [
    ("ws01", ("ws01", None)),
    ("ws01:2222", ("ws01", 2222)),
    ("10.0.0.1", ("10.0.0.1", None)),
    ("10.0.0.1:22", ("10.0.0.1", 22)),
    ("[::1]:2200", ("::1", 2200)),
    ("fe80::1", ("fe80::1", None)),
    ("ws[01:03].lab", ("ws[01:03].lab", None)),
    ("ws[01:03]:2222", ("ws[01:03]", 2222)),
    ("node.example.org", ("node.example.org", None)),
])
def test_parse_address(address: str, expected: tuple[str, int | None]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["web:db", "a b", "ws*", "-bad", "bad_", "x;y"])
def test_parse_address_refuses_non_hosts(address: str) -> None:
    with pytest.raises(ValueError):
        parse_address(address)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("ws", ["ws"]),
    ("ws[1:3]", ["ws1", "ws2", "ws3"]),
    ("ws[01:03]", ["ws01", "ws02", "ws03"]),
    ("ws[08:10]-x", ["ws08-x", "ws09-x", "ws10-x"]),
    ("n[a:c]", ["na", "nb", "nc"]),
    ("n[0:10:5]", ["n0", "n5", "n10"]),
    ("r[1:2]c[a:b]", ["r1ca", "r1cb", "r2ca", "r2cb"]),
    ("n[:2]", ["n0", "n1", "n2"]),
    ("web[1:3:-1]", []),
    ("web[ab:cd]", ["weba", "webb", "webc"]),
])
def test_expand_hostname_range(pattern: str, expected: list[str]) -> None:
    assert expand_hostname_range(pattern) == expected


@pytest.mark.parametrize(("pattern", "message"), [
    ("ws[01:3]", "equal-length begin and end"),
    ("ws[1]", "begin:end"),
    ("ws[1:]", "must specify end value"),
    ("ws[c:a]", "begin <= end"),
    ("ws[1:3:x]", "invalid literal"),
    ("ws[1:3:0]", "must not be zero"),
    ("ws[Y:b]", "begin <= end"),
    ("ws[1:3", "closing"),
    ("ws[a:5]", "invalid literal"),
])
def test_expand_hostname_range_errors(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        expand_hostname_range(pattern)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("web", ["web"]),
    ("web:db", ["web", "db"]),
    ("web,db", ["web", "db"]),
    ("web, db ,", ["web", "db"]),
    ("web:!ws01:&gpu", ["web", "!ws01", "&gpu"]),
    ("10.0.0.1:22", ["10.0.0.1:22"]),
    ("ws[1:3]", ["ws[1:3]"]),
    ("~ws0[12]:db", ["~ws0[12]", "db"]),
    ("web*:db?", ["web*", "db?"]),
])
def test_split_host_pattern(pattern: str, expected: list[str]) -> None:
    assert split_host_pattern(pattern) == expected


def test_order_patterns_unions_then_intersections_then_exclusions() -> None:
    assert order_patterns(["!a", "b", "&c", "d", "!e"]) == ["b", "d", "&c", "!a", "!e"]
    assert order_patterns(["!a"]) == ["all", "!a"]
    assert order_patterns(["&a"]) == ["all", "&a"]


HOSTS = ["nas", "ws01", "ws02", "gpu01", "web"]
GROUPS = {
    "all": ["nas", "ws01", "ws02", "gpu01", "web"],
    "ungrouped": ["web"],
    "storage": ["nas"],
    "workstations": ["ws01", "ws02", "gpu01"],
    "gpu": ["gpu01"],
    "web": ["ws01"],
}


@pytest.mark.parametrize(("pattern", "expected"), [
    ("all", HOSTS),
    ("*", HOSTS),
    ("nas", ["nas"]),
    ("gpu", ["gpu01"]),
    ("ws*", ["ws01", "ws02"]),
    ("work*", ["ws01", "ws02", "gpu01"]),
    ("ws0?", ["ws01", "ws02"]),
    ("~ws0[2]", ["ws02"]),
    ("~gpu|nas", ["gpu01", "nas"]),
    ("storage:gpu", ["nas", "gpu01"]),
    ("storage,gpu", ["nas", "gpu01"]),
    ("workstations:!gpu", ["ws01", "ws02"]),
    ("workstations:&gpu", ["gpu01"]),
    ("!gpu:&workstations", ["ws01", "ws02"]),
    ("!storage", ["ws01", "ws02", "gpu01", "web"]),
    ("workstations[0]", ["ws01"]),
    ("workstations[-1]", ["gpu01"]),
    ("workstations[1:2]", ["ws02", "gpu01"]),
    ("workstations[1:]", ["ws02", "gpu01"]),
    ("nothing", []),
    ("ungrouped", ["web"]),
])
def test_match_hosts(pattern: str, expected: list[str]) -> None:
    assert match_hosts(pattern, HOSTS, GROUPS) == expected


def test_a_host_name_wins_over_a_group_of_the_same_name() -> None:
    """Ansible resolves a plain word that names a host to that host before looking at groups."""
    assert match_hosts("web", HOSTS, GROUPS) == ["web"]


def test_invalid_regex_is_an_input_error() -> None:
    with pytest.raises(InputError, match="invalid host pattern"):
        match_hosts("~ws(", HOSTS, GROUPS)


def test_subscript_out_of_range_is_an_input_error() -> None:
    with pytest.raises(InputError, match="subscripted"):
        match_hosts("gpu[5]", HOSTS, GROUPS)


def test_subscript_applies_before_duplicates_are_removed() -> None:
    """`ws*[1:2]` counts group and host matches alike, as ansible-core does: group web gives ws01 first."""
    groups = {**GROUPS, "ws": ["ws01", "ws02"]}
    assert match_hosts("ws*[1:2]", HOSTS, groups) == ["ws02", "ws01"]
    assert match_hosts("ws*[2]", HOSTS, groups) == ["ws01"]
    assert match_hosts("workstations[0:0]", HOSTS, GROUPS) == ["ws01"]


def test_unmatched_parts_and_old_subscripts_warn_in_ansibles_words() -> None:
    warnings: list[str] = []
    assert match_hosts("nothing:gpu:localhost", HOSTS, GROUPS, warnings.append) == ["gpu01"]
    assert match_hosts("workstations[0-1]", HOSTS, GROUPS, warnings.append) == ["ws01", "ws02"]
    assert warnings == ["Could not match supplied host pattern, ignoring: nothing",
                        "Use [x:y] inclusive subscripts instead of [x-y] which has been removed"]
