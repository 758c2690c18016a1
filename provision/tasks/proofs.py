"""Proof before success: the client reaches storage with its own key, its pins and nothing else.

git proves itself through the checkout's `core.sshCommand` (only the client key, strict host key
checking against the client's known_hosts): a clone of this run, else `git ls-remote`. DVC proves itself
by `dvc pull` fetching, else `dvc status -c`. DVC's SSH remote checks no host key unless provision's
guard is in its virtualenv, so with an unguarded dvc `sftp` as storage_user with only the client key
lists dvc_storage first. A recorded proof that still holds replaces all of them (proof_record).
Offboarding proves the opposite: storage refuses the key. Every step that connects to storage goes
through the run's storage admission (HostContext.storage_step). Proofs read, but DVC writes state even
to read: they are `Proof` tasks, which the engine never runs under --check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from provision.engine import Change, HostContext, PlayState, Proof
from provision.errors import ProvisionError, command_error
from provision.facts import Fact
from provision.inventory import Host, Settings
from provision.remote import script
from provision.tasks.checkout import CLONED_EXPORT, LONG_STEP_TIMEOUT, git_url
from provision.tasks.client_key import ClientInfo, key_fingerprint
from provision.tasks.dvc_client import credential_keys, dvc_argv
from provision.tasks.packages import DVC_BUILD_EXPORT, DVC_EXPORT, DvcBuild
from provision.tasks.proof_record import (
    ACCESS,
    DATA,
    RECORD_PATH,
    ProofRecordFact,
    ProofState,
    controller_half,
    record_proof,
)
from provision.tasks.storage_host_key import client_ssh_options, storage_host_keys

#: dvc starts slowly on a loaded host; its proof gets this long.
DVC_PROOF_TIMEOUT = 600.0
#: `dvc pull`'s summary, e.g. "1 file added and 200 files fetched".
_FETCHED = re.compile(r"(\d+) files? fetched")

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


class ClientProof:
    """What one client's proofs rely on this run; shared by ProveAccess and PullData.

    A step that connects anyway counts as the proof: a fresh clone proves git access, a `dvc pull` that
    fetched proves DVC access. The OpenSSH sftp listing runs only when the dvc is not guarded: the
    guarded dvc checks storage's host key against the client's pins itself, so its success proves what
    the listing would. A record of an earlier proof that still holds (see proof_record) replaces them
    all, unless `verify`.
    """

    def __init__(self, info: ClientInfo, settings: Settings, dvc: str, build: DvcBuild,
                 storage_keys: Sequence[str], *, verify: bool) -> None:
        self.info = info
        self.settings = settings
        self.dvc = dvc
        self.build = build
        self.verify = verify
        self.fact = ProofRecordFact(info.workdir, tuple(sorted(credential_keys())))
        public_key = info.public_key or ""
        self.controller = controller_half({
            "remote": settings.dvc_remote, "git": git_url(settings), "storage_user": settings.storage_user,
            "storage": [settings.storage_address, settings.storage_port], "auth": settings.auth,
            "access": settings.access, "shared_cache": settings.shared_cache, "key": info.key,
            "fingerprint": key_fingerprint(public_key) if public_key else "", "storage_keys": sorted(storage_keys),
            "dvc": [build.version, build.guarded],
        })

    def holds(self, ctx: HostContext, *, kind: str) -> bool:
        """A recorded proof of `kind` still holds: nothing it depends on changed, here or this phase."""
        if self.verify or ctx.changed_tasks:
            return False
        state: ProofState = ctx.fact(self.fact)
        return state.holds(self.controller, kind=kind)

    def record(self, ctx: HostContext, *, kind: str) -> None:
        record_proof(ctx, self.fact, self.controller, kind=kind)

    def dvc_status_cloud(self, ctx: HostContext) -> None:
        """`dvc status -c`: DVC reaches the remote with the checkout's config (and, guarded, the pins)."""
        dvc_status_cloud(ctx, self.info, self.settings, self.dvc)


def dvc_status_cloud(ctx: HostContext, info: ClientInfo, settings: Settings, dvc: str, how: str = "") -> None:
    """`dvc status -c` in the checkout reaches the remote (`how`: with what, for the error)."""
    workdir = info.workdir
    ctx.storage_step(dvc_argv(dvc, "--cd", workdir, "status", "--cloud", "--remote", settings.dvc_remote),
                     f"proof: dvc status -c -r {settings.dvc_remote} in {workdir}{how}", timeout=DVC_PROOF_TIMEOUT)


def client_proof(state: PlayState, host: Host, info: ClientInfo, storage: Host, pins_path: Path, *,
                 verify: bool) -> ClientProof:
    """The proof of a client whose tools an earlier phase found (its dvc and build exported)."""
    exports = state.report(host.name).exports
    storage_keys = [f"{key.get_name()} {key.get_base64()}" for key in storage_host_keys(pins_path, storage)]
    return ClientProof(info, host.settings, exports[DVC_EXPORT], exports[DVC_BUILD_EXPORT], storage_keys,
                       verify=verify)


class ProveAccess(Proof):
    """Git and DVC reach storage with only this key (sftp too when dvc is unguarded); see ClientProof.

    With `dvc_by_pull`, the DVC proof is left to PullData, whose pull (or `dvc status -c`) proves it.
    """

    name = "prove access"

    def __init__(self, proof: ClientProof, *, dvc_by_pull: bool) -> None:
        self.proof = proof
        self.dvc_by_pull = dvc_by_pull

    def facts(self) -> Sequence[Fact]:
        return (self.proof.fact,)

    def prove(self, ctx: HostContext) -> str:
        proof = self.proof
        settings, info = proof.settings, proof.info
        if proof.holds(ctx, kind=ACCESS):
            return (f"access proven by an earlier run's record ({info.workdir}/{RECORD_PATH}): nothing it "
                    "depends on changed (--verify proves again)")
        proven = []
        if not proof.build.guarded:
            where = f"{settings.storage_user}@{settings.storage_address}:{settings.storage_port}"
            ctx.storage_step(sftp_list_argv(info, settings, settings.storage_user, settings.sftp_dvc_storage),
                             f"proof: sftp {where} with {info.key} listing {settings.sftp_dvc_storage}")
            proven.append(f"sftp {where}{settings.sftp_dvc_storage}")
        if ctx.state.report(ctx.host.name).exports.get(CLONED_EXPORT):
            proven.append("git clone")
        else:
            ctx.storage_step(["git", "-C", info.workdir, "ls-remote", "--quiet", "origin"],
                             f"proof: git ls-remote origin in {info.workdir}")
            proven.append("git ls-remote")
        if self.dvc_by_pull:
            verb = "works" if len(proven) == 1 else "work"
            return f"{' and '.join(proven)} {verb} with {info.key} only; dvc pull proves DVC access"
        proof.dvc_status_cloud(ctx)
        proof.record(ctx, kind=ACCESS)
        return f"{', '.join(proven)} and dvc status -c work with {info.key} only"


class PullData(Proof):
    """`dvc pull` when outputs are missing; locally changed data is left as it is. It proves DVC access."""

    name = "dvc pull"

    def __init__(self, proof: ClientProof) -> None:
        self.proof = proof

    def facts(self) -> Sequence[Fact]:
        return (self.proof.fact,)

    def _totals(self, ctx: HostContext) -> DataTotals:
        workdir = self.proof.info.workdir
        return data_totals(ctx.run(script(_DVC_FILES, workdir), f"reading the .dvc files in {workdir}").stdout)

    def prove(self, ctx: HostContext) -> str | Change:
        proof = self.proof
        workdir, dvc = proof.info.workdir, proof.dvc
        if proof.holds(ctx, kind=DATA):
            state: ProofState = ctx.fact(proof.fact)
            return f"data up to date: {data_totals(state.dvc_files)} (as recorded after the last proof)"
        access_recorded = proof.holds(ctx, kind=ACCESS)
        if ctx.state.report(ctx.host.name).exports.get(CLONED_EXPORT):
            # A checkout cloned this run holds no data yet: no dvc needs to start to tell.
            return Change(f"dvc pull -r {proof.settings.dvc_remote} in {workdir} (a fresh checkout)",
                          lambda: self._pull(ctx, access_recorded=False))
        status = ctx.run(dvc_argv(dvc, "--cd", workdir, "status", "--json"), f"dvc status in {workdir}",
                         timeout=DVC_PROOF_TIMEOUT)
        changes = workspace_changes(status.stdout)
        modified = sorted(path for path, state in changes.items() if state == "modified")
        if modified or not changes:
            if not access_recorded:
                proof.dvc_status_cloud(ctx)
            proof.record(ctx, kind=ACCESS if modified else DATA)
            if modified:
                return f"locally modified data left as it is, not pulled: {', '.join(modified)}"
            return f"data up to date: {self._totals(ctx)}"

        return Change(f"dvc pull -r {proof.settings.dvc_remote} in {workdir} ({len(changes)} output(s) missing)",
                      lambda: self._pull(ctx, access_recorded=access_recorded))

    def _pull(self, ctx: HostContext, *, access_recorded: bool) -> None:
        """`dvc pull`; when it fetched nothing (and no record proves access), `dvc status -c` proves DVC."""
        proof = self.proof
        workdir = proof.info.workdir
        pulled = ctx.storage_step(dvc_argv(proof.dvc, "--cd", workdir, "pull", "--remote", proof.settings.dvc_remote),
                                  f"dvc pull in {workdir}", timeout=LONG_STEP_TIMEOUT)
        fetched = _FETCHED.search(pulled.stdout)
        if not access_recorded and not (fetched and int(fetched.group(1))):
            proof.dvc_status_cloud(ctx)
        proof.record(ctx, kind=DATA)
        summary = [line.strip() for line in pulled.stdout.splitlines() if "fetched" in line or "added" in line]
        ctx.note("; ".join([*summary[-1:], f"workspace holds {self._totals(ctx)}"]))


class ProveRevoked(Proof):
    """After offboarding: storage refuses the client key for both accounts."""

    name = "prove revoked"

    def __init__(self, info: ClientInfo, settings: Settings, accounts: Sequence[str]) -> None:
        self.info = info
        self.settings = settings
        self.accounts = list(accounts)

    def prove(self, ctx: HostContext) -> str:
        if not self.info.has_private_key:
            return f"no key {self.info.key} on the client to try"
        for account in self.accounts:
            result = ctx.storage_run(sftp_list_argv(self.info, self.settings, account, "/"))
            if result.ok:
                raise ProvisionError(f"storage still accepts {self.info.key} of {self.info.name} as {account}")
            if "Permission denied" not in result.stderr:
                raise command_error(f"proof of revocation for {account} (no clear refusal)", result)
        return f"storage refuses {self.info.key} for {', '.join(self.accounts)}"


class ProveDvcPassword(Proof):
    """`dvc status -c` reaches the remote with the password in config.local (rotate password)."""

    name = "prove dvc"

    def __init__(self, info: ClientInfo, settings: Settings, dvc: str) -> None:
        self.info = info
        self.settings = settings
        self.dvc = dvc

    def prove(self, ctx: HostContext) -> str:
        dvc_status_cloud(ctx, self.info, self.settings, self.dvc, " with the password in config.local")
        return f"dvc status -c works with the storage_password in {self.info.workdir}/.dvc/config.local"
