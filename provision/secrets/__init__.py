"""Secrets for provisioning: the OS keyring or an encrypted vault, scoped lookup, and output masking."""

from provision.secrets.base import ALL_SCOPE, SecretsError, SecretStore, qualify, secret_name, sibling_name, split_name
from provision.secrets.redact import MASK, REDACTOR, Redactor
from provision.secrets.store import StoredSecret, generate_secret, lookup, open_store

__all__ = [
    "ALL_SCOPE",
    "MASK",
    "REDACTOR",
    "Redactor",
    "SecretStore",
    "SecretsError",
    "StoredSecret",
    "generate_secret",
    "lookup",
    "open_store",
    "qualify",
    "secret_name",
    "sibling_name",
    "split_name",
]
