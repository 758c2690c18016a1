"""storage_user's SFTP confinement: the sshd drop-in, the chroot's path, and what the chroot shows.

sshd gets one file per storage_user, `/etc/ssh/sshd_config.d/10-provision-<storage_user>.conf`, holding
one `Match User <storage_user>` block (a Match block in an included file ends with the file, so no
other account and no global setting changes): `ChrootDirectory` is the directory holding dvc_storage
(`Settings.sftp_root`), so a client's SFTP session sees dvc_storage as `/<its name>` and nothing else
of the host, and no forwarding or TTY. While a client of the inventory has `auth: password`, the block
also allows password login with `ForceCommand` SFTP (see provision.tasks.password_login). Its first line
names the inventory that owns it.

sshd accepts a chroot only when every component of its path is root-owned and writable by nobody
else: RequireSftpChroot checks the components at and above nfs_root (which bootstrap never changes)
before anything else is done, and bootstrap makes the ones below it root:root 0755. The chroot must
show nothing but dvc_storage to storage_user: the tool's repositories in it are closed to the storage
group, and SftpChrootEntries refuses any other entry storage_user could read.

One storage_user serves one set of access rules: a drop-in another inventory owns, or key lines of
another inventory in storage_user's or git_user's authorized_keys, are never changed under that
inventory: bootstrap refuses, naming both, unless the file would stay exactly as it is.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from provision.connection import STAGED_CONTENT, AccountLogin
from provision.engine import Change, HostContext, Task
from provision.errors import ProvisionError
from provision.facts import Fact, FileFact, FileState, KeyValues, LoginMethodsFact, output_lines
from provision.inventory import Settings
from provision.remote import BatchOutput, as_user, script
from provision.render import render
from provision.tasks.authorized_keys import (
    SFTP_READ_WRITE_COMMAND,
    AuthorizedKeys,
    AuthorizedKeysFact,
    file_lines,
    line_marker,
)
from provision.tasks.files import describe_attributes, unified_diff, write_file

DROP_IN_DIR = "/etc/ssh/sshd_config.d"
#: A signalled sshd takes a moment to read its files again: how often, and how far apart, to ask it.
RELOAD_CHECKS = 10
RELOAD_CHECK_SECONDS = 0.3
_OWNER_PREFIX = "# provision inventory: "

# $1 staged drop-in, $2 its path: installed root:root 0644 atomically, then `sshd -t`; a configuration
# sshd refuses is rolled back ON the host in the same command, so a lost connection can never leave
# an unchecked drop-in for the next reload or boot.
_INSTALL_DROP_IN = STAGED_CONTENT + """
set -u
staged=$1 target=$2 dir=$(dirname -- "$2")
backup=""
if [ -e "$target" ]; then
  backup=$(mktemp -p "$dir" .provision-backup.XXXXXXXX) && cp -p -- "$target" "$backup" || exit 1
fi
tmp=$(mktemp -p "$dir" .provision.XXXXXXXX) || exit 1
chmod 0644 "$tmp" && chown root:root "$tmp" && staged_content "$staged" > "$tmp" && sync -- "$tmp" \\
  && mv -f -- "$tmp" "$target" || { rm -f -- "$tmp" "$staged" "$backup"; exit 1; }
rm -f -- "$staged"
if checked=$(sshd -t 2>&1); then rm -f -- "$backup"; exit 0; fi
if [ -n "$backup" ]; then mv -f -- "$backup" "$target"; else rm -f -- "$target"; fi
printf 'sshd -t refused the configuration: %s\\n' "$checked" >&2
exit 3
"""

# $1 legacy drop-in: removed, then sshd must still accept its configuration.
_REMOVE_DROP_IN = 'set -eu; rm -f -- "$1"; sshd -t'

# Run as storage_user. $1 the chroot, then the entries to leave out (dvc_storage and the tool's
# repositories, whose modes their own tasks ensure): every other entry it can read or enter, a line each.
_READABLE_ENTRIES = """
root=$1
shift
for entry in "$root"/* "$root"/.[!.]* "$root"/..?*; do
  [ -e "$entry" ] || [ -L "$entry" ] || continue
  skip=no
  for own in "$@"; do [ "$entry" = "$own" ] && skip=yes; done
  [ "$skip" = no ] || continue
  if [ -r "$entry" ] || { [ -d "$entry" ] && [ -x "$entry" ]; }; then printf '%s\\n' "$entry"; fi
done
"""


def drop_in_path(storage_user: str) -> str:
    """The account's own drop-in; `10-` sorts it before drop-ins that might set the same keywords."""
    return f"{DROP_IN_DIR}/10-provision-{storage_user}.conf"


def legacy_drop_in_path(storage_user: str) -> str:
    """Where earlier versions put the password-only drop-in; removed on the way to drop_in_path."""
    return f"{DROP_IN_DIR}/10-provision-{storage_user}-password.conf"


def render_drop_in(settings: Settings, *, password: bool) -> str:
    """The Match block for storage_user: the chroot always, password login for SFTP when `password`."""
    return render("sshd/storage_user.conf.j2", inventory=settings.inventory_name, storage_user=settings.storage_user,
                  chroot=settings.sftp_root, password=password, force_command=SFTP_READ_WRITE_COMMAND)


def drop_in_owner(content: str) -> str | None:
    """The inventory named in a drop-in's owner line, None when it has none."""
    for line in content.split("\n"):
        if line.startswith(_OWNER_PREFIX):
            return line.removeprefix(_OWNER_PREFIX).strip()
    return None


def _without_owner(content: str) -> str:
    return "\n".join(line for line in content.split("\n") if not line.startswith(_OWNER_PREFIX))


def foreign_inventories(keys: AuthorizedKeys | str, inventory_name: str) -> set[str]:
    """Inventories other than `inventory_name` whose marked lines are in `keys` (a missing account: none)."""
    if isinstance(keys, str):
        return set()
    markers = (line_marker(line) for line in file_lines(keys.content))
    return {marker.split(":")[1] for marker in markers if marker and marker.split(":")[1] != inventory_name}


def chroot_components(chroot: str) -> list[str]:
    """Every directory sshd checks for ChrootDirectory `chroot`: `/` and each path down to it."""
    parts = [part for part in chroot.split("/") if part]
    return ["/", *("/" + "/".join(parts[:index]) for index in range(1, len(parts) + 1))]


def created_chroot_directories(settings: Settings) -> list[str]:
    """The chroot's components strictly below nfs_root: bootstrap makes them root:root 0755."""
    prefix = settings.nfs_root.rstrip("/") + "/"
    return [path for path in chroot_components(settings.sftp_root) if path.startswith(prefix)]


def chroot_problem(path: str, state: FileState) -> str:
    """Why sshd would refuse `path` as a component of a chroot; '' when it would not."""
    if not state.exists:
        return "does not exist"
    if not state.is_dir:
        return f"is a {state.kind}"
    if state.owner != "root" or state.mode & 0o022:
        return f"is {state.owner}:{state.group} {state.mode:04o}"
    return ""


class RequireSftpChroot(Task):
    """The chroot's components at and above nfs_root are root-owned, not group/world-writable; never changed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = [path for path in chroot_components(settings.sftp_root)
                      if path not in created_chroot_directories(settings)]
        self.name = f"SFTP chroot {settings.sftp_root}"
        self._facts = [FileFact(path) for path in self.paths]

    def facts(self) -> Sequence[Fact]:
        return self._facts

    def plan(self, ctx: HostContext) -> Change | None:
        settings = self.settings
        for path, fact in zip(self.paths, self._facts, strict=True):
            problem = chroot_problem(path, ctx.fact(fact))
            if problem:
                raise ProvisionError(
                    f"{path} {problem}: storage_user's SFTP chroot {settings.sftp_root} (the directory holding "
                    "dvc_storage) needs every directory on its path root-owned and not writable by group or "
                    f"others, and bootstrap never changes {path}: fix it (chown root {path}; chmod go-w {path}) or "
                    f"set dvc_storage one level deeper, e.g. {settings.nfs_root}/dvc/cache")
        ctx.note(f"{settings.storage_user} sees {settings.sftp_root} as / over SFTP, dvc_storage as "
                 f"{settings.sftp_dvc_storage}")
        return None


@dataclass(frozen=True)
class ReadableEntriesFact(Fact):
    """The entries of a directory, `leave_out` aside, that `user` can read or enter; None when su to the user
    fails (no such account yet)."""

    user: str
    directory: str
    leave_out: tuple[str, ...]
    privileged: bool = True

    @property
    def key(self) -> Hashable:
        return ("readable entries", self.user, self.directory, self.leave_out)

    def argv(self) -> list[str]:
        return as_user(self.user, script(_READABLE_ENTRIES, self.directory, *self.leave_out))

    def parse(self, output: BatchOutput) -> tuple[str, ...] | None:
        return output_lines(output.stdout) if output.rc == 0 else None


class SftpChrootEntries(Task):
    """Nothing in the chroot but dvc_storage is readable by storage_user.

    `own` are the tool's repositories and their parent: their tasks close them to the storage group.
    """

    def __init__(self, settings: Settings, own: Sequence[str]) -> None:
        self.settings = settings
        self.name = f"entries of the SFTP chroot {settings.sftp_root}"
        self._fact = ReadableEntriesFact(settings.storage_user, settings.sftp_root, (settings.dvc_storage, *own))

    def facts(self) -> Sequence[Fact]:
        return (self._fact,)

    def fresh_facts(self) -> Sequence[Fact]:
        return (self._fact,)  # this run may have just created storage_user

    def plan(self, ctx: HostContext) -> Change | None:
        readable: tuple[str, ...] | None = ctx.fact(self._fact)
        if readable is None:  # storage_user does not exist yet (under --check)
            return None
        if readable:
            shown = ", ".join(readable[:5]) + (f" and {len(readable) - 5} more" if len(readable) > 5 else "")
            raise ProvisionError(
                f"{self.settings.storage_user} could read {shown} over SFTP: its chroot {self.settings.sftp_root} "
                f"must show dvc_storage and nothing else. Close them to {self.settings.storage_user} (chmod o-rwx, "
                "and g-rwx when the storage group owns them) or move them out of the chroot")
        ctx.note(f"only {self.settings.dvc_storage} is readable there for {self.settings.storage_user}")
        return None


class SshdStorageUser(Task):
    """The drop-in as wanted (validated, reloaded, applied by the running sshd), owned by this inventory.

    `login` proves that the running sshd offers password login; it is needed only when `password`.
    """

    def __init__(self, settings: Settings, password: bool, login: AccountLogin | None) -> None:
        self.settings = settings
        self.password = password
        self.login = login
        self.user = settings.storage_user
        self.path = drop_in_path(self.user)
        self.legacy_path = legacy_drop_in_path(self.user)
        self.content = render_drop_in(settings, password=password)
        self.fact = FileFact(self.path)
        self.legacy_fact = FileFact(self.legacy_path)
        self.key_facts = (AuthorizedKeysFact(settings.storage_user), AuthorizedKeysFact(settings.git_user))
        self.name = f"sshd settings of {self.user}"

    def facts(self) -> Sequence[Fact]:
        return (self.fact, self.legacy_fact, *self.key_facts)

    def plan(self, ctx: HostContext) -> Change | None:
        state: FileState = ctx.fact(self.fact)
        legacy: FileState = ctx.fact(self.legacy_fact)
        if state.exists and not state.is_file:
            raise ProvisionError(f"{self.path} exists and is a {state.kind}, not a file")
        mine = self.settings.inventory_name
        owner = drop_in_owner(state.content or "") if state.exists else None
        if (state.exists and owner not in (mine, None) and not self.password and not legacy.exists
                and _without_owner(state.content or "") == _without_owner(self.content)):
            ctx.note(f"{self.path} belongs to inventory {owner}, which confines {self.user} alike")
            return self._check_running(ctx)
        wrong = describe_attributes(state, "root", "root", 0o644) if state.exists else []
        if state.exists and state.content == self.content and not wrong and not legacy.exists:
            return self._check_running(ctx)
        others = {owner or "(none named: the file has no owner line)"} - {mine} if state.exists else set()
        for keys in self.key_facts:
            others |= foreign_inventories(ctx.fact(keys), mine)
        if others:
            raise ProvisionError(
                f"inventory {mine} would change {self.path}, which sets what {self.user} may do over SSH, but "
                f"{self.user} or {self.settings.git_user} also serves inventory {', '.join(sorted(others))}, whose "
                "clients' access would change with it: give each inventory its own storage_user and git_user")
        what = "chroot " + self.settings.sftp_root + (", password login, SFTP only" if self.password else "")
        summary = f"{'write' if state.exists else 'create'} {self.path} ({what}), check it with sshd -t, reload sshd"
        diff = unified_diff(self.path, state.content if state.exists else None, self.content)
        if legacy.exists:
            summary = f"remove {self.legacy_path}, {summary}"
            diff += unified_diff(self.legacy_path, legacy.content, "")
        return Change(summary, lambda: self._install(ctx, state, legacy), diff)

    def _check_running(self, ctx: HostContext) -> Change | None:
        """The file is right; with password login the running sshd must offer it (a reload may be missing)."""
        if self.login is None or not self.password or "password" in ctx.fact(LoginMethodsFact(self.user,
                                                                                               self.login)):
            ctx.note(f"{self.path}: chroot {self.settings.sftp_root}"
                     + (", password login for SFTP" if self.password else ""))
            return None
        return Change(f"reload sshd: it does not offer password login to {self.user} yet", lambda: self._reload(ctx))

    def _install(self, ctx: HostContext, before: FileState, legacy: FileState) -> None:
        staged = ctx.session.stage(self.content.encode())
        installed = ctx.session.run(script(_INSTALL_DROP_IN, staged, self.path), privileged=True)
        ctx.forget(self.fact)
        if not installed.ok:
            raise ProvisionError(f"{installed.detail}; {self.path} was put back as it was")
        if legacy.exists:
            ctx.forget(self.legacy_fact)
            try:
                ctx.run(script(_REMOVE_DROP_IN, self.legacy_path), f"removing {self.legacy_path}", privileged=True)
            except ProvisionError:
                self._restore(ctx, self.path, before)
                raise
        problem = self._validate(ctx)
        if problem:
            self._restore(ctx, self.path, before)
            self._restore(ctx, self.legacy_path, legacy)
            raise ProvisionError(f"{problem}; {self.path} was put back as it was")
        self._reload(ctx)

    def _validate(self, ctx: HostContext) -> str:
        """'' when sshd applies the Match block to the account (`sshd -t` already passed)."""
        spec = f"user={self.user},host=localhost,addr=127.0.0.1"
        effective = ctx.session.run(["sshd", "-T", "-C", spec], privileged=True)
        if not effective.ok:
            return f"sshd -T -C {spec} failed: {effective.detail}"
        settings = KeyValues.parse(effective.stdout)  # keywords in lower case, as sshd -T prints them
        wanted = {"chrootdirectory": self.settings.sftp_root}
        if self.password:
            wanted |= {"passwordauthentication": "yes", "forcecommand": SFTP_READ_WRITE_COMMAND}
        found = {keyword: settings.get(keyword, "none") for keyword in wanted}
        if found != wanted:
            return (f"sshd ignores {self.path} for {self.user} (sshd -T: "
                    f"{', '.join(f'{keyword} {value}' for keyword, value in found.items())}): sshd_config must "
                    f"`Include {DROP_IN_DIR}/*.conf` and no earlier Match block may set these")
        return ""

    def _restore(self, ctx: HostContext, path: str, before: FileState) -> None:
        if before.exists:
            write_file(ctx, path, (before.content or "").encode(), owner=before.owner, group=before.group,
                       mode=before.mode)
        else:
            ctx.session.run(["rm", "-f", "--", path], privileged=True)
        ctx.forget(FileFact(path))

    def _reload(self, ctx: HostContext) -> None:
        command = self.settings.sshd_reload_command
        ctx.run(command, f"sshd_reload_command `{' '.join(command)}`", privileged=True)
        if self.login is None or not self.password:
            return
        for _ in range(RELOAD_CHECKS):
            if "password" in self.login.offered_methods(self.user):
                return
            time.sleep(RELOAD_CHECK_SECONDS)
        raise ProvisionError(f"after `{' '.join(command)}` sshd still offers no password login to {self.user}: "
                             "is sshd_reload_command reloading the sshd clients reach?")

