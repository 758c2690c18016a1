"""YAML with positions: every mapping remembers the line of each key, so errors and warnings name it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
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
    """A var's value and where it was set."""

    value: Any
    origin: _Origin


_Vars = dict[str, _SourcedValue]


class _MarkedDict(dict):
    """A YAML mapping that remembers the line of each key."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


class _MarkedLoader(yaml.SafeLoader):
    """SafeLoader (Ansible's YAML 1.1 semantics) that records key lines and refuses duplicate keys."""

    def __init__(self, stream: str, display_path: str) -> None:
        super().__init__(stream)
        self.display_path = display_path

    def construct_marked_map(self, node: yaml.MappingNode) -> Iterable[_MarkedDict]:
        mapping = _MarkedDict()
        yield mapping
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                duplicate = key in seen
            except TypeError:
                raise InputError("a mapping key must be a scalar",
                                 file=self.display_path, line=line) from None
            if duplicate:
                raise InputError(f"duplicate key {key!r} in this mapping: keep one",
                                 file=self.display_path, line=line)
            seen.add(key)
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            mapping[key] = self.construct_object(value_node, deep=False)
            mapping.lines[key] = key_node.start_mark.line + 1

    def construct_unsafe(self, node: yaml.Node) -> Any:
        """Ansible's `!unsafe` only stops templating: the value is the plain string."""
        if isinstance(node, yaml.ScalarNode):
            return self.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return self.construct_sequence(node, deep=True)
        return self.construct_mapping(node, deep=True)

    def construct_vault(self, node: yaml.Node) -> Any:
        raise InputError("ansible-vault values cannot be read by provision: keep secrets in "
                         "`provision secrets`", file=self.display_path, line=node.start_mark.line + 1)

    def construct_binary(self, node: yaml.Node) -> Any:
        raise InputError("!!binary values are not supported (Ansible cannot show them either): use a string",
                         file=self.display_path, line=node.start_mark.line + 1)


_MarkedLoader.add_constructor("tag:yaml.org,2002:map", _MarkedLoader.construct_marked_map)
_MarkedLoader.add_constructor("!unsafe", _MarkedLoader.construct_unsafe)
_MarkedLoader.add_constructor("!vault", _MarkedLoader.construct_vault)
_MarkedLoader.add_constructor("tag:yaml.org,2002:binary", _MarkedLoader.construct_binary)


def _read_yaml(path: Path, display_path: str) -> Any:
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
    loader = _MarkedLoader(text, display_path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "cannot parse"
        raise InputError(f"invalid YAML: {problem}", file=display_path,
                         line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as error:
        raise InputError(f"invalid YAML: {error}", file=display_path) from None
    finally:
        loader.dispose()


def _line(mapping: Any, key: Any, default: int) -> int:
    return mapping.lines.get(key, default) if isinstance(mapping, _MarkedDict) else default

