"""Masking of secret values in anything the tool prints, logs or returns as JSON.

Every value read from or written to a store is registered with the process-wide `REDACTOR`, so output
paths only need to call `REDACTOR.mask(text)`; they never have to know which strings are secret.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import quote

MASK = "********"
MIN_MASKED_LENGTH = 4


def _encodings(value: str) -> set[str]:
    """The value as it appears raw, inside a JSON string, and URL-quoted (e.g. in a remote URL)."""
    return {value, json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1],
            quote(value, safe="")}


class Redactor:
    """Replaces registered secret values with a mask; values shorter than 4 characters are ignored
    because masking them would mangle ordinary words without protecting anything."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def register(self, value: str) -> None:
        """Mask `value` (and its JSON- and URL-escaped forms) in every later `mask` call."""
        if len(value) < MIN_MASKED_LENGTH:
            return
        forms = {form for form in _encodings(value) if len(form) >= MIN_MASKED_LENGTH}
        with self._lock:
            if forms <= self._values:
                return
            self._values |= forms
            # Longest first, so a value that contains another one is masked whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(form) for form in ordered))

    def mask(self, text: str) -> str:
        """`text` with every registered value replaced by the mask."""
        pattern = self._pattern
        if pattern is None:
            return text
        return pattern.sub(MASK, text)


REDACTOR = Redactor()
