"""The storage group and the service accounts, and running commands as those accounts.

Service accounts are key-only: their password hash is `*` (not `!`, which sshd refuses even for keys
when it runs without PAM). The one exception is storage_user while a client uses `auth: password`: its
password is then managed by provision.tasks.password_login, and left alone here. Their home, `~/.ssh`
and `authorized_keys` belong to root (0755, 0755, 0644): sshd's StrictModes accepts that, and no SFTP
or git session of the account can rewrite its own keys.

git_user's login shell is git-shell, and its key lines carry the forced command
`git-shell -c "$SSH_ORIGINAL_COMMAND"` (which also catches SFTP subsystem requests). sshd runs a forced
command through the login shell, so git-shell receives that text and looks up its first word in
`~/git-shell-commands/`; a root-owned helper there hands the client's command back to git-shell
only when it names a repository listed in the root-owned `~/git-repositories` (each bootstrap adds
its git_remote), so a key reaches the bare repositories it is meant for and nothing else git_user can
write. `no-interactive-login` there turns away a session without a command.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from provision.engine import Change, Command, HostContext, Planned, Task, changes_of
from provision.errors import ProvisionError
from provision.facts import PATH_STATE, Fact, FileFact, FileState, GroupEntry, GroupFact, KeyValues
from provision.remote import BatchOutput, script
from provision.render import render
from provision.tasks.files import EnsureFile, describe_attributes

HOME_BASE = "/home"
#: Root-owned list of the repositories git_user's keys may reach, in git_user's home (not in
#: ~/git-shell-commands/, where every file is a command).
SERVED_REPOSITORIES = "git-repositories"
#: git transport commands that only read; read-write keys may also push (git-receive-pack).
GIT_READ_VERBS = ("git-upload-pack", "git-upload-archive")
#: The dispatchers in ~/git-shell-commands, named after the forced commands, and whether read-only.
_DISPATCHERS = {"git-shell": False, "git-read-only": True}
_UNUSABLE_HOMES = ("", "/", "/nonexistent")

# $1 user. "absent", or the passwd entry, whether the hash is `*`, the groups, and the state of
# home, ~/.ssh and ~/.ssh/authorized_keys (one "stat PATH_STATE" line each).
_ACCOUNT_PROBE = PATH_STATE + """
user=$1
entry=$(getent passwd "$user") || { echo absent; exit 0; }
printf 'passwd %s\\n' "$entry"
case $(getent shadow "$user" | cut -d: -f2) in '*') echo 'hash star' ;; *) echo 'hash other' ;; esac
printf 'groups %s\\n' "$(id -nG "$user")"
home=$(printf '%s\\n' "$entry" | cut -d: -f6)
for path in "$home" "$home/.ssh" "$home/.ssh/authorized_keys"; do printf 'stat %s\\n' "$(path_state "$path")"; done
"""

# $1 user, $2 group, $3 shell, $4 home for a new account, $5 comment, $6 "keep" to leave an existing
# password hash alone. Each step checks first, so the script converges whatever part already exists.
_ACCOUNT_APPLY = """
set -eu
user=$1 group=$2 shell=$3 home=$4 comment=$5 password=$6
if ! getent passwd "$user" >/dev/null; then
  useradd --system --gid "$group" --shell "$shell" --home-dir "$home" --no-create-home \\
    --password '*' --comment "$comment" "$user"
fi
entry=$(getent passwd "$user")
home=$(printf '%s\\n' "$entry" | cut -d: -f6)
[ "$(printf '%s\\n' "$entry" | cut -d: -f7)" = "$shell" ] || usermod --shell "$shell" "$user"
[ "$password" = keep ] || [ "$(getent shadow "$user" | cut -d: -f2)" = '*' ] || usermod --password '*' "$user"
id -nG "$user" | tr ' ' '\\n' | grep -qxF -- "$group" || usermod --append --groups "$group" "$user"
for path in "$home" "$home/.ssh" "$home/.ssh/authorized_keys"; do
  if [ -L "$path" ]; then echo "$path is a symbolic link: refusing to use it" >&2; exit 1; fi
done
install -d -o root -g root -m 0755 -- "$home" "$home/.ssh"
[ -e "$home/.ssh/authorized_keys" ] || : > "$home/.ssh/authorized_keys"
chown root:root -- "$home/.ssh/authorized_keys"
chmod 0644 -- "$home/.ssh/authorized_keys"
"""


@dataclass(frozen=True)
class AccountState:
    """A passwd entry and what sshd looks at for its key logins."""

    exists: bool
    uid: int = 0
    home: str = ""
    shell: str = ""
    hash_is_star: bool = False
    groups: tuple[str, ...] = ()
    paths: tuple[FileState, ...] = field(default=(FileState(exists=False),) * 3)

    @classmethod
    def parse(cls, output: str) -> AccountState:
        """The probe's lines (_ACCOUNT_PROBE); "absent" when there is no such account."""
        values = KeyValues.parse(output)
        if "passwd" not in values:
            return cls(exists=False)
        entry = values.get("passwd").split(":")
        return cls(exists=True, uid=int(entry[2]), home=entry[5], shell=entry[6],
                   hash_is_star=values.get("hash") == "star", groups=tuple(values.get("groups").split()),
                   paths=tuple(FileState.from_stat(line) for line in values.all("stat")))


@dataclass(frozen=True)
class AccountFact(Fact):
    """An account as sshd and bootstrap see it; equal for equal users, so every task that asks reads it once."""

    user: str
    privileged: bool = True

    @property
    def key(self) -> Hashable:
        return ("account", self.user)

    def argv(self) -> list[str]:
        return script(_ACCOUNT_PROBE, self.user)

    def parse(self, output: BatchOutput) -> AccountState:
        return AccountState.parse(output.stdout) if output.rc == 0 else AccountState(exists=False)


def account_home(ctx: HostContext, user: str) -> str:
    """The account's home on the host; where bootstrap will make it while the account does not exist yet."""
    state: AccountState = ctx.fact(AccountFact(user))
    return state.home if state.exists else f"{HOME_BASE}/{user}"


def account_problems(state: AccountState, group: str, shell: str, *, keep_password: bool = False) -> list[str]:
    """What differs from a key-only service account in `group` with root-owned ~/.ssh; [] when right.

    With `keep_password` the password hash is not checked (a password login is managed elsewhere).
    """
    if not state.exists:
        return []
    wrong = []
    if state.shell != shell:
        wrong.append(f"shell {state.shell} -> {shell}")
    if not keep_password and not state.hash_is_star:
        wrong.append("password hash -> *")
    if group not in state.groups:
        wrong.append(f"add to group {group}")
    wanted = (("home", "directory", 0o755), ("~/.ssh", "directory", 0o755),
              ("~/.ssh/authorized_keys", "regular", 0o644))
    for info, (label, kind, mode) in zip(state.paths, wanted, strict=True):
        if not info.exists:
            wrong.append(f"create {label}")
        elif (info.owner, info.group, info.mode) != ("root", "root", mode) or not info.kind.startswith(kind):
            wrong.append(f"{label} {info.owner}:{info.group} {info.mode:04o} -> root:root {mode:04o}")
    return wrong


class EnsureGroup(Task):
    """The group that shares the DVC remote, the cache and the repositories (fixed gid when given)."""

    def __init__(self, group: str, gid: int | None) -> None:
        self.group = group
        self.gid = gid
        self.name = f"group {group}"
        self._fact = GroupFact(group)

    def facts(self) -> Sequence[Fact]:
        return (self._fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        entry: GroupEntry | None = ctx.fact(self._fact)
        if entry is not None:
            if self.gid is not None and entry.gid != self.gid:
                raise ProvisionError(
                    f"group {self.group} has gid {entry.gid}, the inventory's storage_gid is {self.gid}: "
                    "files on the export keep the old gid, so change it by hand (groupmod) or fix storage_gid")
            ctx.note(f"gid {entry.gid}")
            return None
        argv = ["groupadd", "--system", *(["--gid", str(self.gid)] if self.gid is not None else []), self.group]
        return Change(f"create group {self.group}" + (f" (gid {self.gid})" if self.gid is not None else ""),
                      commands=[Command(argv, f"creating group {self.group}", stale=[self._fact])])


class EnsureServiceAccount(Task):
    """A key-only account in the storage group, with a login shell that limits what a key can do.

    `keep_password`: the account's password is managed by another task (storage_user with password
    clients), so its hash is neither checked nor reset to `*`.
    """

    def __init__(self, user: str, group: str, shell: str, comment: str, *, keep_password: bool = False) -> None:
        self.user = user
        self.group = group
        self.shell = shell
        self.comment = comment
        self.keep_password = keep_password
        self.name = f"account {user}"
        self._fact = AccountFact(user)

    def facts(self) -> Sequence[Fact]:
        return (self._fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        state: AccountState = ctx.fact(self._fact)
        home = state.home if state.exists else f"{HOME_BASE}/{self.user}"
        if home in _UNUSABLE_HOMES:
            raise ProvisionError(f"account {self.user} has home {home!r}, where sshd finds no keys: give it "
                                 f"a home (usermod --home {HOME_BASE}/{self.user} {self.user}) and rerun")
        for info, label in zip(state.paths, ("home", "~/.ssh", "~/.ssh/authorized_keys"), strict=True):
            if info.kind == "symbolic link":
                raise ProvisionError(f"{label} of {self.user} is a symbolic link: replace it with a real "
                                     "directory or file owned by root")
        if state.exists:
            ctx.note(f"uid {state.uid}, shell {state.shell}, home {home}")
            changes = account_problems(state, self.group, self.shell, keep_password=self.keep_password)
            if not changes:
                return None
            summary = f"fix account {self.user}: {', '.join(changes)}"
        else:
            summary = (f"create account {self.user} (group {self.group}, shell {self.shell}, password hash *, "
                       f"root-owned {home}, ~/.ssh 0755, empty authorized_keys 0644)")
        argv = script(_ACCOUNT_APPLY, self.user, self.group, self.shell, home, self.comment,
                      "keep" if self.keep_password else "")
        return Change(summary, commands=[Command(argv, f"setting up account {self.user}", stale=[self._fact])])


def git_shell_commands(user: str, git_shell: str) -> dict[str, str]:
    """The files of ~/git-shell-commands, by name: one dispatcher per forced command, no-interactive-login."""
    files = {name: render("git_shell/dispatch.j2", user=user, git_shell=git_shell, read_only=read_only,
                          verbs=GIT_READ_VERBS if read_only else ("git-receive-pack", *GIT_READ_VERBS))
             for name, read_only in _DISPATCHERS.items()}
    files["no-interactive-login"] = render("git_shell/no-interactive-login.j2", user=user)
    return files


def served_repositories(current: str | None, repository: str, user: str) -> str:
    """The repository list holding `repository` alone.

    Every key of git_user reaches every repository the list names, so a second project's repository
    there would open each project to the other's clients: that is refused (docs/security.md).
    """
    listed = [line for line in (current or "").split("\n") if line.strip()]
    others = [line for line in listed if line != repository]
    if others:
        raise ProvisionError(f"{user} already serves {', '.join(others)} (~{user}/{SERVED_REPOSITORIES}): every key "
                             f"of {user} reaches every repository it serves, so clients of either project could push "
                             "to the other's; give this inventory its own git_user and storage_user, or remove a "
                             "repository that is no longer served from that file")
    return repository + "\n"


class EnsureServedRepository(Task):
    """git_remote listed in git_user's root-owned ~/git-repositories, so the dispatchers serve it."""

    def __init__(self, user: str, repository: str) -> None:
        self.user = user
        self.repository = repository
        self.name = f"repositories served to {user}'s keys"
        self._account = AccountFact(user)

    def _path(self, home: str) -> str:
        return f"{home.rstrip('/')}/{SERVED_REPOSITORIES}"

    def facts(self) -> Sequence[Fact]:
        return (self._account, FileFact(self._path(f"{HOME_BASE}/{self.user}")))

    def plan(self, ctx: HostContext) -> Change | None:
        path = self._path(account_home(ctx, self.user))
        current: FileState = ctx.fact(FileFact(path))
        if current.exists and not current.is_file:
            raise ProvisionError(f"{path} exists and is a {current.kind}, not a file")
        wanted = served_repositories(current.content if current.exists else None, self.repository, self.user)
        return EnsureFile(path, wanted, owner="root", group="root", mode=0o644).plan(ctx)


class EnsureGitShellCommands(Task):
    """Root-owned ~/git-shell-commands for git_user, so that forced-command key lines work under git-shell
    and reach only the repositories in ~/git-repositories."""

    def __init__(self, user: str, git_shell: str) -> None:
        self.user = user
        self.git_shell = git_shell
        self.name = f"git-shell commands of {user}"
        self._account = AccountFact(user)

    def _paths(self, home: str) -> tuple[str, dict[str, str]]:
        directory = f"{home}/git-shell-commands"
        files = {f"{directory}/{name}": text for name, text in git_shell_commands(self.user, self.git_shell).items()}
        return directory, files

    def facts(self) -> Sequence[Fact]:
        directory, files = self._paths(f"{HOME_BASE}/{self.user}")
        return (self._account, FileFact(directory), *(FileFact(path) for path in files))

    def plan(self, ctx: HostContext) -> Planned:
        directory, files = self._paths(account_home(ctx, self.user))
        current: FileState = ctx.fact(FileFact(directory))
        if current.exists and not current.is_dir:
            raise ProvisionError(f"{directory} exists and is a {current.kind}, not a directory")
        changes = [change for path, text in files.items()
                   for change in changes_of(EnsureFile(path, text, owner="root", group="root", mode=0o755).plan(ctx))]
        if current.exists and not describe_attributes(current, "root", "root", 0o755):
            return changes
        argv = ["install", "-d", "-o", "root", "-g", "root", "-m", "0755", "--", directory]
        return [Change(f"{'create' if not current.exists else 'fix'} {directory} (root:root 0755)",
                       commands=[Command(argv, f"creating {directory}", stale=[FileFact(directory)])]), *changes]
