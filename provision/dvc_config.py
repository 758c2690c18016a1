"""DVC's config files (`.dvc/config`, `.dvc/config.local`), written and merged with configobj, the parser DVC
reads them with: a value reads back exactly as it was set (configobj quotes a comma, a `#` or whitespace at
either end), and every value is checked to be one line, so none can add settings of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from configobj import ConfigObj, ConfigObjError, Section

from provision.errors import ProvisionError
from provision.render import one_line

#: Sections as settings name them: {section: {key: value}}, e.g. {'remote "data"': {"url": "..."}}.
Sections = Mapping[str, Mapping[str, str]]

#: How DVC indents the keys of the files it writes itself (`dvc remote add`, `dvc config`).
DVC_INDENT = "    "
_SECTION_RE = re.compile(r'^\s*(remote|machine|db)\s*"(.*)"\s*$')


def config_text(sections: Sections, comment: Sequence[str] = ()) -> str:
    """A file holding `sections`, laid out as DVC writes its own, after `comment` (one `# ` line each)."""
    config = ConfigObj(interpolation=False, indent_type=DVC_INDENT)
    config.initial_comment = [f"# {line}" for line in comment]
    for name, values in sections.items():
        config[name] = {key: one_line(value, f"{key} for a DVC config") for key, value in values.items()}
    return _text(config)


def parse_config(text: str) -> ConfigObj:
    """`text` as DVC reads it; an error names the line, never its content (it may hold a password)."""
    try:
        # str.splitlines, as configobj itself splits the file DVC reads: the same lines DVC sees.
        return ConfigObj(text.splitlines(), interpolation=False)
    except ConfigObjError as error:
        line = getattr(error, "line_number", None)
        raise ProvisionError(f"cannot parse .dvc/config.local{f' at line {line}' if line else ''}: "
                             "fix or remove that line, then run again") from None


def merge_config(existing: str | None, settings: Sections, remove: Mapping[str, Sequence[str]]) -> str | None:
    """`existing` with `settings` set and `remove`'s keys gone, or None when nothing would change.

    Everything else (other sections, other keys, comments) stays; a section left empty by a removal
    goes.
    """
    config = parse_config(existing or "")
    changed = False
    for name, keys in remove.items():
        section = _section(config, name, create=False)
        if section is not None and _remove(section, keys):
            changed = True
            if not section.scalars and not section.sections:
                del config[section.name]
    for name, values in settings.items():
        section = _section(config, name, create=True)
        for key, value in values.items():
            changed = _set(section, key, value) or changed
    if not changed:
        return None
    return _text(config)


def _text(config: ConfigObj) -> str:
    return "".join(f"{line}\n" for line in config.write())


def _normalized(section: str) -> str:
    match = _SECTION_RE.match(section)
    return f'{match.group(1)} "{match.group(2)}"' if match else section.strip().lower()


def _section(config: ConfigObj, name: str, *, create: bool) -> Section | None:
    """The section DVC would take for `name` (however spaced or cased), made when missing and `create`."""
    for existing in config.sections:
        if _normalized(existing) == _normalized(name):
            return config[existing]
    if not create:
        return None
    config[name] = {}
    return config[name]


def _set(section: Section, key: str, value: str) -> bool:
    """Set key (DVC lowercases keys: other spellings go); says whether anything changed."""
    one_line(value, f"{key} for .dvc/config.local")
    changed = False
    for existing in [k for k in section.scalars if k.lower() == key and k != key]:
        del section[existing]
        changed = True
    if section.get(key) != value:
        section[key] = value
        changed = True
    return changed


def _remove(section: Section, keys: Sequence[str]) -> bool:
    doomed = [k for k in section.scalars if k.lower() in keys]
    for key in doomed:
        del section[key]
    return bool(doomed)
