"""Rules for hosts: what storage and clients should look like after `bootstrap` and `onboard`, judged from facts.

The expected key lines, modes and drop-ins are not restated here: they come from the functions and
constants that bootstrap and onboard use to make them (`key_line`, the directory modes, the drop-in's
renderer), so the audit cannot drift from what the tool writes. Every function is pure: facts in,
findings out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from provision.audit.findings import Finding
from provision.audit.rules import dvc_config_hits, url_hits
from provision.facts import FileState
from provision.inventory import Host
from provision.tasks.authorized_keys import file_lines, key_line, line_marker
from provision.tasks.client_key import key_marker
from provision.tasks.key_rotation import line_public_key

_ANY_KEY = re.compile(r"(?:^|\s)((?:ssh-[a-z0-9-]+|ecdsa-sha2-nistp\d+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+={0,2})(?=\s|$)")
BOOTSTRAP = "`provision bootstrap`"
#: Stands in for a line's key when it has no ed25519 key, to show the options onboard would write.
_ANY_ED25519 = "ssh-ed25519 KEY"


def _mode(state: FileState) -> str:
    return f"{state.owner}:{state.group} {state.mode:04o}"


def key_line_findings(host: str, path: str, content: bytes, kind: str, clients: Mapping[str, Host],
                      inventory_name: str) -> list[Finding]:
    """An account's authorized_keys on storage: every line ours, for a client of the inventory, as onboard writes it.

    `kind` is the account's forced command (SFTP or GIT of tasks.authorized_keys); `clients` the
    inventory's clients by name. Lines of other inventories are theirs to judge.
    """
    findings = []
    seen_keys: dict[str, int] = {}
    prefix = key_marker(inventory_name, "")
    for number, raw in enumerate(file_lines(content), start=1):
        line = raw.decode(errors="surrogateescape")
        if not line.strip(" \t") or line.lstrip(" \t").startswith("#"):
            continue
        marker = line_marker(raw)
        key = _ANY_KEY.search(line)
        found: Finding | None = None
        if marker is None:
            found = Finding("key-line-unmarked", path, "a key line without provision's marker (written by hand?)",
                            "delete it, or onboard the machine it belongs to (`provision onboard HOST`)",
                            line=number, host=host)
        elif marker.startswith(prefix):
            client = marker[len(prefix):]
            if client not in clients:
                found = Finding("key-line-stale", path,
                                f"the marker names {client}, which is not a client of the inventory: a retired machine "
                                "still has access", f"delete the line, or put {client} back into the inventory and run "
                                f"`provision offboard {client}`", line=number, host=host)
            else:
                public_key = line_public_key(line)
                read_only = clients[client].settings.access == "read"
                if public_key is None or line != key_line(kind, public_key, marker, read_only=read_only):
                    options = key_line(kind, _ANY_ED25519, marker, read_only=read_only).split(f" {_ANY_ED25519}")[0]
                    found = Finding("key-line-options", path,
                                    f"not the line onboard writes (want `{options}` and an ed25519 key)",
                                    f"`provision onboard {client}`", line=number, host=host)
        if found is None and key is not None and key.group(1) in seen_keys:
            found = Finding("key-line-duplicate", path, f"the same key as line {seen_keys[key.group(1)]}",
                            "delete the extra line (`provision onboard HOST` rewrites a client's own lines)",
                            line=number, host=host)
        if key is not None:
            seen_keys.setdefault(key.group(1), number)
        if found is not None:
            findings.append(found)
    return findings


def directory_finding(host: str, path: str, state: FileState, owner: str, group: str, mode: int,
                      fix: str = BOOTSTRAP) -> Finding | None:
    """A directory's owner, group and mode (setgid included) as bootstrap makes it."""
    if state.is_dir and (state.owner, state.group, state.mode) == (owner, group, mode):
        return None
    found = _mode(state) if state.exists else "missing"
    return Finding("directory-mode", path, f"{found} (want {owner}:{group} {mode:04o})", fix, host=host)


def group_writable_finding(host: str, path: str, state: FileState, mode: int | None, writable: Sequence[str],
                           listed: int | None = None) -> Finding | None:
    """A repository: nothing in it the group or others can write (directory closed to them, or no such
    path in it), and its directory's mode as bootstrap makes it when `mode` is given. `listed`: the most
    paths the host lists, so that many means at least that many."""
    problems = []
    if mode is not None and state.exists and state.mode != mode:
        problems.append(f"mode {state.mode:04o} (want {mode:04o})")
    closed = state.exists and state.mode & 0o011 == 0  # nobody but the owner may enter: what is inside is out of reach
    if writable and not closed:
        count = f"at least {len(writable)}" if len(writable) == listed else str(len(writable))
        problems.append(f"{count} path{'s' if len(writable) != 1 else ''} inside writable by group or "
                        f"others, e.g. {writable[0]}")
    if not problems:
        return None
    return Finding("repository-writable", path, "; ".join(problems),
                   f"{BOOTSTRAP} (a repository the storage group can write lets an SFTP client plant what git_user "
                   "runs or commits)", host=host)


def drop_in_findings(host: str, wanted: Mapping[str, str], present: Mapping[str, str | None],
                     sshd_valid: bool) -> list[Finding]:
    """provision's sshd drop-ins: exactly the wanted ones with bootstrap's content, and sshd accepting them."""
    findings = []
    for path, content in sorted(present.items()):
        if path not in wanted:
            findings.append(Finding("sshd-drop-in", path, "a provision drop-in bootstrap would not write",
                                    f"{BOOTSTRAP} (or delete it if it is not provision's)", host=host))
        elif content != wanted[path]:
            findings.append(Finding("sshd-drop-in", path, "differs from what bootstrap writes", BOOTSTRAP, host=host))
    findings += [Finding("sshd-drop-in", path, "missing", BOOTSTRAP, host=host)
                 for path in sorted(set(wanted) - set(present))]
    if not sshd_valid:
        findings.append(Finding("sshd-config", "/etc/ssh/sshd_config", "`sshd -t` refuses the configuration",
                                "fix the file `sshd -t` names before sshd restarts", host=host))
    return findings


def private_file_finding(host: str, path: str, state: FileState, owner: str, mode: int, fix: str,
                         rule: str) -> Finding | None:
    """A file or directory that must exist, belong to `owner` and have exactly `mode`."""
    if state.exists and state.owner == owner and state.mode == mode:
        return None
    found = f"{state.owner} {state.mode:04o}" if state.exists else "missing"
    return Finding(rule, path, f"{found} (want {owner} {mode:04o})", fix, host=host)


def site_cache_finding(host: str, config_path: str, directory: str, state: FileState, owner: str
                       ) -> Finding | None:
    """DVC's site cache of the checkout: a directory only `owner` can enter (DVC makes its own subdirectories 0777)."""
    if state.is_dir and state.owner == owner and state.mode & 0o077 == 0:
        return None
    found = _mode(state) if state.exists else "missing"
    return Finding("site-cache-shared", directory,
                   f"DVC's site cache ({found}, from core.site_cache_dir of {config_path} or DVC's default) is open "
                   "to other users, who could plant entries in it", f"`provision onboard {host}`", host=host)


def committed_config_findings(host: str, path: str, content: str) -> list[Finding]:
    """Credentials in a checkout's committed .dvc/config."""
    hits = dvc_config_hits(path, content)
    taken = {hit.finding.line for hit in hits}
    for number, line in enumerate(content.splitlines(), start=1):
        if number not in taken:
            hits += url_hits(path, number, line)
    return [hit.finding.at_host(host) for hit in hits]
