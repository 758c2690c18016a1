"""Proof before success: the client reaches storage with its own key, its pins and nothing else.

DVC's SSH remote checks no host key of its own (docs/security.md), so access is proven with OpenSSH first: `sftp` as
storage_user with only the client key (`-F /dev/null`, no agent, the client's known_hosts, strict host
key checking) lists dvc_storage, and `git ls-remote` through the checkout's `core.sshCommand` works.
Only then does DVC talk to the remote (`dvc status -c`). Offboarding proves the opposite: storage
refuses the key. Proofs read; under --check they do not run, since DVC writes state even to read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from provision.engine import Change, HostContext, Task
from provision.errors import ProvisionError, command_error
from provision.inventory import Settings
from provision.remote import script
from provision.tasks.checkout import LONG_STEP_TIMEOUT
from provision.tasks.client_key import ClientInfo, run_checked
from provision.tasks.client_known_hosts import client_ssh_options
from provision.tasks.dvc_client import dvc_argv

#: dvc starts slowly on a loaded host; its proof gets this long.
DVC_PROOF_TIMEOUT = 600.0

# $1 directory to list, then the sftp argv: the batch comes on stdin, so sftp stops at an error.
_SFTP_LIST = r"""
directory=$1; shift
printf 'ls -1 "%s"\n' "$directory" | "$@"
"""

# $1 checkout: every tracked .dvc file and dvc.lock, each after a line "---" (one YAML stream).
_DVC_FILES = r"""
cd -- "$1" || exit 1
git ls-files -z -- '*.dvc' 'dvc.lock' '*/dvc.lock' | xargs -0 -r awk 'FNR == 1 { print "---" } { print }'
"""


def sftp_argv(info: ClientInfo, settings: Settings, user: str) -> list[str]:
    """sftp with only the client key and its pins, as `user` at storage (an IPv6 address in brackets)."""
    return ["sftp", "-b", "-", *client_ssh_options(info), "-P", str(settings.storage_port),
            f"{user}@{settings.storage_url_host}"]


def sftp_list_argv(info: ClientInfo, settings: Settings, user: str, directory: str) -> list[str]:
    """sftp listing `directory` as `user` with only the client key and its pins; exits non-zero on error."""
    return script(_SFTP_LIST, directory, *sftp_argv(info, settings, user))


@dataclass(frozen=True)
class DataTotals:
    files: int
    size: int

    def __str__(self) -> str:
        return f"{self.files} file{'' if self.files == 1 else 's'}, {self.size} bytes ({_human(self.size)})"


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    return f"{value:.1f} TiB"


def data_totals(stream: str) -> DataTotals:
    """Files and bytes that the tracked .dvc files and dvc.lock files describe."""
    files = size = 0
    try:
        documents = list(yaml.safe_load_all(stream))
    except yaml.YAMLError:
        raise ProvisionError("a tracked .dvc or dvc.lock file is not valid YAML") from None
    for document in documents:
        if not isinstance(document, dict):
            continue
        outs: list[Any] = list(document.get("outs") or [])
        for stage in (document.get("stages") or {}).values():
            if isinstance(stage, dict):
                outs.extend(stage.get("outs") or [])
        for out in outs:
            if isinstance(out, dict):
                files += int(out.get("nfiles") or 1)
                size += int(out.get("size") or 0)
    return DataTotals(files, size)


def workspace_changes(status_json: str) -> dict[str, str]:
    """`dvc status --json` as {output: state} ("modified", "deleted", "not in cache", ...)."""
    try:
        document = json.loads(status_json or "{}")
    except json.JSONDecodeError:
        raise ProvisionError(f"dvc status printed no JSON: {status_json.strip()[:200]}") from None
    changes: dict[str, str] = {}
    for entries in document.values():
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                for outs in entry.values():
                    if isinstance(outs, dict):
                        changes.update({str(k): str(v) for k, v in outs.items()})
    return changes


class ProveAccess(Task):
    """sftp lists dvc_storage and git ls-remote works with only this key; then `dvc status -c`."""

    name = "prove access"

    def __init__(self, info: ClientInfo, settings: Settings, dvc: str) -> None:
        self.info = info
        self.settings = settings
        self.dvc = dvc

    def plan(self, ctx: HostContext) -> Change | None:
        if ctx.check:
            ctx.note("not proven under --check")
            return None
        settings, info = self.settings, self.info
        where = f"{settings.storage_user}@{settings.storage_address}:{settings.storage_port}"
        run_checked(ctx, sftp_list_argv(info, settings, settings.storage_user, settings.sftp_dvc_storage),
                    f"proof: sftp {where} with {info.key} listing {settings.sftp_dvc_storage}")
        run_checked(ctx, ["git", "-C", info.workdir, "ls-remote", "--quiet", "origin"],
                    f"proof: git ls-remote origin in {info.workdir}")
        run_checked(ctx, dvc_argv(self.dvc, "--cd", info.workdir, "status", "--cloud", "--remote", settings.dvc_remote),
                    f"proof: dvc status -c -r {settings.dvc_remote} in {info.workdir}", timeout=DVC_PROOF_TIMEOUT)
        ctx.note(f"sftp {where}{settings.sftp_dvc_storage}, git ls-remote and dvc status -c work with {info.key} only")
        return None


class PullData(Task):
    """`dvc pull` when outputs are missing; locally changed data is left as it is."""

    name = "dvc pull"

    def __init__(self, info: ClientInfo, settings: Settings, dvc: str) -> None:
        self.info = info
        self.settings = settings
        self.dvc = dvc

    def _totals(self, ctx: HostContext) -> DataTotals:
        workdir = self.info.workdir
        return data_totals(run_checked(ctx, script(_DVC_FILES, workdir), f"reading the .dvc files in {workdir}").stdout)

    def plan(self, ctx: HostContext) -> Change | None:
        workdir = self.info.workdir
        if ctx.check:
            ctx.note("dvc pull is not evaluated under --check")
            return None
        status = run_checked(ctx, dvc_argv(self.dvc, "--cd", workdir, "status", "--json"), f"dvc status in {workdir}",
                             timeout=DVC_PROOF_TIMEOUT)
        changes = workspace_changes(status.stdout)
        modified = sorted(path for path, state in changes.items() if state == "modified")
        if modified:
            ctx.note(f"locally modified data left as it is, not pulled: {', '.join(modified)}")
            return None
        if not changes:
            ctx.note(f"data up to date: {self._totals(ctx)}")
            return None

        def apply() -> None:
            pulled = run_checked(ctx, dvc_argv(self.dvc, "--cd", workdir, "pull", "--remote", self.settings.dvc_remote),
                                 f"dvc pull in {workdir}", timeout=LONG_STEP_TIMEOUT)
            fetched = [line.strip() for line in pulled.stdout.splitlines() if "fetched" in line or "added" in line]
            ctx.note("; ".join([*fetched[-1:], f"workspace holds {self._totals(ctx)}"]))

        return Change(f"dvc pull -r {self.settings.dvc_remote} in {workdir} ({len(changes)} output(s) missing)",
                      apply)


class ProveRevoked(Task):
    """After offboarding: storage refuses the client key for both accounts."""

    name = "prove revoked"

    def __init__(self, info: ClientInfo, settings: Settings, accounts: Sequence[str]) -> None:
        self.info = info
        self.settings = settings
        self.accounts = list(accounts)

    def plan(self, ctx: HostContext) -> Change | None:
        if ctx.check:
            ctx.note("not proven under --check")
            return None
        if not self.info.has_private_key:
            ctx.note(f"no key {self.info.key} on the client to try")
            return None
        for account in self.accounts:
            result = ctx.session.run(sftp_list_argv(self.info, self.settings, account, "/"))
            if result.ok:
                raise ProvisionError(f"storage still accepts {self.info.key} of {self.info.name} as {account}")
            if "Permission denied" not in result.stderr:
                raise command_error(f"proof of revocation for {account} (no clear refusal)", result)
        ctx.note(f"storage refuses {self.info.key} for {', '.join(self.accounts)}")
        return None
