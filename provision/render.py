"""The one Jinja2 environment for the files under templates/: strict, no HTML escaping, text kept as written.

Block tags take their own line with them (`trim_blocks`, `lstrip_blocks`) and a template's final newline
stays (`keep_trailing_newline`), so a rendered file is byte for byte what its template shows.

Every value the tool writes into a file passes `one_line`: a line break or NUL inside a value would
add lines of the attacker's choosing to a line-based format (known_hosts, authorized_keys, DVC's
config, chpasswd input). Templates check each `{{ value }}` through the environment's `finalize`;
code that writes values into files without a template (provision.dvc_config) calls `one_line` itself.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jinja2

from provision.errors import ProvisionError
from provision.paths import templates_dir

#: NUL and every character that ends a line for str.splitlines, which configobj (DVC's config reader) uses:
#: a value holding \f or \u2028 would become two lines of config.local when DVC reads it.
LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029\0")


class MultiLineValue(ProvisionError):
    """A value bound for a file holds a line break or NUL (the message never shows the value)."""


def one_line(value: str, what: str) -> str:
    """`value` unchanged, or MultiLineValue naming `what` when it holds a newline, CR or NUL."""
    if any(c in value for c in LINE_BREAKS):
        raise MultiLineValue(f"{what} holds a line break or NUL character; refusing to write it into a file")
    return value


def _finalize(value: object) -> object:
    """Each `{{ expression }}` of a template: its text must stay on one line."""
    if isinstance(value, str):
        one_line(value, "a value")
    return value


def yaml_str(value: object) -> str:
    """A YAML double-quoted scalar: a JSON string is one, whatever characters a path holds."""
    return json.dumps(str(value))


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_dir()), undefined=jinja2.StrictUndefined,
                                     autoescape=False, trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=True, finalize=_finalize)
    environment.filters["yaml_str"] = yaml_str
    return environment


def render(template: str, **context: Any) -> str:
    """`template` (a path under templates/, e.g. "dvc/guard.pth.j2") rendered with `context`."""
    try:
        return _environment().get_template(template).render(**context)
    except MultiLineValue:
        raise MultiLineValue(f"{template}: a value holds a line break or NUL character; refusing to write "
                             "it into a file") from None
