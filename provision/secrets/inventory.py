"""Secrets for a play: opened only when a task first needs one, looked up host, groups, all."""

from __future__ import annotations

import threading

from provision.inventory import Host, Inventory
from provision.secrets.base import SecretStore
from provision.secrets.store import StoredSecret, find, open_store


class SecretLookupForInventory:
    """`(host, key) -> value` over the inventory's store, in the lookup order of docs/security.md."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._store: SecretStore | None = None
        self._lock = threading.Lock()

    def store(self) -> SecretStore:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.inventory.path, self.inventory.name)
            return self._store

    def groups_deepest_first(self, host: Host) -> list[str]:
        groups = [g for g in host.groups if g != "all" and g in self.inventory.groups]
        return sorted(groups, key=lambda g: -self.inventory.groups[g].depth)

    def find(self, host: Host, key: str) -> StoredSecret | None:
        """`key` for `host` and the full name it was found under."""
        return find(self.store(), self.inventory.name, host.name, self.groups_deepest_first(host), key)

    def __call__(self, host: Host, key: str) -> str | None:
        found = self.find(host, key)
        return found.value if found is not None else None
