"""Read-only audit tasks: facts of storage and clients, judged by provision.audit.hosts.

They never change anything: `plan` only reports findings (as the task's message, and exported for the
command's summary) and always returns None. Every fact a task reads is declared, so the engine reads
all of a host's facts in one remote command.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from provision.audit.findings import Finding
from provision.audit.hosts import (
    committed_config_findings,
    directory_finding,
    drop_in_findings,
    group_writable_finding,
    key_line_findings,
    private_file_finding,
    site_cache_finding,
)
from provision.engine import Change, HostContext, Task
from provision.facts import PATH_STATE, Fact, FileFact, FileState, output_lines
from provision.inventory import Host, Inventory
from provision.known_hosts_file import known_hosts_name
from provision.remote import BatchOutput, script
from provision.tasks.accounts import AccountFact, AccountState
from provision.tasks.authorized_keys import GIT, SFTP, AuthorizedKeys, AuthorizedKeysFact
from provision.tasks.client_key import KEY_PATH_PRELUDE, KeyState, KeyStateFact, connecting_user
from provision.tasks.directories import REPOSITORY_DIRECTORY_MODE, SHARED_DIRECTORY_MODE
from provision.tasks.dvc_repo import CONFIG, CONFIG_LOCAL
from provision.tasks.sshd_config import DROP_IN_DIR, drop_in_path, render_drop_in
from provision.tasks.storage_host_key import pinned_known_hosts, storage_host_keys

#: The export that carries a host's findings to the command.
FINDINGS_EXPORT = "audit findings"

# $1 user, $2 path (maybe ~/...), $3 "content" or not: the path expanded against the user's home, its state,
# and a file's content when asked.
_HOME_FILE = KEY_PATH_PRELUDE + PATH_STATE + r"""
printf '%s\n%s\n' "$key" "$(path_state "$key")"
if [ "$3" = content ] && [ -f "$key" ]; then cat -- "$key"; fi
"""

# $1 user, $2 config.local (maybe ~/...): the site cache directory DVC uses there (core.site_cache_dir, else
# DVC's default /var/tmp/dvc) and its state.
_SITE_CACHE = KEY_PATH_PRELUDE + PATH_STATE + r"""
dir=$(sed -n '/^\s*\[core\]\s*$/,/^\s*\[/ s/^\s*site_cache_dir\s*=\s*//p' "$key" 2>/dev/null | head -n 1)
dir=${dir%\"}; dir=${dir#\"}
[ -n "$dir" ] || dir=/var/tmp/dvc
printf '%s\n%s\n' "$dir" "$(path_state "$dir")"
"""

# $1 how many to list per directory, then directories: paths in them (symbolic links aside) that the group or
# others may write.
_WRITABLE = """
limit=$1; shift
for d in "$@"; do
  [ -d "$d" ] && find "$d" ! -type l \\( -perm -g+w -o -perm -o+w \\) -print | head -n "$limit"
done
true
"""
#: Paths listed per repository: enough to count "at least", small enough for one round trip.
WRITABLE_LISTED = 100
_DROP_INS = 'for f in "$1"/*provision*; do [ -f "$f" ] && printf "%s\\n" "$f"; done; true'


@dataclass(frozen=True)
class PathInHome:
    """A path expanded on the host, its state and (for a file) content."""

    path: str
    state: FileState


@dataclass(frozen=True)
class HomeFileFact(Fact):
    """A path of the connecting user, `~/` expanded against its home on the host; a file's content only when
    `content` (config.local is never read: it may hold a password)."""

    user: str
    path: str
    content: bool = False
    privileged: bool = False

    @property
    def key(self) -> tuple[str, str, str, bool]:
        return ("home file", self.user, self.path, self.content)

    def argv(self) -> list[str]:
        return script(_HOME_FILE, self.user, self.path, "content" if self.content else "")

    def parse(self, output: BatchOutput) -> PathInHome | None:
        path, found, rest = output.stdout.partition("\n")
        if output.rc != 0 or path == "no-such-user" or not found:
            return None
        return PathInHome(path, FileState.with_content(rest))


@dataclass(frozen=True)
class SiteCacheFact(HomeFileFact):
    """The site cache directory the checkout's config.local gives DVC, and its state."""

    @property
    def key(self) -> tuple[str, str, str, bool]:
        return ("site cache", self.user, self.path, False)

    def argv(self) -> list[str]:
        return script(_SITE_CACHE, self.user, self.path)


@dataclass(frozen=True)
class WritableFact(Fact):
    """Paths in `directories` (symbolic links aside) that the group or others may write, at most `limit` each."""

    directories: tuple[str, ...]
    limit: int = WRITABLE_LISTED
    privileged: bool = True

    @property
    def key(self) -> Hashable:
        return ("group or world writable", self.directories, self.limit)

    def argv(self) -> list[str]:
        return script(_WRITABLE, str(self.limit), *self.directories)

    def parse(self, output: BatchOutput) -> tuple[str, ...]:
        return output_lines(output.stdout) if output.rc == 0 else ()


@dataclass(frozen=True)
class DropInsFact(Fact):
    """The files of sshd's drop-in directory that name provision."""

    directory: str = DROP_IN_DIR
    privileged: bool = True

    @property
    def key(self) -> Hashable:
        return ("provision drop-ins", self.directory)

    def argv(self) -> list[str]:
        return script(_DROP_INS, self.directory)

    def parse(self, output: BatchOutput) -> tuple[str, ...]:
        return output_lines(output.stdout) if output.rc == 0 else ()


@dataclass(frozen=True)
class SshdValidFact(Fact):
    """Whether `sshd -t` accepts the host's sshd configuration."""

    privileged: bool = True

    @property
    def key(self) -> Hashable:
        return ("sshd -t",)

    def argv(self) -> list[str]:
        return ["sshd", "-t"]

    def parse(self, output: BatchOutput) -> bool:
        return output.rc == 0


def report(ctx: HostContext, findings: Sequence[Finding | None]) -> None:
    """Findings as the task's message and as data for the command; nothing is changed."""
    found = [finding for finding in findings if finding is not None]
    ctx.state.report(ctx.host.name).exports.setdefault(FINDINGS_EXPORT, []).extend(found)
    ctx.note(f"{len(found)} finding{'s' if len(found) != 1 else ''}" if found else "nothing found")
    for finding in found:
        ctx.note(f"{finding.rule} {finding.where()}")


class AuditKeyLines(Task):
    """One storage account's authorized_keys: ours, current clients only, onboard's lines, no duplicates."""

    def __init__(self, account: str, kind: str, inventory: Inventory) -> None:
        self.account = account
        self.kind = kind
        self.inventory = inventory
        self.fact = AuthorizedKeysFact(account)
        self.name = f"audit authorized_keys of {account}"

    def facts(self) -> Sequence[Fact]:
        return (self.fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        state: AuthorizedKeys | str = ctx.fact(self.fact)
        if isinstance(state, str):
            report(ctx, [Finding("account", self.account, state, "`provision bootstrap`", host=ctx.host.name)])
            return None
        clients = {host.name: host for host in self.inventory.clients}
        report(ctx, key_line_findings(ctx.host.name, state.path, state.content, self.kind, clients,
                                      ctx.host.settings.inventory_name))
        return None


class AuditStorage(Task):
    """dvc_storage, the repositories, provision's sshd drop-ins and storage_user's password hash."""

    name = "audit storage"

    def __init__(self, storage: Host, inventory: Inventory) -> None:
        settings = storage.settings
        self.settings = settings
        self.repositories = [settings.server_repo] + ([settings.git_remote] if settings.git_remote_is_path else [])
        self.password_login = bool(inventory.password_clients)
        self.dvc_storage = FileFact(settings.dvc_storage)
        self.repository_states = [FileFact(path) for path in self.repositories]
        self.writable = WritableFact(tuple(self.repositories))
        self.drop_ins = DropInsFact()
        self.drop_in = FileFact(drop_in_path(settings.storage_user))
        self.sshd_valid = SshdValidFact()
        self.account = AccountFact(settings.storage_user)

    def facts(self) -> Sequence[Fact]:
        return (self.dvc_storage, *self.repository_states, self.writable, self.drop_ins, self.drop_in, self.sshd_valid,
                self.account)

    def plan(self, ctx: HostContext) -> Change | None:
        settings, host = self.settings, ctx.host.name
        findings: list[Finding | None] = [directory_finding(host, settings.dvc_storage, ctx.fact(self.dvc_storage),
                                                            settings.storage_user, settings.storage_group,
                                                            SHARED_DIRECTORY_MODE)]
        writable: tuple[str, ...] = ctx.fact(self.writable)
        for repository, state_fact in zip(self.repositories, self.repository_states, strict=True):
            inside = [path for path in writable if path == repository or path.startswith(repository.rstrip("/") + "/")]
            # bootstrap sets the server repository's own mode; git sets the bare repository's (core.sharedRepository)
            mode = REPOSITORY_DIRECTORY_MODE if repository == settings.server_repo else None
            findings.append(group_writable_finding(host, repository, ctx.fact(state_fact), mode, inside,
                                                   WRITABLE_LISTED))
        wanted = {self.drop_in.path: render_drop_in(settings, password=self.password_login)}
        present: dict[str, str | None] = {path: None for path in ctx.fact(self.drop_ins)}
        drop_in: FileState = ctx.fact(self.drop_in)
        if drop_in.exists:
            present[self.drop_in.path] = drop_in.content
        findings += drop_in_findings(host, wanted, present, ctx.fact(self.sshd_valid))
        account: AccountState = ctx.fact(self.account)
        if account.exists and not self.password_login and not account.hash_is_star:
            findings.append(Finding("password-hash", settings.storage_user,
                                    "has a password though no client uses `auth: password`",
                                    "`provision bootstrap` (resets the hash to *)", host=host))
        report(ctx, findings)
        return None


class AuditClient(Task):
    """A client's key, ~/.ssh, storage's pin, config.local, committed .dvc/config and DVC's site cache."""

    name = "audit client"

    def __init__(self, client: Host, storage: Host, pins_path: Path) -> None:
        settings = client.settings
        self.client = client
        self.storage = storage
        self.pins_path = pins_path
        self.user = connecting_user(client)
        workdir = settings.workdir.rstrip("/")
        self.key = KeyStateFact(self.user, settings.client_key)
        self.known_hosts = HomeFileFact(self.user, "~/.ssh/known_hosts", content=True)
        self.config_local = HomeFileFact(self.user, f"{workdir}/{CONFIG_LOCAL}")
        self.config = HomeFileFact(self.user, f"{workdir}/{CONFIG}", content=True)
        self.site_cache = SiteCacheFact(self.user, f"{workdir}/{CONFIG_LOCAL}")

    def facts(self) -> Sequence[Fact]:
        return (self.key, self.known_hosts, self.config_local, self.config, self.site_cache)

    def plan(self, ctx: HostContext) -> Change | None:
        host, user = self.client.name, self.user
        onboard = f"`provision onboard {host}`"
        key: KeyState | None = ctx.fact(self.key)
        if key is None:
            report(ctx, [Finding("account", user, "no such account (the connecting user)", onboard, host=host)])
            return None
        findings: list[Finding | None] = [
            private_file_finding(host, f"{key.home.rstrip('/')}/.ssh", key.ssh_dir, user, 0o700, onboard, "ssh-dir"),
            private_file_finding(host, key.key, key.private, user, 0o600, onboard, "client-key"),
        ]
        config_local: PathInHome = ctx.fact(self.config_local)
        findings.append(private_file_finding(host, config_local.path, config_local.state, user, 0o600, onboard,
                                             "config-local"))
        settings = self.client.settings
        entry = known_hosts_name(settings.storage_address, settings.storage_port)
        known_hosts: PathInHome = ctx.fact(self.known_hosts)
        content = known_hosts.state.content or ""
        if pinned_known_hosts(content, entry, storage_host_keys(self.pins_path, self.storage)) != content:
            findings.append(Finding("storage-pin", known_hosts.path,
                                    f"{entry} is not pinned there as the controller pins {self.storage.name}",
                                    onboard, host=host))
        config: PathInHome = ctx.fact(self.config)
        if config.state.is_file:
            findings += committed_config_findings(host, config.path, config.state.content or "")
        site_cache: PathInHome = ctx.fact(self.site_cache)
        findings.append(site_cache_finding(host, config_local.path, site_cache.path, site_cache.state, user))
        report(ctx, findings)
        return None


def storage_audit_tasks(storage: Host, inventory: Inventory) -> list[Task]:
    settings = storage.settings
    return [AuditKeyLines(settings.storage_user, SFTP, inventory), AuditKeyLines(settings.git_user, GIT, inventory),
            AuditStorage(storage, inventory)]
