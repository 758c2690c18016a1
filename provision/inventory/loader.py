"""YAML with positions: every mapping remembers the line of each key, so errors and warnings name it.

PyYAML's SafeLoader gives YAML 1.1 scalars (`yes`, `on`) the meaning Ansible gives them. Ansible's own
tags load as Ansible loads them: `!unsafe` strings stay strings (marked, so that `--json` shows them as
ansible-inventory does), `!vault` values stay opaque, and a duplicate key warns and the last one wins.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from provision.errors import InputError


@dataclass(frozen=True)
class _Origin:
    """Where a value was written."""

    file: str
    line: int


@dataclass(frozen=True)
class _SourcedValue:
    """A var's value and where it was set; `conflict` is the line of a different value the same mapping
    gave it before (Ansible keeps the last and warns)."""

    value: Any
    origin: _Origin
    conflict: int | None = None


_Vars = dict[Any, _SourcedValue]


class UnsafeText(str):
    """A `!unsafe` string: Ansible never templates it; its value is the text itself."""

    __slots__ = ()


@dataclass(frozen=True)
class VaultedValue:
    """An inline `!vault` value: provision cannot decrypt it, so it is carried as it was written."""

    ciphertext: str


@dataclass
class Warnings:
    """Warnings of one load, each shown once (Ansible's words, with where it was written)."""

    shown: list[str] = field(default_factory=list)
    messages: set[str] = field(default_factory=set)

    def add(self, message: str, origin: _Origin | None = None, *, kind: str = "WARNING") -> None:
        if message in self.messages:
            return
        self.messages.add(message)
        where = f"{origin.file}:{origin.line}: " if origin else ""
        self.shown.append(f"[{kind}]: {where}{message}")

    def emit(self) -> None:
        """Print them to stderr, where Ansible prints its warnings."""
        for text in self.shown:
            print(text, file=sys.stderr)


class _MarkedDict(dict):
    """A YAML mapping that remembers the line of each key."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}
        self.conflicts: dict[Any, int] = {}


#: libyaml's parser when PyYAML has it (as Ansible prefers it too), else PyYAML's own.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _MarkedLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """SafeLoader (Ansible's YAML 1.1 semantics) that records key lines and warns about duplicate keys."""

    def __init__(self, stream: str, display_path: str, warnings: Warnings) -> None:
        super().__init__(stream)
        self.display_path = display_path
        self.warnings = warnings

    def construct_marked_map(self, node: yaml.MappingNode) -> Iterable[_MarkedDict]:
        mapping = _MarkedDict()
        yield mapping
        self.flatten_mapping(node)
        seen: dict[Any, tuple[int, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                earlier = seen.get(key)
            except TypeError:
                raise InputError("a mapping key must be a scalar",
                                 file=self.display_path, line=line) from None
            if earlier is not None:
                self.warnings.add(f"Found duplicate mapping key {key!r}. Using last defined value only.",
                                  _Origin(self.display_path, line))
                if self._differ(earlier[1], value_node):
                    mapping.conflicts[key] = earlier[0]
                else:
                    mapping.conflicts.pop(key, None)
            seen[key] = (line, value_node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            mapping[key] = self.construct_object(value_node, deep=False)
            mapping.lines[key] = key_node.start_mark.line + 1

    def _differ(self, left: yaml.Node, right: yaml.Node) -> bool:
        """Whether two values written for one key differ (a repeated identical line is harmless)."""
        try:
            return bool(self.construct_object(left, deep=True) != self.construct_object(right, deep=True))
        except InputError:
            return True

    def construct_unsafe(self, node: yaml.Node) -> Any:
        """Ansible's `!unsafe` marks every string inside the value; other scalars stay as they are."""
        if isinstance(node, yaml.ScalarNode):
            return UnsafeText(self.construct_scalar(node))
        if isinstance(node, yaml.SequenceNode):
            return [_mark_unsafe(self.construct_object(child, deep=True)) for child in node.value]
        return _mark_unsafe(self.construct_mapping(node, deep=True))

    def construct_vault(self, node: yaml.Node) -> VaultedValue:
        if not isinstance(node, yaml.ScalarNode):
            raise InputError("a !vault value must be the encrypted text", file=self.display_path,
                             line=node.start_mark.line + 1)
        return VaultedValue(self.construct_scalar(node))

    def construct_binary(self, node: yaml.Node) -> Any:
        raise InputError("!!binary values are not supported (Ansible cannot show them either): use a string",
                         file=self.display_path, line=node.start_mark.line + 1)


_MarkedLoader.add_constructor("tag:yaml.org,2002:map", _MarkedLoader.construct_marked_map)
_MarkedLoader.add_constructor("!unsafe", _MarkedLoader.construct_unsafe)
_MarkedLoader.add_constructor("!vault", _MarkedLoader.construct_vault)
_MarkedLoader.add_constructor("tag:yaml.org,2002:binary", _MarkedLoader.construct_binary)


def _mark_unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return UnsafeText(value)
    if isinstance(value, list):
        return [_mark_unsafe(item) for item in value]
    if isinstance(value, dict):
        return {key: _mark_unsafe(item) for key, item in value.items()}
    return value


#: Nodes a document may hold once its aliases are expanded: a few aliases of aliases (a "billion laughs"
#: document) stay small as text but would make every later walk over the values run for ever.
MAX_EXPANDED_NODES = 1_000_000
#: Collections a value may nest: deeper ones would exhaust Python's stack in every recursive walk.
MAX_DEPTH = 200


def _check_expanded_size(root: yaml.Node, display_path: str) -> None:
    """Refuse a document whose aliases expand past MAX_EXPANDED_NODES, refer to themselves, or that nests
    deeper than MAX_DEPTH."""
    sizes: dict[int, int] = {}
    pending: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise InputError(f"invalid YAML: collections nested more than {MAX_DEPTH} deep",
                             file=display_path, line=node.start_mark.line + 1)
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in pending:
            raise InputError("invalid YAML: an alias refers to the collection that contains it",
                             file=display_path, line=node.start_mark.line + 1)
        pending.add(id(node))
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [item for pair in node.value for item in pair]
        total = 1 + sum(size(child, depth + 1) for child in children)
        if total > MAX_EXPANDED_NODES:
            raise InputError(f"invalid YAML: its aliases expand to more than {MAX_EXPANDED_NODES} values "
                             "(an alias bomb?)", file=display_path, line=node.start_mark.line + 1)
        pending.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root, 0)


def _read_yaml(path: Path, display_path: str, warnings: Warnings) -> Any:
    """One YAML document; InputError with file:line when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", file=display_path) from None
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror}", file=display_path) from None
    if text.lstrip().startswith("$ANSIBLE_VAULT"):
        raise InputError("encrypted with ansible-vault, which provision cannot read: keep secrets in "
                         "`provision secrets`", file=display_path)
    loader = _MarkedLoader(text, display_path, warnings)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node, display_path)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "cannot parse"
        raise InputError(f"invalid YAML: {problem}", file=display_path,
                         line=mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as error:
        character = chr(error.character) if isinstance(error.character, int) else error.character
        raise InputError(f"invalid YAML: character {character!r} is not allowed in YAML",
                         file=display_path, line=text.count("\n", 0, error.position) + 1) from None
    except yaml.YAMLError as error:
        raise InputError(f"invalid YAML: {' '.join(str(error).split())}", file=display_path) from None
    finally:
        loader.dispose()


def _line(mapping: Any, key: Any, default: int) -> int:
    return mapping.lines.get(key, default) if isinstance(mapping, _MarkedDict) else default
