"""A finding: what rule found what where, with the value masked and the fix, for lines and for JSON."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from provision.secrets import MASK, REDACTOR

#: Said with every finding of a committed secret: rewriting history does not unpublish it.
ROTATE_FIRST = "rotate it first: a pushed secret is already out; rewrite history only after rotating"


@dataclass(frozen=True)
class Finding:
    """One problem. `value` shows where the secret was with the secret itself masked (never the secret)."""

    rule: str
    path: str
    message: str
    fix: str
    line: int | None = None
    value: str = ""
    commit: str | None = None
    host: str | None = None

    def at_commit(self, commit: str) -> Finding:
        return replace(self, commit=commit)

    def at_host(self, host: str) -> Finding:
        return replace(self, host=host)

    def where(self) -> str:
        place = f"{self.path}:{self.line}" if self.line else self.path
        if self.host:
            place = f"{self.host}:{place}"
        return f"{place} @{self.commit[:12]}" if self.commit else place

    def text(self) -> str:
        """One line for people."""
        shown = f" ({self.value})" if self.value else ""
        return REDACTOR.mask(f"{self.rule}: {self.where()}{shown}: {self.message}. Fix: {self.fix}")

    def document(self) -> dict[str, Any]:
        """The JSON form; keys with no value are left out."""
        fields = {"rule": self.rule, "host": self.host, "file": self.path, "line": self.line, "commit": self.commit,
                  "value": self.value, "message": self.message, "fix": self.fix}
        return {key: REDACTOR.mask(value) if isinstance(value, str) else value
                for key, value in fields.items() if value not in (None, "")}


def masked(text: str, secret: str) -> str:
    """`text` (a line or a URL) with `secret` replaced by the mask."""
    return text.replace(secret, MASK)
