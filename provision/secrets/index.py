"""The value-free index beside the inventory: which secret names exist, in which backend.

OS keyrings cannot list their entries through the keyring API, so `secrets list` reads this file
instead. It holds names and backend kinds only, never a value, so it may be read without a password.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from provision.local_files import atomic_write, exclusive_lock
from provision.secrets.base import SecretsError

INDEX_SUFFIX = ".secrets-index"
INDEX_FORMAT = "provision-secrets-index/1"
INDEX_MODE = 0o644

Pairs = set[tuple[str, str]]


def index_path(inventory_path: Path) -> Path:
    """`<stem>.secrets-index` beside the inventory."""
    return inventory_path.with_suffix(INDEX_SUFFIX)


class SecretsIndex:
    """Names per backend kind (`keyring`, `vault`), kept in step with every store write."""

    def __init__(self, inventory_path: Path) -> None:
        self.path = index_path(inventory_path)

    def entries(self) -> list[tuple[str, str]]:
        """Sorted (name, backend kind) pairs; empty when no index exists yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as error:
            raise SecretsError(f"{self.path}: cannot read the secrets index: {error.strerror}") from None
        try:
            document = json.loads(text)
            if document.get("format") != INDEX_FORMAT:
                raise ValueError(document.get("format"))
            pairs = {(str(entry["name"]), str(entry["backend"])) for entry in document["secrets"]}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise SecretsError(f"{self.path}: not a {INDEX_FORMAT} file ({type(error).__name__}); "
                               "remove it and set the secrets again") from None
        return sorted(pairs)

    def names(self, backend: str) -> list[str]:
        """Names recorded for one backend kind."""
        return [name for name, kind in self.entries() if kind == backend]

    def record(self, name: str, backend: str) -> None:
        """Note that `name` now exists in `backend`."""
        self._update(lambda pairs: pairs | {(name, backend)})

    def forget(self, name: str, backend: str) -> None:
        """Note that `name` no longer exists in `backend`."""
        self._update(lambda pairs: pairs - {(name, backend)})

    def replace(self, backend: str, names: list[str]) -> None:
        """Make `names` the complete list for `backend` (the vault knows its own names exactly)."""
        self._update(lambda pairs: {pair for pair in pairs if pair[1] != backend}
                     | {(name, backend) for name in names})

    def _update(self, change: Callable[[Pairs], Pairs]) -> None:
        with exclusive_lock(self.path.parent):
            before = set(self.entries())
            after = change(before)
            if after == before:
                return
            document = {"format": INDEX_FORMAT,
                        "secrets": [{"name": name, "backend": kind} for name, kind in sorted(after)]}
            try:
                atomic_write(self.path, (json.dumps(document, indent=2) + "\n").encode("utf-8"), INDEX_MODE)
            except OSError as error:
                raise SecretsError(f"{self.path}: cannot write the secrets index: {error.strerror}") from None
