"""Git repositories on storage: the shared bare repository and working repositories kept by git_user.

Everything inside a repository runs as its owning account (`as_user(git_user, ...)`), never as root:
NFS exports commonly squash root, and git refuses repositories owned by another user. Because the
owner does the work, no `safe.directory` exception is ever needed. Commit identity is given per
command (`git -c user.name=... -c user.email=...`), so no account's global config is written.

The shell pieces below are constants; values reach them only as positional arguments.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from provision.engine import Change, Command, HostContext, Task
from provision.errors import ProvisionError
from provision.facts import Fact, KeyValues
from provision.remote import BatchOutput, as_user, script

INITIAL_BRANCH = "main"

#: Environment of every script that works in a repository: no prompts, host keys checked, no
#: optional index writes (so reading state never changes a byte), and no group write: the SFTP-only
#: DVC account shares the storage group and must not plant hooks or config in a repository.
GIT_ENVIRONMENT = """
umask 022
export GIT_TERMINAL_PROMPT=0 GIT_OPTIONAL_LOCKS=0 GIT_SSH_COMMAND='ssh -o BatchMode=yes -o StrictHostKeyChecking=yes'
"""
#: Start of every script that changes a repository: the environment, and stop at the first error.
GIT_PRELUDE = "set -eu\n" + GIT_ENVIRONMENT

#: Shell functions for working repositories. checkout_repository REPO REMOTE: clone REMOTE into REPO
#: when REPO is empty; when REPO already holds files (the write-up copied the project there first),
#: init in place and take the remote's branch if it has one. commit_paths NAME EMAIL MESSAGE PATH...:
#: commit those paths when they changed. sync_branch: fast-forward to the remote's branch (clients
#: push too). push_head REF...: push the current branch and the given refs.
GIT_FUNCTIONS = """
checkout_repository() {
  cd -- "$1"
  if [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$(pwd -P)" ]; then return 0; fi
  if [ -z "$(ls -A)" ]; then
    git clone --quiet -- "$2" .
    return 0
  fi
  git init --quiet --initial-branch=main  # INITIAL_BRANCH, as for the bare repository
  git remote add origin "$2"
  git fetch --quiet origin
  head=$(git ls-remote --symref origin HEAD | sed -n 's|^ref: refs/heads/\\([^\t]*\\)\tHEAD$|\\1|p')
  if [ -n "$head" ] && git rev-parse -q --verify "refs/remotes/origin/$head" >/dev/null; then
    git checkout --quiet -b "$head" --track "origin/$head"
  fi
}
commit_paths() {
  name=$1 email=$2 message=$3
  shift 3
  git add -- "$@"
  if ! git diff --cached --quiet -- "$@"; then
    git -c "user.name=$name" -c "user.email=$email" commit --quiet -m "$message" -- "$@"
  fi
}
sync_branch() {
  branch=$(git symbolic-ref --short HEAD)
  if git ls-remote --exit-code origin "refs/heads/$branch" >/dev/null; then
    git fetch --quiet origin "refs/heads/$branch"
    git merge --quiet --ff-only FETCH_HEAD
  fi
}
push_head() {
  branch=$(git symbolic-ref --short HEAD)
  git push --quiet --set-upstream origin "HEAD:refs/heads/$branch" "$@"
}
"""

#: Shell lines for a probe in a repository: "pushed yes" when git_remote's branch holds HEAD, "behind yes"
#: when that branch has commits this repository lacks (clients pushed since).
BRANCH_PROBE = """
branch=$(git symbolic-ref --short -q HEAD) || branch=
remote_head=
if [ -n "$branch" ]; then remote_head=$(git ls-remote origin "refs/heads/$branch" | cut -f1); fi
if [ -z "$remote_head" ]; then :
elif [ "$remote_head" = "$(git rev-parse -q --verify HEAD)" ]; then echo 'pushed yes'
elif ! git cat-file -e "$remote_head^{commit}" 2>/dev/null; then echo 'behind yes'
elif git merge-base --is-ancestor HEAD "$remote_head"; then echo 'pushed yes'; echo 'behind yes'
fi
"""

# $1 working repository. Key-value lines; files as base64 so no content can forge a line.
_WORKTREE_PROBE = GIT_ENVIRONMENT + """
repo=$1
dir=$repo
while [ ! -e "$dir" ]; do dir=$(dirname -- "$dir"); done
printf 'fstype %s\\n' "$(stat -f -c %T -- "$dir")"
cd -- "$repo" 2>/dev/null || { echo 'dir absent'; exit 0; }
if [ -z "$(ls -A)" ]; then echo 'dir empty'; exit 0; fi
if [ "$(git rev-parse --show-toplevel 2>/dev/null)" != "$(pwd -P)" ]; then echo 'dir files'; exit 0; fi
echo 'dir repo'
printf 'origin %s\\n' "$(git config --get remote.origin.url || true)"
""" + BRANCH_PROBE + """
if [ -d .dvc ]; then echo 'dvc yes'; fi
printf 'uncommitted %s\\n' "$(git status --porcelain -- .dvc/config .dvc/.gitignore .dvcignore | wc -l)"
for file in .dvc/config .dvc/config.local; do
  if [ -f "$file" ]; then printf 'file %s %s\\n' "$file" "$(base64 -w0 < "$file")"; fi
done
"""

# $1 bare repository. Key-value lines: "dir" absent | notdir | empty | other | repo; for a repository also
# "bare", "shared" (core.bare, core.sharedRepository, "-" when unset) and "owner".
_BARE_PROBE = """
path=$1
[ -e "$path" ] || { echo 'dir absent'; exit 0; }
[ -d "$path" ] || { echo 'dir notdir'; exit 0; }
if [ -f "$path/HEAD" ] && [ -d "$path/objects" ] && [ -f "$path/config" ]; then
  echo 'dir repo'
  printf 'bare %s\\n' "$(git config --file "$path/config" --get core.bare || echo -)"
  printf 'shared %s\\n' "$(git config --file "$path/config" --get core.sharedRepository || echo -)"
  stat -c 'owner %U' -- "$path"
elif [ -z "$(ls -A -- "$path")" ]; then echo 'dir empty'
else echo 'dir other'; fi
"""

#: core.sharedRepository of the bare repository: git_user's alone. The SFTP-only DVC account is in the
#: storage group; a group-writable repository would let a DVC client plant hooks or config that
#: git_user then runs, and a group-readable one would show the project's history to every DVC key.
SHARED_REPOSITORY = "0600"


@dataclass(frozen=True)
class WorkTreeState:
    """A working repository as its owner sees it (see _WORKTREE_PROBE)."""

    readable: bool
    fstype: str = ""
    dir: str = "absent"
    origin: str = ""
    pushed: bool = False
    behind: bool = False
    dvc_initialised: bool = False
    uncommitted: int = 0
    files: dict[str, str] = field(default_factory=dict)

    @property
    def is_repo(self) -> bool:
        return self.dir == "repo"

    @classmethod
    def parse(cls, output: str) -> WorkTreeState:
        values = KeyValues.parse(output)
        return cls(readable=True, fstype=values.get("fstype"), dir=values.get("dir", "absent"),
                   origin=values.get("origin"), pushed=values.get("pushed") == "yes",
                   behind=values.get("behind") == "yes", dvc_initialised=values.get("dvc") == "yes",
                   uncommitted=int(values.get("uncommitted") or 0), files=values.files("file"))


@dataclass(frozen=True)
class WorkTreeFact(Fact):
    """A working repository's state, read as its owner; not readable while the account does not exist (or su
    failed)."""

    repo: str
    owner: str
    privileged: bool = True

    @property
    def key(self) -> Hashable:
        return ("work tree", self.repo, self.owner)

    def argv(self) -> list[str]:
        return as_user(self.owner, script(_WORKTREE_PROBE, self.repo))

    def parse(self, output: BatchOutput) -> WorkTreeState:
        return WorkTreeState.parse(output.stdout) if output.rc == 0 else WorkTreeState(readable=False)


@dataclass(frozen=True)
class BareRepoState:
    """What is at a bare repository's path (see _BARE_PROBE): `dir` absent, notdir, empty, other or repo."""

    dir: str = "absent"
    bare: str = "-"
    shared: str = "-"
    owner: str = ""


@dataclass(frozen=True)
class BareRepoFact(Fact):
    """A bare repository's path: what is there, and for a repository its core.bare, core.sharedRepository
    and owner."""

    path: str
    privileged: bool = True

    @property
    def key(self) -> Hashable:
        return ("bare repository", self.path)

    def argv(self) -> list[str]:
        return script(_BARE_PROBE, self.path)

    def parse(self, output: BatchOutput) -> BareRepoState:
        values = KeyValues.parse(output.stdout if output.rc == 0 else "")
        return BareRepoState(values.get("dir", "absent"), values.get("bare", "-"), values.get("shared", "-"),
                             values.get("owner"))


def commit_identity(owner: str, host_name: str) -> tuple[str, str]:
    """Author and committer of provision's commits: says which tool and account made them."""
    return "provision", f"{owner}@{host_name}"


class EnsureBareRepo(Task):
    """The bare repository clients push to, owned by git_user and closed to everyone else."""

    def __init__(self, path: str, owner: str, group: str) -> None:
        self.path = path
        self.owner = owner
        self.group = group
        self.name = f"bare repository {path}"
        self._fact = BareRepoFact(path)

    def facts(self) -> Sequence[Fact]:
        return (self._fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        state: BareRepoState = ctx.fact(self._fact)
        if state.dir == "notdir":
            raise ProvisionError(f"git_remote {self.path} exists and is not a directory")
        if state.dir == "other":
            raise ProvisionError(f"git_remote {self.path} holds files but no git repository: move them away "
                                 "or point git_remote elsewhere")
        if state.dir in ("absent", "empty"):
            argv = ["git", "init", "--quiet", "--bare", f"--shared={SHARED_REPOSITORY}",
                    f"--initial-branch={INITIAL_BRANCH}", self.path]
            return Change(f"create bare repository {self.path} (--shared={SHARED_REPOSITORY}, owner {self.owner})",
                          commands=[self._command(argv, "git init --bare")])
        if state.bare != "true":
            raise ProvisionError(f"git_remote {self.path} is a repository with a work tree, not a bare one")
        if state.owner != self.owner:
            raise ProvisionError(f"git_remote {self.path} is owned by {state.owner}, not {self.owner}: "
                                 f"chown -R {self.owner}:{self.group} {self.path}")
        if state.shared == SHARED_REPOSITORY:
            return None
        argv = script('git config --file "$1/config" core.sharedRepository "$2" && chmod -R go-rwx -- "$1"',
                      self.path, SHARED_REPOSITORY)
        return Change(f"set core.sharedRepository = {SHARED_REPOSITORY} in {self.path}, closed to group and others",
                      commands=[self._command(argv, "git config core.sharedRepository")])

    def _command(self, argv: list[str], what: str) -> Command:
        """argv as the owner, files made 0644/0755 whatever root's umask (git's own modes do the rest)."""
        return Command(as_user(self.owner, script("umask 022 && exec \"$@\"", *argv)), f"{what} as {self.owner}",
                       stale=[self._fact])
