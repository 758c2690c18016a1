"""Content rules: what in a file (or in the lines a commit added) is a credential.

Ours know DVC: credential keys of DVC's remote schema in any DVC config (`.dvc/config`, a subrepo's
`sub/.dvc/config`, a tracked `.dvc/config.local`), parsed with configobj as DVC parses it; credentials
in URLs; private keys; `.env`-style files. Everything else goes through detect-secrets, used as a
library with the plugins and filters of the repository's `.secrets.baseline` when there is one. A
secret listed in that baseline and not audited as real (`is_secret: true`) is accepted: that is how a
team marks a false positive, for our rules as for detect-secrets'.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configobj import ConfigObj, ConfigObjError
from detect_secrets.core.baseline import save_to_file
from detect_secrets.core.potential_secret import PotentialSecret
from detect_secrets.core.scan import _process_line_based_plugins
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings, transient_settings

from provision.audit.findings import ROTATE_FIRST, Finding, masked
from provision.errors import InputError
from provision.secrets import MASK

#: detect-secrets' conventional baseline file, at the top of the repository.
BASELINE = ".secrets.baseline"
#: Keys of DVC's remote (and machine) schema whose values are credentials.
DVC_CREDENTIAL_KEYS = frozenset({
    "password", "passphrase", "access_key_id", "secret_access_key", "session_token", "account_key",
    "sas_token", "connection_string", "client_secret", "gdrive_client_secret", "oss_key_id", "oss_key_secret",
    "token", "sse_customer_key",
})
#: Added lines as (line number, text), in order.
Lines = Sequence[tuple[int, str]]

_DVC_CONFIG = re.compile(r"(?:^|/)\.dvc/config(?:\.local)?\Z")
_CONFIG_LOCAL = re.compile(r"(?:^|/)\.dvc/config\.local\Z")
_URL_CREDENTIAL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@'\"<>]+:(?P<secret>[^\s/@'\"<>]+)@")
_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PRIVATE_KEY_END = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_ENV_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*?)\s*$")
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|credential|auth", re.IGNORECASE)
_ENV_TEMPLATES = (".example", ".sample", ".template", ".dist")
_SECTION = re.compile(r"^\s*\[\s*(?P<name>.*?)\s*\]\s*$")
_KEY = re.compile(r"^\s*(?P<key>[A-Za-z0-9_.-]+)\s*=")

ROTATE_DVC = ("`provision rotate password` (or move the client to `auth: key` and run `provision onboard`), then "
              "delete the key from the committed file: `onboard` keeps credentials in .dvc/config.local")


def is_dvc_config(path: str) -> bool:
    return bool(_DVC_CONFIG.search(path))


def is_env_file(path: str) -> bool:
    name = posixpath.basename(path)
    return name == ".env" or (name.startswith(".env.") and not name.endswith(_ENV_TEMPLATES))


def secret_hash(secret: str) -> str:
    """detect-secrets' hash of a secret (`hashed_secret` in a baseline)."""
    return hashlib.sha1(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Hit:
    """A finding and the raw secret behind it (for telling secrets apart and the baseline; never shown)."""

    finding: Finding
    secret: str


def _placeholder(value: str) -> bool:
    """`$VAR`, `${VAR}`, `{{ x }}`, `<password>`, `%(x)s` or a mask: not a value."""
    return (not value or value.startswith(("$", "{{", "%(")) or (value.startswith("<") and value.endswith(">"))
            or set(value) <= {"*", "x", "X"})


def _unquoted(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value


def _key_line(lines: Sequence[str], section: str, key: str) -> int | None:
    """The line number of `key` inside `section` (configobj keeps no line numbers)."""
    current = None
    for number, text in enumerate(lines, start=1):
        header = _SECTION.match(text)
        if header:
            current = _unquoted(header.group("name"))
            continue
        match = _KEY.match(text)
        if match and current == section and match.group("key").lower() == key.lower():
            return number
    return None


def dvc_config_hits(path: str, text: str) -> list[Hit]:
    """Credential keys with a value in any section of a DVC config, parsed as DVC parses it."""
    lines = text.splitlines()
    try:
        config = ConfigObj(lines, interpolation=False, encoding="utf-8")
    except (ConfigObjError, UnicodeDecodeError):
        return []  # DVC cannot read it either; the line rules still run on it
    hits = []
    for section in config.sections:
        values = config[section]
        for key in values.scalars:
            value = values[key]
            value = ",".join(value) if isinstance(value, list) else str(value)
            if key.lower() not in DVC_CREDENTIAL_KEYS or _placeholder(value):
                continue
            hits.append(Hit(Finding(
                "dvc-credential", path, f"`{key}` of [{section}] committed in a DVC config",
                f"{ROTATE_FIRST}: {ROTATE_DVC}", line=_key_line(lines, section, key), value=f"{key} = {MASK}"),
                value))
    return hits


def url_hits(path: str, number: int, text: str) -> list[Hit]:
    """`scheme://user:secret@` in one line (line `number` of `path`)."""
    hits = []
    for match in _URL_CREDENTIAL.finditer(text):
        secret = match.group("secret")
        if _placeholder(secret):
            continue
        hits.append(Hit(Finding(
            "url-credential", path, "a password or token inside a URL",
            f"{ROTATE_FIRST}; then drop it from the URL: a DVC remote's `user`/`password` belong in "
            ".dvc/config.local (`provision onboard` writes it), git's in a credential helper or an SSH key",
            line=number, value=masked(match.group(0), secret)), secret))
    return hits


def _private_key_hit(path: str, lines: Lines, index: int) -> Hit:
    """The key block from lines[index] (its BEGIN line) to its END line, as far as `lines` holds it."""
    number, first = lines[index]
    block = []
    for _, text in lines[index:]:
        block.append(text.strip())
        if _PRIVATE_KEY_END.search(text):
            break
    begin = _PRIVATE_KEY_BEGIN.search(first)
    return Hit(Finding("private-key", path, "a private key",
                       "treat it as compromised: replace it (`provision rotate keys` for client keys) and take the "
                       "file out of git", line=number, value=f"{begin[0] if begin else ''} {MASK}"), "\n".join(block))


def _env_hit(path: str, number: int, text: str) -> Hit | None:
    match = _ENV_ASSIGNMENT.match(text)
    if not match or not _SECRET_NAME.search(match.group("key")):
        return None
    value = _unquoted(match.group("value"))
    if _placeholder(value):
        return None
    return Hit(Finding("env-file", path, f"`{match.group('key')}` set in a .env file",
                       f"{ROTATE_FIRST}; keep .env files out of git (.gitignore) and commit a .env.example without "
                       "values", line=number, value=f"{match.group('key')}={MASK}"), value)


class Rules:
    """All content rules, with detect-secrets configured for the repository (use `rules_for`)."""

    def __init__(self, accepted: set[tuple[str, str]], baseline: dict[str, Any] | None = None) -> None:
        self.accepted = accepted
        self.baseline = baseline

    def record(self, path: Path, hits: Sequence[Hit]) -> int:
        """Add `hits` to the baseline at `path` (made with the current plugins when absent), each secret
        once per file; entries already there keep their audit marks. How many were added."""
        collection = SecretsCollection.load_from_baseline(self.baseline) if self.baseline else SecretsCollection()
        added = 0
        for hit in hits:
            finding = hit.finding
            secret = PotentialSecret(f"provision {finding.rule}", finding.path, hit.secret, finding.line or 0)
            if secret not in collection[finding.path]:
                collection[finding.path].add(secret)
                added += 1
        save_to_file(collection, str(path))
        return added

    def scan_text(self, path: str, text: str) -> list[Hit]:
        """Every rule on a whole file."""
        if posixpath.basename(path) == BASELINE:
            return []
        hits = []
        if _CONFIG_LOCAL.search(path):
            hits.append(Hit(Finding(
                "tracked-config-local", path, ".dvc/config.local is tracked by git: it holds each machine's "
                "credentials", f"`git rm --cached {path}` (.dvc/.gitignore ignores it) and rotate what it held"), path))
        if is_dvc_config(path):
            hits += dvc_config_hits(path, text)
        hits += self.scan_lines(path, list(enumerate(text.splitlines(), start=1)), skip={h.finding.line for h in hits})
        return self._kept(path, hits)

    def scan_lines(self, path: str, lines: Lines, skip: set[int | None] | None = None) -> list[Hit]:
        """The line rules on some lines of a file (all of them, or those a commit added)."""
        if posixpath.basename(path) == BASELINE:
            return []
        taken = set(skip or ())
        hits: list[Hit] = []
        env_file = is_env_file(path)
        for index, (number, text) in enumerate(lines):
            found = url_hits(path, number, text)
            if _PRIVATE_KEY_BEGIN.search(text):
                found.append(_private_key_hit(path, lines, index))
            if env_file and (env := _env_hit(path, number, text)) is not None:
                found.append(env)
            if found and number not in taken:
                taken.add(number)
                hits += found
        by_line: dict[int, list[tuple[str, str]]] = {}
        for potential in _process_line_based_plugins(lines=list(lines), filename=path):
            if potential.line_number not in taken and potential.secret_value:
                by_line.setdefault(potential.line_number, []).append((potential.type, potential.secret_value))
        for number, found_here in by_line.items():
            kinds = ", ".join(sorted({kind for kind, _ in found_here}))
            secret = max((value for _, value in found_here), key=len)  # one finding per line, its longest value
            hits.append(Hit(Finding(
                "detect-secrets", path, f"{kinds} (detect-secrets)",
                f"{ROTATE_FIRST}; if it is no secret, mark it in {BASELINE} (`detect-secrets audit {BASELINE}`)",
                line=number, value=MASK), secret))
        return self._kept(path, hits)

    def _kept(self, path: str, hits: list[Hit]) -> list[Hit]:
        return [hit for hit in hits if (path, secret_hash(hit.secret)) not in self.accepted]


def _accepted(baseline: dict[str, Any]) -> set[tuple[str, str]]:
    """(file, hashed secret) of every baseline entry not audited as a real secret."""
    return {(filename, entry["hashed_secret"])
            for filename, entries in baseline.get("results", {}).items()
            for entry in entries if entry.get("is_secret") is not True and "hashed_secret" in entry}


@contextmanager
def rules_for(root: Path | None) -> Iterator[Rules]:
    """The rules with `root`'s .secrets.baseline (plugins, filters, accepted secrets), else detect-secrets' defaults.

    detect-secrets keeps its settings process-wide: scan inside this block, from one thread.
    """
    baseline_path = root / BASELINE if root is not None else None
    if baseline_path is None or not baseline_path.is_file():
        with default_settings():
            yield Rules(set())
        return
    try:
        baseline = json.loads(baseline_path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"not a detect-secrets baseline: {error}", file=str(baseline_path)) from None
    with transient_settings({key: baseline[key] for key in ("plugins_used", "filters_used") if key in baseline}):
        yield Rules(_accepted(baseline), baseline)
