"""Ansible host patterns: `--limit` expressions and `web[01:10]` host ranges.

Behaviour follows ansible-core's InventoryManager (split on `,` or `:`, unions first, then `&`
intersections, then `!` exclusions; a name matching a group selects all of its hosts, globs and `~regex`
also match host names; `group[0]`/`group[1:3]` subscripts) so that `--limit` selects what Ansible would.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import string
from collections.abc import Mapping, Sequence

from provision.errors import InputError

_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_RANGE})(?:[\w-]|{_RANGE})*(?<![_-])"
_HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z", re.IGNORECASE)
_IPV4_PART = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]{1,2}|\[[0-9]+:[0-9]+(?::[0-9]+)?\])"
_IPV4_RE = re.compile(rf"(?:{_IPV4_PART}\.){{3}}{_IPV4_PART}\Z")
_BRACKETED_PORT_RE = re.compile(r"\[(.+)\]:([0-9]+)\Z")
_HOST_PORT_RE = re.compile(r"((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)\Z")
_PATTERN_PART_RE = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_SUBSCRIPT_RE = re.compile(r"(.+)\[(?:(-?[0-9]+)|([0-9]+)[:-]([0-9]*))\]\Z")


def _is_address(host: str) -> bool:
    """True for an IPv4/IPv6 address or a hostname, each possibly holding `[x:y]` ranges."""
    if _IPV4_RE.match(host) or _HOSTNAME_RE.match(host):
        return True
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def parse_address(address: str) -> tuple[str, int | None]:
    """Split `host`, `host:port` or `[host]:port`; ValueError when it is no host identifier."""
    port: int | None = None
    for port_re in (_BRACKETED_PORT_RE, _HOST_PORT_RE):
        match = port_re.match(address)
        if match:
            address, port = match.group(1), int(match.group(2))
    if not _is_address(address):
        raise ValueError(f"not a valid network hostname: {address}")
    return address, port


def expand_hostname_range(pattern: str) -> list[str]:
    """`ws[01:03]` -> ws01, ws02, ws03; `[a:c]` letters; `[0:10:5]` steps; several ranges multiply."""
    if "[" not in pattern:
        return [pattern]
    head, _, rest = pattern.partition("[")
    inside, closed, tail = rest.partition("]")
    if not closed:
        raise ValueError(f"host range in {pattern!r} has no closing ']'")
    bounds = inside.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"host range [{inside}] must be begin:end or begin:end:step")
    begin, end = bounds[0] or "0", bounds[1]
    if not end:
        raise ValueError(f"host range [{inside}] has no end value")
    try:
        step = int(bounds[2]) if len(bounds) == 3 else 1
    except ValueError:
        raise ValueError(f"host range [{inside}] has a step that is not a number") from None
    if step < 1:
        raise ValueError(f"host range [{inside}] needs a positive step")
    width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
    if width and width != len(end):
        raise ValueError(f"host range [{inside}] must give begin and end with the same number of digits")
    if len(begin) == len(end) == 1 and begin in string.ascii_letters and end in string.ascii_letters:
        first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
        if first > last:
            raise ValueError(f"host range [{inside}] must have begin <= end")
        items = list(string.ascii_letters[first:last + 1:step])
    else:
        try:
            items = [str(n).zfill(width) for n in range(int(begin), int(end) + 1, step)]
        except ValueError:
            raise ValueError(f"host range [{inside}] must be numbers or single letters") from None
    names: list[str] = []
    for item in items:
        names.extend(expand_hostname_range(f"{head}{item}{tail}"))
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


def _split_subscript(pattern: str) -> tuple[str, tuple[int, int | None] | None]:
    if pattern.startswith("~"):
        return pattern, None
    match = _SUBSCRIPT_RE.match(pattern)
    if not match:
        return pattern, None
    base, index, start, end = match.groups()
    if index is not None:
        return base, (int(index), None)
    return base, (int(start), int(end) if end else -1)


def _match_one(pattern: str, host_names: Sequence[str],
               group_hosts: Mapping[str, Sequence[str]]) -> list[str]:
    """Hosts of every group the pattern names, plus hosts it names when it is a glob or regex."""
    expression, subscript = _split_subscript(pattern)
    regex = _compile(expression)
    matched: list[str] = []
    groups = [name for name in group_hosts if regex.match(name)]
    for group in groups:
        matched.extend(group_hosts[group])
    if not groups or expression.startswith("~") or any(c in expression for c in ".?*["):
        matched.extend(name for name in host_names if regex.match(name))
    unique = list(dict.fromkeys(matched))
    if subscript is None or not unique:
        return unique
    start, end = subscript
    try:
        if end is None:
            return [unique[start]]
    except IndexError:
        raise InputError(f"no host matches the subscripted pattern {pattern!r}") from None
    return unique[start:(len(unique) - 1 if end == -1 else end) + 1]


def match_hosts(pattern: str, host_names: Sequence[str],
                group_hosts: Mapping[str, Sequence[str]]) -> list[str]:
    """Host names selected by an Ansible pattern, in the order Ansible evaluates them.

    `group_hosts` maps each group (`all` and `ungrouped` included) to its hosts, descendants included.
    """
    known = set(host_names)
    selected: dict[str, None] = {}
    for part in order_patterns(split_host_pattern(pattern)):
        if part in known:
            selected.setdefault(part)
            continue
        matched = _match_one(part[1:] if part[0] in "!&" else part, host_names, group_hosts)
        if part[0] == "!":
            excluded = set(matched)
            selected = {name: None for name in selected if name not in excluded}
        elif part[0] == "&":
            kept = set(matched)
            selected = {name: None for name in selected if name in kept}
        else:
            selected.update(dict.fromkeys(matched))
    return list(selected)
