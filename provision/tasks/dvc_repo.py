"""The server-side DVC repository: `dvc init`, its committed `.dvc/config`, its `config.local`, datasets.

The committed `.dvc/config` is what every client clones: the default remote as an SSH URL with
`verify = true`, a group-shared cache, and never a user, password or keyfile. The server repository's
own `.dvc/config.local` (ignored by DVC's `.dvc/.gitignore`) points that remote at the local directory
`dvc_storage` and keeps DVC's site cache in git_user's root-owned home, private to git_user (0700):
DVC keeps pickles there and unpickles them, so no other account may create or change anything in it.
Both files are written with configobj, as DVC reads them (provision.dvc_config).

Each change runs as one script as git_user: clone or init, `dvc init`, write the files, commit, push;
or `dvc add`, `dvc push`, commit, tag, push. `set -e` stops at the first failure, so a tag is only
made after the data push succeeded. The two config files are written inside that script (temp file
in the same directory, fsync, rename), as git_user: the shared `write_file` installs as root, which a
root-squashing NFS export refuses and which would leave root-owned files in git_user's repository.
Their content holds no secret, so it may travel as an argument.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from provision.dvc_config import config_text
from provision.engine import Change, Command, HostContext, Planned, Task, changes_of
from provision.errors import ProvisionError
from provision.facts import Fact, FileFact, FileState, KeyValues
from provision.inventory import Settings
from provision.remote import BatchOutput, as_user, script
from provision.tasks.accounts import AccountFact, account_home
from provision.tasks.directories import FSTYPE_EXPORT, EnsureDirectory
from provision.tasks.files import unified_diff
from provision.tasks.git_repo import (
    BRANCH_PROBE,
    GIT_ENVIRONMENT,
    GIT_FUNCTIONS,
    GIT_PRELUDE,
    WorkTreeFact,
    WorkTreeState,
    commit_identity,
)
from provision.tasks.packages import DVC_EXPORT

CONFIG = ".dvc/config"
CONFIG_LOCAL = ".dvc/config.local"
#: What `dvc init` creates and the server repository commits.
COMMITTED_DVC_FILES = (CONFIG, ".dvc/.gitignore", ".dvcignore")
REPO_TIMEOUT = 600.0
DATA_TIMEOUT = 3600.0

# $1 repo, $2 git_remote, $3 dvc, $4 site cache dir, $5 .dvc/config, $6 .dvc/config.local,
# $7 committer name, $8 committer email, $9 commit message.
_SERVER_REPO_APPLY = GIT_PRELUDE + GIT_FUNCTIONS + """
repo=$1 remote=$2 dvc=$3 site_cache=$4 config=$5 config_local=$6 name=$7 email=$8 message=$9
export DVC_NO_ANALYTICS=1 DVC_SITE_CACHE_DIR="$site_cache"
replace_file() {
  tmp=$(mktemp "$1.XXXXXXXX")
  if printf '%s' "$2" > "$tmp" && chmod 0644 "$tmp" && sync -- "$tmp" && mv -f -- "$tmp" "$1"; then return 0; fi
  rm -f -- "$tmp"
  return 1
}
checkout_repository "$repo" "$remote"
sync_branch
if [ ! -d .dvc ]; then "$dvc" init --quiet; fi
replace_file .dvc/config "$config"
replace_file .dvc/config.local "$config_local"
commit_paths "$name" "$email" "$message" .dvc/config .dvc/.gitignore .dvcignore
push_head
"""

# $1 repo, $2 dataset path, $3 tag or empty, $4 dvc_storage. Key-value lines (see DatasetState).
_DATASET_PROBE = GIT_ENVIRONMENT + """
repo=$1 path=$2 tag=$3 storage=$4
cd -- "$repo" 2>/dev/null && [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$(pwd -P)" ] \\
  || { echo 'repo absent'; exit 0; }
echo 'repo present'
if [ -e "$path" ]; then
  echo 'data present'
  foreign=$(find "$path" ! -user "$(id -un)" -print -quit 2>/dev/null || true)
  if [ -n "$foreign" ]; then printf 'foreign %s\\n' "$foreign"; fi
fi
if [ -f "$path.dvc" ]; then
  echo 'dvcfile present'
  if git ls-files --error-unmatch -- "$path.dvc" >/dev/null 2>&1 \\
     && [ -z "$(git status --porcelain -- "$path.dvc" "$(dirname -- "$path")/.gitignore")" ]; then
    echo 'committed yes'
  fi
  for md5 in $(sed -n 's/^[ -]*md5: *\\([0-9a-f]\\{32\\}\\(\\.dir\\)\\{0,1\\}\\) *$/\\1/p' "$path.dvc"); do
    rest=${md5#??}
    if [ -e "$storage/files/md5/${md5%"$rest"}/$rest" ]; then printf 'object %s yes\\n' "$md5"
    else printf 'object %s no\\n' "$md5"; fi
  done
fi
if [ -n "$tag" ] && tagged=$(git rev-parse -q --verify "refs/tags/$tag^{commit}"); then
  printf 'tag %s\\n' "$tagged"
  if [ -f "$path.dvc" ] && git diff --quiet "$tagged" -- "$path.dvc" 2>/dev/null; then echo 'tag_matches yes'; fi
  printf 'tag_object %s\\n' "$(git rev-parse "refs/tags/$tag")"
  printf 'remote_tag %s\\n' "$(git ls-remote origin "refs/tags/$tag" | cut -f1)"
fi
""" + BRANCH_PROBE

# $1 repo, $2 dvc, $3 site cache dir, $4 dataset path, $5 tag or empty, $6 committer name,
# $7 committer email, $8 commit message, $9 tag message.
_DATASET_APPLY = GIT_PRELUDE + GIT_FUNCTIONS + """
repo=$1 dvc=$2 site_cache=$3 path=$4 tag=$5 name=$6 email=$7 message=$8 tag_message=$9
export DVC_NO_ANALYTICS=1 DVC_SITE_CACHE_DIR="$site_cache"
cd -- "$repo"
sync_branch
# Data goes into the group-shared cache and remote with group write (as clients' `internal-sftp -u
# 0002` does); git's own files stay without it (GIT_ENVIRONMENT).
umask 002
"$dvc" add --quiet -- "$path"
"$dvc" push -- "$path.dvc"  # not --quiet: its errors (a full disk, with the path) are the message
umask 022
# What DVC just made in its site cache under that umask stays git_user's alone.
chmod -R go-w -- "$site_cache"
commit_paths "$name" "$email" "$message" "$path.dvc" "$(dirname -- "$path")/.gitignore"
if [ -n "$tag" ]; then
  if ! git rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
    git -c "user.name=$name" -c "user.email=$email" tag --annotate --message "$tag_message" -- "$tag"
  fi
  push_head "refs/tags/$tag"
else
  push_head
fi
"""


#: Directories DVC's site cache holds (`repo/` DVC would create world-writable).
SITE_CACHE_SUBDIRECTORIES = ("", "/repo")
SITE_CACHE_MODE = 0o700


def remote_url(settings: Settings) -> str:
    """The committed remote URL: dvc_storage as storage_user's SFTP chroot shows it."""
    return f"ssh://{settings.storage_url_host}:{settings.storage_port}{settings.sftp_dvc_storage}"


def site_cache_dir(git_home: str) -> str:
    """Where the server repository keeps DVC's site cache: in git_user's home, which only root can write."""
    return f"{git_home.rstrip('/')}/dvc-site-cache"


def legacy_site_cache_dir(settings: Settings) -> str:
    """Where earlier versions kept it, in /var/tmp, where any account could create it first."""
    return f"/var/tmp/dvc-site-cache-{settings.project}"


def committed_config(settings: Settings, *, hardlink_lock: bool) -> str:
    """The `.dvc/config` every clone gets: the default remote, verified, and a group-shared cache."""
    core = {"remote": settings.dvc_remote} | ({"hardlink_lock": "true"} if hardlink_lock else {})
    return config_text({"core": core, "cache": {"shared": "group", "type": settings.cache_types},
                        f'remote "{settings.dvc_remote}"': {"url": remote_url(settings), "verify": "true"}},
                       comment=["Written by `provision bootstrap`. Credentials never go here: each clone keeps its "
                                "own in .dvc/config.local."])


def server_config_local(settings: Settings, git_home: str) -> str:
    """The server repository's own `.dvc/config.local`: the remote as the local directory, the site cache
    private to git_user, and with `server_cache: shared` the remote as the cache."""
    cache = {"cache": {"dir": settings.dvc_storage}} if settings.server_cache == "shared" else {}
    return config_text({"core": {"site_cache_dir": site_cache_dir(git_home)}, **cache,
                        f'remote "{settings.dvc_remote}"': {"url": settings.dvc_storage}},
                       comment=["Written by `provision bootstrap` for the server-side repository only (not "
                                "committed).", "The remote is the local directory, so this repository never "
                                "connects to its own host over SSH."])


def gc_guard(settings: Settings) -> str:
    """Why plain `dvc gc` must never run in a server repository whose cache is the remote."""
    return (f"server_cache: shared makes {settings.dvc_storage} the server repository's cache AND the remote: "
            f"never run a plain `dvc gc` in {settings.server_repo}, it deletes objects that clients pushed. "
            f"Safe form, as {settings.git_user} in {settings.server_repo}: "
            "`git fetch --prune --tags origin '+refs/heads/*:refs/remotes/origin/*'`, then "
            "`dvc gc --all-commits --all-branches --all-tags`")


def _dvc_executable(ctx: HostContext, settings: Settings) -> str:
    return ctx.state.report(ctx.host.name).exports.get(DVC_EXPORT, f"{settings.dvc_venv}/bin/dvc")


class EnsureSiteCache(Task):
    """DVC's site cache for server_repo private to git_user (0700, `repo/` too), the /var/tmp one removed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = f"DVC site cache of {settings.git_user}"
        self._legacy = FileFact(legacy_site_cache_dir(settings))

    def facts(self) -> Sequence[Fact]:
        return (AccountFact(self.settings.git_user), self._legacy)

    def plan(self, ctx: HostContext) -> Planned:
        settings = self.settings
        directory = site_cache_dir(account_home(ctx, settings.git_user))
        changes = [change for sub in SITE_CACHE_SUBDIRECTORIES for change in changes_of(
            EnsureDirectory(directory + sub, settings.git_user, settings.storage_group, SITE_CACHE_MODE).plan(ctx))]
        legacy: FileState = ctx.fact(self._legacy)
        if legacy.exists:
            changes.append(Change(f"remove {self._legacy.path} (any account could create or change it there)",
                                  commands=[Command(["rm", "-rf", "--", self._legacy.path],
                                                    f"removing {self._legacy.path}", stale=[self._legacy])]))
        if not changes:
            ctx.note(f"{directory} ({settings.git_user} only)")
        return changes


class EnsureServerRepo(Task):
    """server_repo: a clone of git_remote with DVC initialised, configured, committed and pushed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = f"server repository {settings.server_repo}"
        self._fact = WorkTreeFact(settings.server_repo, settings.git_user)

    def facts(self) -> Sequence[Fact]:
        return (self._fact,)

    def fresh_facts(self) -> Sequence[Fact]:
        return (self._fact,)  # earlier tasks of this run may have made the account or the repository

    def _wanted(self, ctx: HostContext, state: WorkTreeState) -> tuple[str, str]:
        """The two files as they should be; hardlink_lock depends on the repository's filesystem."""
        fstype = state.fstype or ctx.state.report(ctx.host.name).exports.get(FSTYPE_EXPORT, "")
        return (committed_config(self.settings, hardlink_lock=fstype.startswith("nfs")),
                server_config_local(self.settings, account_home(ctx, self.settings.git_user)))

    def plan(self, ctx: HostContext) -> Change | None:
        settings = self.settings
        state: WorkTreeState = ctx.fact(self._fact)
        if not state.readable and not ctx.check:
            raise ProvisionError(f"cannot read {settings.server_repo} as {settings.git_user} "
                                 "(does the account exist?)")
        config, config_local = self._wanted(ctx, state)
        cache_note = (f"cache {settings.dvc_storage} (shared with the remote)" if settings.server_cache == "shared"
                      else "cache .dvc/cache (separate)")
        ctx.note(f"remote {settings.dvc_remote} = {remote_url(settings)}, locally {settings.dvc_storage}; {cache_note}")
        if settings.server_cache == "shared":
            ctx.note(gc_guard(settings))
        if state.is_repo and state.origin != settings.git_remote:
            raise ProvisionError(f"{settings.server_repo} has origin {state.origin or '(none)'}, the inventory's "
                                 f"git_remote is {settings.git_remote}: fix one of them")
        steps = server_repo_steps(state, settings.git_remote, config, config_local)
        if not steps:
            return None
        diff = "".join(unified_diff(f"{settings.server_repo}/{name}", state.files.get(name), text)
                       for name, text in ((CONFIG, config), (CONFIG_LOCAL, config_local))
                       if state.files.get(name) != text)
        name, email = commit_identity(settings.git_user, ctx.host.name)
        message = (f"Configure DVC remote '{settings.dvc_remote}' (provision bootstrap)\n\n"
                   f"Default remote {settings.dvc_remote}: {remote_url(settings)}, verify = true.\n"
                   f"Cache: shared = group, type = {settings.cache_types}.\n"
                   "Credentials stay in each clone's .dvc/config.local, which is not committed.\n")
        argv = script(_SERVER_REPO_APPLY, settings.server_repo, settings.git_remote, _dvc_executable(ctx, settings),
                      site_cache_dir(account_home(ctx, settings.git_user)), config, config_local, name, email, message)

        def apply() -> None:
            ctx.run(argv, as_user=settings.git_user, what=f"setting up {settings.server_repo}",
                           timeout=REPO_TIMEOUT)
            ctx.forget(self._fact)

        return Change(", ".join(steps), apply, diff)


def server_repo_steps(state: WorkTreeState, git_remote: str, config: str, config_local: str) -> list[str]:
    """What the server repository needs, in the order the apply script does it; [] when nothing."""
    steps = []
    if state.dir in ("absent", "empty"):
        steps.append(f"clone {git_remote}")
    elif state.dir == "files":
        steps.append(f"git init (keeping the files there) with origin {git_remote}")
    if state.behind:
        steps.append("fast-forward to git_remote's branch")
    if not state.dvc_initialised:
        steps.append("dvc init")
    config_changed = state.files.get(CONFIG) != config
    if config_changed:
        steps.append(f"write {CONFIG}")
    if state.files.get(CONFIG_LOCAL) != config_local:
        steps.append(f"write {CONFIG_LOCAL}")
    fast_forward_only = steps == ["fast-forward to git_remote's branch"]
    if (steps and not fast_forward_only) or state.uncommitted:
        steps.append(f"commit {', '.join(COMMITTED_DVC_FILES)}")
    if (steps and not fast_forward_only) or not (state.pushed or state.behind):
        steps.append("push to git_remote")
    return steps


@dataclass(frozen=True)
class DatasetState:
    """A dataset in the server repository as git_user sees it (see _DATASET_PROBE)."""

    readable: bool
    repo: bool = False
    data_present: bool = False
    foreign: str = ""
    dvcfile: bool = False
    committed: bool = False
    objects: dict[str, bool] = field(default_factory=dict)
    tag_commit: str = ""
    tag_matches: bool = False
    tag_object: str = ""
    remote_tag: str = ""
    pushed: bool = False
    behind: bool = False

    @classmethod
    def parse(cls, output: str) -> DatasetState:
        values = KeyValues.parse(output)
        objects = (value.partition(" ") for value in values.all("object"))  # "MD5 yes|no"
        return cls(readable=True, repo=values.get("repo") == "present", data_present="data" in values,
                   foreign=values.get("foreign"), dvcfile="dvcfile" in values,
                   committed=values.get("committed") == "yes",
                   objects={md5: present == "yes" for md5, _, present in objects}, tag_commit=values.get("tag"),
                   tag_matches=values.get("tag_matches") == "yes", tag_object=values.get("tag_object"),
                   remote_tag=values.get("remote_tag"), pushed=values.get("pushed") == "yes",
                   behind=values.get("behind") == "yes")


def dataset_steps(state: DatasetState, path: str, tag: str | None, owner: str) -> list[str]:
    """What adding the dataset still needs; [] when added, pushed, committed, tagged and pushed.

    Raises when it cannot be done: no data, data git_user cannot take over, or a tag that already
    names another version.
    """
    added = state.dvcfile and state.committed
    if tag and state.tag_commit and not (added and state.tag_matches):
        raise ProvisionError(f"tag {tag} already exists at {state.tag_commit[:12]}, which does not hold this "
                             f"{path}.dvc: choose another tag")
    steps = []
    if not added:
        if not state.dvcfile and not state.data_present:
            raise ProvisionError(f"--data {path}: nothing at {path} in the server repository; put the dataset "
                                 f"there (owned by {owner}) and rerun")
        if state.foreign:
            raise ProvisionError(f"--data {path}: {state.foreign} is not owned by {owner}, so DVC cannot move it "
                                 f"into its cache: chown -R {owner} {path} and rerun")
        steps.append(f"dvc add {path}")
    if not added or not state.objects or not all(state.objects.values()):
        steps.append("dvc push")
    if not added:
        steps.append(f"commit {path}.dvc and .gitignore")
    if tag and not state.tag_commit:
        steps.append(f"tag {tag}")
    if steps or not (state.pushed or state.behind) or (tag and state.remote_tag != state.tag_object):
        steps.append("git push" + (f" with tag {tag}" if tag else ""))
    return steps


@dataclass(frozen=True)
class DatasetFact(Fact):
    """A dataset in the server repository `repo`, read as its owner (not readable when that fails); its objects
    looked up in dvc_storage."""

    repo: str
    owner: str
    path: str
    tag: str | None
    dvc_storage: str
    privileged: bool = True

    @property
    def key(self) -> Hashable:
        return ("dataset", self.repo, self.owner, self.path, self.tag, self.dvc_storage)

    def argv(self) -> list[str]:
        return as_user(self.owner, script(_DATASET_PROBE, self.repo, self.path, self.tag or "", self.dvc_storage))

    def parse(self, output: BatchOutput) -> DatasetState:
        return DatasetState.parse(output.stdout) if output.rc == 0 else DatasetState(readable=False)


class EnsureDataset(Task):
    """A first dataset: `dvc add`, `dvc push`, commit, annotated tag, `git push` with the tag."""

    def __init__(self, settings: Settings, path: str, tag: str | None) -> None:
        self.settings = settings
        self.path = path
        self.tag = tag
        self.name = f"dataset {path}" + (f" {tag}" if tag else "")
        self._fact = DatasetFact(settings.server_repo, settings.git_user, path, tag, settings.dvc_storage)

    def facts(self) -> Sequence[Fact]:
        return (self._fact,)

    def fresh_facts(self) -> Sequence[Fact]:
        return (self._fact,)  # earlier tasks of this run may have made the repository or moved its branch

    def plan(self, ctx: HostContext) -> Change | None:
        settings = self.settings
        state: DatasetState = ctx.fact(self._fact)
        if not state.repo:
            if ctx.check:
                return Change(f"dvc add {self.path}, dvc push, commit, tag and push once {settings.server_repo} "
                              "exists", lambda: None)
            raise ProvisionError(f"{settings.server_repo} is not a git repository readable by {settings.git_user}")
        steps = dataset_steps(state, self.path, self.tag, settings.git_user)
        if not steps:
            ctx.note(f"{self.path}.dvc committed, data in {settings.dvc_storage}"
                     + (f", tag {self.tag} pushed" if self.tag else ""))
            return None
        name, email = commit_identity(settings.git_user, ctx.host.name)
        message = (f"Add dataset {self.path} with DVC (provision bootstrap)\n\n"
                   f"The data is in DVC remote '{settings.dvc_remote}'; `dvc pull` fetches it.\n")
        tag_message = f"{self.tag}: dataset {self.path}" if self.tag else ""
        argv = script(_DATASET_APPLY, settings.server_repo, _dvc_executable(ctx, settings),
                      site_cache_dir(account_home(ctx, settings.git_user)), self.path, self.tag or "", name, email,
                      message, tag_message)

        def apply() -> None:
            ctx.run(argv, as_user=settings.git_user, what=f"adding dataset {self.path}", timeout=DATA_TIMEOUT)
            ctx.forget(self._fact)

        return Change(", ".join(steps), apply)
