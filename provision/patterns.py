"""Ansible host patterns: `--limit` expressions and `web[01:10]` host ranges.

Behaviour follows ansible-core's InventoryManager (split on `,` or `:`, unions first, then `&`
intersections, then `!` exclusions; a name matching a group selects all of its hosts, globs and `~regex`
also match host names; `group[0]`/`group[1:3]` subscripts) so that `--limit` selects what Ansible would,
and warns where Ansible warns.
"""

from __future__ import annotations

import fnmatch
import re
import string
from collections.abc import Callable, Mapping, Sequence

from provision.errors import InputError

_NUMERIC_RANGE = r"\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_HEX_RANGE = r"\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]"
_ALNUM_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_IPV6_PART = rf"(?:[0-9a-f]{{1,4}}|{_HEX_RANGE})"
_IPV4_PART = rf"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{_NUMERIC_RANGE})"
_LABEL = rf"(?:\w|{_ALNUM_RANGE})(?:[\w_-]|{_ALNUM_RANGE})*(?<![_-])"
_BRACKETED_PORT_RE = re.compile(r"\[(.+)\]:([0-9]+)\Z")
_HOST_PORT_RE = re.compile(r"((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)\Z")
_IPV4_RE = re.compile(rf"(?:{_IPV4_PART}\.){{3}}{_IPV4_PART}\Z", re.IGNORECASE)
_IPV6_RE = re.compile("(?:" + "|".join([
    rf"(?:{_IPV6_PART}:){{7}}{_IPV6_PART}",
    rf"(?:{_IPV6_PART}:){{1,6}}:",
    *(rf"(?:{_IPV6_PART}:){{{left}}}(?::{_IPV6_PART}){{1,{7 - left}}}" for left in range(1, 6)),
    rf"(?:{_IPV6_PART}:){{6}}(?::{_IPV6_PART})",
    rf":(?::{_IPV6_PART}){{1,6}}",
    rf"{_IPV6_PART}?::",
    rf"(?:0:){{6}}(?:{_IPV6_PART}\.){{3}}{_IPV6_PART}",
    rf"::(?:ffff:)?(?:{_IPV6_PART}\.){{3}}{_IPV6_PART}",
    rf"(?:0:){{5}}ffff:(?:{_IPV6_PART}\.){{3}}{_IPV6_PART}",
]) + r")\Z", re.IGNORECASE)
_HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z", re.IGNORECASE)
_PATTERN_PART_RE = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_SUBSCRIPT_RE = re.compile(r"(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]\Z")
Warn = Callable[[str], None]
#: Names Ansible treats as the implicit localhost: a pattern naming one is never "unmatched".
LOCALHOST_NAMES = ("127.0.0.1", "localhost", "::1")
#: Hosts one range pattern may make: `ws[0:99999999]` is a typo or an attack, not a fleet.
MAX_RANGE_HOSTS = 100_000


def _is_ip_address(name: str) -> bool:
    """True for an IPv4 or IPv6 address as Ansible recognises one (ranges allowed)."""
    return bool(_IPV4_RE.match(name) or _IPV6_RE.match(name))


def parse_address(address: str) -> tuple[str, int | None]:
    """Split `host`, `host:port` or `[host]:port`; ValueError when it is no host identifier.

    ansible-core's parse_address with ranges allowed: IPv4, IPv6 and hostnames, each possibly
    holding `[x:y]` ranges.
    """
    port: int | None = None
    for port_re in (_BRACKETED_PORT_RE, _HOST_PORT_RE):
        match = port_re.match(address)
        if match:
            address, port = match.group(1), int(match.group(2))
    if not (_is_ip_address(address) or _HOSTNAME_RE.match(address)):
        raise ValueError(f"not a valid network hostname: {address}")
    return address, port


def expand_hostname_range(pattern: str) -> list[str]:
    """`ws[01:03]` -> ws01, ws02, ws03; `[a:c]` letters; `[0:10:5]` steps; several ranges multiply.

    ansible-core's algorithm, quirks included, so that the same hosts exist here as there: a
    bound of several letters is looked up as a substring of a-zA-Z (`[ab:cd]` is a, b, c) and a
    negative step gives no hosts. Unlike Ansible, a pattern of more than MAX_RANGE_HOSTS hosts is
    refused rather than expanded until memory runs out.
    """
    if "[" not in pattern:
        return [pattern]
    if "]" not in pattern:
        raise ValueError("host range has no closing ']'")
    head, inside, tail = pattern.replace("[", "|", 1).replace("]", "|", 1).split("|", 2)
    bounds = inside.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError("host range must be begin:end or begin:end:step")
    begin, end = bounds[0] or "0", bounds[1]
    step = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise ValueError("host range must specify end value")
    width = len(begin) if begin[0] == "0" and len(begin) > 1 else 0
    if width and width != len(end):
        raise ValueError("host range must specify equal-length begin and end formats")
    try:
        if begin in string.ascii_letters and end in string.ascii_letters:
            first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
            if first > last:
                raise ValueError("host range must have begin <= end")
            items = list(string.ascii_letters[first:last + 1:int(step)])
        else:
            numbers = range(int(begin), int(end) + 1, int(step))
            if len(numbers) > MAX_RANGE_HOSTS:
                raise ValueError(f"makes {len(numbers)} hosts, more than {MAX_RANGE_HOSTS}")
            items = [str(n).zfill(width) for n in numbers]
    except ValueError as error:
        raise ValueError(f"host range [{inside}]: {error}") from None
    names: list[str] = []
    for item in items:
        names.extend(expand_hostname_range(f"{head}{item}{tail}"))
        if len(names) > MAX_RANGE_HOSTS:
            raise ValueError(f"{pattern!r} makes more than {MAX_RANGE_HOSTS} hosts")
    return names


def split_host_pattern(pattern: str) -> list[str]:
    """`a,b` or `a:b:!c` -> parts; a lone address such as `10.0.0.1:22` or `ws[1:3]` stays whole."""
    if "," in pattern:
        parts = pattern.split(",")
    else:
        try:
            parse_address(pattern)
            parts = [pattern]
        except ValueError:
            parts = _PATTERN_PART_RE.findall(pattern)
    return [part.strip() for part in parts if part.strip()]


def order_patterns(patterns: Sequence[str]) -> list[str]:
    """Unions first, then `&` intersections, then `!` exclusions; only modifiers imply `all`."""
    unions = [p for p in patterns if p and p[0] not in "!&"]
    intersections = [p for p in patterns if p.startswith("&")]
    exclusions = [p for p in patterns if p.startswith("!")]
    return (unions or ["all"]) + intersections + exclusions


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern[1:] if pattern.startswith("~") else fnmatch.translate(pattern))
    except re.error as error:
        raise InputError(f"invalid host pattern {pattern!r}: {error}") from None


def _split_subscript(pattern: str, warn: Warn) -> tuple[str, tuple[int, int | None] | None]:
    if pattern.startswith("~"):
        return pattern, None
    match = _SUBSCRIPT_RE.match(pattern)
    if not match:
        return pattern, None
    base, index, start, separator, end = match.groups()
    if index is not None:
        return base, (int(index), None)
    if separator == "-":
        warn("Use [x:y] inclusive subscripts instead of [x-y] which has been removed")
    return base, (int(start), int(end) if end else -1)


def _match_one(pattern: str, host_names: Sequence[str], group_hosts: Mapping[str, Sequence[str]],
               localhost: str | None, warn: Warn) -> list[str]:
    """Hosts of every group the pattern names, plus hosts it names when it is a glob or regex.

    As in Ansible, the subscript applies to that list before duplicates are removed, and `localhost`,
    `127.0.0.1` or `::1` name the inventory's first localhost-like host when nothing else matches.
    """
    expression, subscript = _split_subscript(pattern, warn)
    regex = _compile(expression)
    matched: list[str] = []
    groups = [name for name in group_hosts if regex.match(name)]
    for group in groups:
        matched.extend(group_hosts[group])
    if not groups or expression.startswith("~") or any(c in expression for c in ".?*["):
        matched.extend(name for name in host_names if regex.match(name))
    if not matched and expression in LOCALHOST_NAMES and localhost is not None:
        matched.append(localhost)
    if not matched and not groups and expression != "all" and expression not in LOCALHOST_NAMES:
        warn(f"Could not match supplied host pattern, ignoring: {expression}")
    if subscript is None or not matched:
        return matched
    start, end = subscript
    if not end:
        try:
            return [matched[start]]
        except IndexError:
            raise InputError(f"no host matches the subscripted pattern {pattern!r}") from None
    return matched[start:(len(matched) - 1 if end == -1 else end) + 1]


def match_hosts(pattern: str, host_names: Sequence[str],
                group_hosts: Mapping[str, Sequence[str]], warn: Warn = lambda message: None,
                localhost: str | None = None) -> list[str]:
    """Host names selected by an Ansible pattern, in the order Ansible evaluates them.

    `group_hosts` maps each group (`all` and `ungrouped` included) to its hosts, descendants included;
    `warn` receives Ansible's warnings (a part that matches nothing, a removed subscript form);
    `localhost` is the inventory's first host named like the local machine, if any.
    """
    known = set(host_names)
    selected: dict[str, None] = {}
    for part in order_patterns(split_host_pattern(pattern)):
        if part in known:
            selected.setdefault(part)
            continue
        matched = _match_one(part[1:] if part[0] in "!&" else part, host_names, group_hosts, localhost, warn)
        if part[0] == "!":
            excluded = set(matched)
            selected = {name: None for name in selected if name not in excluded}
        elif part[0] == "&":
            kept = set(matched)
            selected = {name: None for name in selected if name in kept}
        else:
            selected.update(dict.fromkeys(matched))
    return list(selected)
