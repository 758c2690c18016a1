"""Tools on a host: git must be there; dvc is installed into its own virtualenv when missing or too old.

DVC goes into `dvc_venv` with pip, in a virtualenv made from the host's `/usr/bin/python3` (not a
Python under /root, which service accounts cannot run), and is linked as /usr/local/bin/dvc so that
every account finds it on its PATH. Tasks that run dvc use the absolute path this task exports.

The dvc in `dvc_venv` also gets provision's dvc-ssh guard (provision/dvc_ssh_guard.py, loaded by a
`.pth` line), so that `dvc push`/`pull` typed by hand verify storage's pinned host key and never forward
the agent. A dvc from elsewhere cannot be guarded: onboarding and ping say so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from provision import dvc_ssh_guard
from provision.engine import Change, HostContext, Task
from provision.errors import ProvisionError
from provision.facts import Fact, KeyValues
from provision.remote import BatchOutput, script
from provision.render import render
from provision.tasks.files import ROOT_ONLY_DIRECTORY, write_file

DVC_LINK = "/usr/local/bin/dvc"
SYSTEM_PYTHON = "/usr/bin/python3"
GIT_SHELL = "/usr/bin/git-shell"
#: Export key under which EnsureDvc hands the dvc executable to later tasks of the phase.
DVC_EXPORT = "dvc"
#: The export that says which dvc build a client's proofs relied on (see DvcBuild).
DVC_BUILD_EXPORT = "dvc_build"
INSTALL_TIMEOUT = 1800.0
#: The guard's top-level module name inside a dvc virtualenv (its `.pth` file has the same stem).
GUARD_MODULE = "provision_dvc_ssh_guard"

# Run by the venv's python with the guard's module name: its site-packages, the versions of dvc and dvc-ssh
# there and the checksums of the guard's files, one "name value" line each. dvc's version comes from its
# package metadata: `dvc --version` imports dvc, about a CPU second on every host of every run.
_VENV_FACTS = """
import hashlib, importlib.metadata, os, sys, sysconfig
purelib = sysconfig.get_path("purelib")
print("purelib", purelib)
for name, key in (("dvc", "venv"), ("dvc-ssh", "dvc-ssh")):
    try:
        print(key, importlib.metadata.version(name))
    except importlib.metadata.PackageNotFoundError:
        pass
for kind in ("py", "pth"):
    path = os.path.join(purelib, sys.argv[1] + "." + kind)
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            print("guard-" + kind, hashlib.sha256(handle.read()).hexdigest())
"""

# $1 dvc_venv, $2 the guard's module name, $3 _VENV_FACTS. One line per finding: the venv's dvc, the
# venv's python and _VENV_FACTS (as root only from a venv that only root can change, else why not), the
# link, another dvc on PATH, the system Python.
_DVC_PROBE = ROOT_ONLY_DIRECTORY + """
venv=$1 link=/usr/local/bin/dvc
if [ "$(id -u)" -eq 0 ] && ! unsafe=$(root_only_directory "$venv"); then
  printf 'venv-unsafe %s\\n' "$unsafe"
else
  if [ -x "$venv/bin/dvc" ]; then echo 'venv-dvc yes'; fi
  if [ -x "$venv/bin/python" ]; then
    echo 'venv-python yes'
    "$venv/bin/python" -I -B -c "$3" "$2" 2>/dev/null
  fi
fi
if [ -L "$link" ]; then printf 'link %s\\n' "$(readlink -- "$link")"
elif [ -e "$link" ]; then echo 'link-file yes'; fi
found=$(command -v dvc 2>/dev/null) || found=
if [ -n "$found" ] && [ "$(readlink -f -- "$found")" != "$(readlink -f -- "$venv/bin/dvc")" ]; then
  printf 'path %s %s\\n' "$found" "$("$found" --version 2>/dev/null | tail -n 1)"
fi
if [ -x /usr/bin/python3 ]; then
  printf 'python %s\\n' "$(/usr/bin/python3 -c 'import sys; print(sys.version.split()[0])')"
fi
"""

# $1 dvc_venv, $2 pip requirement. Creates the venv when missing, installs, prints the version.
_DVC_INSTALL = ROOT_ONLY_DIRECTORY + """
set -eu
venv=$1 requirement=$2
if [ "$(id -u)" -eq 0 ] && ! problem=$(root_only_directory "$venv"); then echo "$problem" >&2; exit 1; fi
if [ ! -x "$venv/bin/python" ]; then /usr/bin/python3 -m venv "$venv"; fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$requirement"
"$venv/bin/dvc" --version
"""

# $1 git-shell's path. "git VERSION" when git runs, "git-shell yes" when $1 is there.
_GIT_PROBE = """
if version=$(git --version 2>/dev/null); then printf 'git %s\\n' "${version#git version }"; fi
if [ -x "$1" ]; then echo 'git-shell yes'; fi
"""


def parse_version(text: str | None) -> Version | None:
    """The version `dvc --version` printed, or None when it printed nothing usable."""
    if not text:
        return None
    try:
        return Version(text.strip().split()[-1])
    except InvalidVersion:
        return None


def in_range(version: Version | None, spec: str) -> bool:
    """Whether an installed version satisfies `dvc_version` (an installed pre-release counts)."""
    return version is not None and SpecifierSet(spec).contains(version, prereleases=True)


@cache
def guard_files() -> dict[str, bytes]:
    """The guard's files as they go into a dvc virtualenv's site-packages: the module and its `.pth` line."""
    return {f"{GUARD_MODULE}.py": Path(dvc_ssh_guard.__file__).read_bytes(),
            f"{GUARD_MODULE}.pth": render("dvc/guard.pth.j2", module=GUARD_MODULE).encode()}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class DvcState:
    """What the probe found: dvc in the venv (its dvc-ssh, the guard), elsewhere on PATH, the link, the system
    Python."""

    venv_version: Version | None = None
    venv_python: bool = False
    link_target: str | None = None
    link_is_file: bool = False
    path_dvc: str | None = None
    path_version: Version | None = None
    system_python: str | None = None
    purelib: str | None = None
    dvc_ssh_version: str | None = None
    guard_checksums: tuple[str | None, str | None] = (None, None)
    venv_unsafe: str | None = None

    @property
    def guard_installed(self) -> bool:
        """The venv's site-packages holds exactly this provision's guard module and `.pth` line."""
        wanted = tuple(_sha256(data) for data in guard_files().values())
        return self.purelib is not None and self.guard_checksums == wanted

    @property
    def guard_active(self) -> bool:
        """The guard is installed and was checked against the venv's dvc-ssh, so it patches it."""
        return self.guard_installed and self.dvc_ssh_version in dvc_ssh_guard.CHECKED_DVC_SSH_VERSIONS

    @classmethod
    def parse(cls, output: str) -> DvcState:
        values = KeyValues.parse(output)
        path_dvc, _, path_version = values.get("path").partition(" ")
        return cls(
            venv_version=parse_version(values.get("venv")) if "venv-dvc" in values else None,
            venv_python="venv-python" in values,
            link_target=values.get("link") if "link" in values else None,
            link_is_file="link-file" in values,
            path_dvc=path_dvc or None,
            path_version=parse_version(path_version),
            system_python=values.get("python") or None,
            purelib=values.get("purelib") or None,
            dvc_ssh_version=values.get("dvc-ssh") or None,
            guard_checksums=(values.get("guard-py") or None, values.get("guard-pth") or None),
            venv_unsafe=values.get("venv-unsafe") or None,
        )


@dataclass(frozen=True)
class DvcDecision:
    """Which dvc to use and what to do to get it."""

    executable: str
    version: Version | None
    install: bool
    link: bool


@dataclass(frozen=True)
class DvcBuild:
    """The dvc a client runs: a recorded proof holds only for the same version and guard."""

    version: str
    guarded: bool


def decide_dvc(state: DvcState, spec: str, venv: str) -> DvcDecision:
    """Prefer the venv's dvc, then one already on PATH; install into the venv when neither fits."""
    venv_dvc = f"{venv}/bin/dvc"
    if in_range(state.venv_version, spec):
        return DvcDecision(venv_dvc, state.venv_version, install=False, link=state.link_target != venv_dvc)
    if state.path_dvc and in_range(state.path_version, spec):
        return DvcDecision(state.path_dvc, state.path_version, install=False, link=False)
    return DvcDecision(venv_dvc, None, install=True, link=state.link_target != venv_dvc)


def unguarded_dvc_warning(state: DvcState, venv: str) -> str | None:
    """Why `dvc push`/`pull` typed on this host would trust any storage host key, or None when they would not."""
    venv_dvc = f"{venv}/bin/dvc"
    if state.path_dvc:
        return (f"dvc on PATH ({state.path_dvc}) is not the dvc provision installs in {venv}: its SSH remote "
                "verifies no host key and forwards the agent when run by hand")
    if state.venv_version is None:
        return None
    if not state.guard_installed:
        return (f"{venv_dvc} lacks provision's dvc-ssh guard (run `provision onboard`): its SSH remote verifies "
                "no host key and forwards the agent")
    if not state.guard_active:
        checked = ", ".join(sorted(dvc_ssh_guard.CHECKED_DVC_SSH_VERSIONS))
        return (f"dvc-ssh {state.dvc_ssh_version} in {venv} is not a version provision's guard was checked "
                f"against ({checked}): its SSH remote verifies no host key and forwards the agent")
    return None


@dataclass(frozen=True)
class DvcFact(Fact):
    """The dvc installations a host has (see _DVC_PROBE); read with privilege unless a task only reports."""

    venv: str
    privileged: bool = True

    @property
    def key(self) -> Hashable:
        return ("dvc", self.venv, self.privileged)

    def argv(self) -> list[str]:
        return script(_DVC_PROBE, self.venv, GUARD_MODULE, _VENV_FACTS)

    def parse(self, output: BatchOutput) -> DvcState:
        return DvcState.parse(output.stdout) if output.rc == 0 else DvcState()


@dataclass(frozen=True)
class GitState:
    """git's version ("" when git is missing) and whether git-shell is there."""

    version: str = ""
    git_shell: bool = False


@dataclass(frozen=True)
class GitFact(Fact):
    """The git a host runs, and whether it has git-shell."""

    @property
    def key(self) -> Hashable:
        return ("git",)

    def argv(self) -> list[str]:
        return script(_GIT_PROBE, GIT_SHELL)

    def parse(self, output: BatchOutput) -> GitState:
        values = KeyValues.parse(output.stdout if output.rc == 0 else "")
        return GitState(values.get("git"), values.get("git-shell") == "yes")


class EnsureGit(Task):
    """git must be present; on storage also git-shell, the login shell of git_user."""

    name = "git"

    def __init__(self, *, git_shell: bool = False) -> None:
        self.git_shell = git_shell
        self._fact = GitFact()

    def facts(self) -> Sequence[Fact]:
        return (self._fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        git: GitState = ctx.fact(self._fact)
        if not git.version:
            raise ProvisionError("git is missing: install it (Debian: apt-get install git)")
        if self.git_shell and not git.git_shell:
            raise ProvisionError(f"{GIT_SHELL} is missing: it comes with git (Debian: apt-get install git)")
        ctx.note(f"git version {git.version}")
        return None


class _DvcTask(Task):
    """A task about the dvc within `dvc_version` (spec) that `dvc_venv` holds or PATH offers."""

    name = "dvc"

    def __init__(self, spec: str, venv: str) -> None:
        self.spec = spec
        self.venv = venv
        self._fact = DvcFact(venv)

    def facts(self) -> Sequence[Fact]:
        return (self._fact,)

    def _state(self, ctx: HostContext) -> DvcState:
        """The probe's findings; a dvc_venv that another account can change is refused (root runs it)."""
        state: DvcState = ctx.fact(self._fact)
        if state.venv_unsafe:
            raise ProvisionError(f"dvc_venv {self.venv}: {state.venv_unsafe}: root would run and install programs "
                                 "there that another account can change; use a directory only root can write, "
                                 "such as the default /opt/provision/dvc")
        return state

    def _export_build(self, ctx: HostContext, executable: str) -> None:
        """Which version runs as `executable`, and whether the guard makes it check storage's host key."""
        state = self._state(ctx)
        if executable == f"{self.venv}/bin/dvc":
            ctx.export(DVC_BUILD_EXPORT, DvcBuild(str(state.venv_version), state.guard_active))
        else:
            ctx.export(DVC_BUILD_EXPORT, DvcBuild(str(state.path_version), guarded=False))


class EnsureDvc(_DvcTask):
    """dvc within `dvc_version`: reused when present, else pip-installed into `dvc_venv` and linked."""

    def plan(self, ctx: HostContext) -> Change | None:
        state = self._state(ctx)
        decision = decide_dvc(state, self.spec, self.venv)
        ctx.export(DVC_EXPORT, decision.executable)
        if decision.link and state.link_is_file:
            raise ProvisionError(f"{DVC_LINK} is a file, not a link to {decision.executable}: move it away "
                                 "so that every account runs the dvc provision installs")
        if decision.install and not state.system_python:
            raise ProvisionError(f"dvc {self.spec} is needed and {SYSTEM_PYTHON} is missing to install it "
                                 "(Debian: apt-get install python3-venv)")
        if not decision.install:
            ctx.note(f"dvc {decision.version} ({decision.executable})")
        guard = decision.executable == f"{self.venv}/bin/dvc" and (decision.install or not state.guard_installed)
        if not guard:
            self._warn_unguarded(ctx, state)
        self._export_build(ctx, decision.executable)  # again once a change made it stale
        if not decision.install and not decision.link and not guard:
            return None
        steps = []
        if decision.install:
            found = state.venv_version or state.path_version
            why = f"dvc {found} is outside {self.spec}" if found else "dvc is missing"
            venv_step = "" if state.venv_python else f"a venv from {SYSTEM_PYTHON} {state.system_python}, "
            steps.append(f"install dvc[ssh]{self.spec} into {self.venv} ({venv_step}{why})")
        if decision.link:
            steps.append(f"link {DVC_LINK} -> {decision.executable}")
        if guard:
            steps.append(f"install provision's dvc-ssh guard into {state.purelib or self.venv}")

        def apply() -> None:
            if decision.install:
                self._install(ctx)
            if decision.link:
                ctx.run(["ln", "-sfn", "--", decision.executable, DVC_LINK], f"linking {DVC_LINK}", privileged=True)
            ctx.forget(self._fact)
            if guard:
                self._install_guard(ctx)
            self._export_build(ctx, decision.executable)

        return Change(", ".join(steps), apply)


    def _warn_unguarded(self, ctx: HostContext, state: DvcState) -> None:
        warning = unguarded_dvc_warning(state, self.venv)
        if warning:
            ctx.note(f"warning: {warning}")

    def _install_guard(self, ctx: HostContext) -> None:
        """The guard's files into the venv's site-packages (root-owned, like the venv), then checked."""
        state: DvcState = ctx.fact(self._fact)
        if state.purelib is None:
            raise ProvisionError(f"{self.venv}/bin/python does not name its site-packages: recreate {self.venv}")
        for name, data in guard_files().items():
            write_file(ctx, f"{state.purelib}/{name}", data, mode=0o644)
        ctx.forget(self._fact)
        self._warn_unguarded(ctx, ctx.fact(self._fact))

    def _install(self, ctx: HostContext) -> None:
        requirement = f"dvc[ssh]{self.spec}"
        result = ctx.session.run(script(_DVC_INSTALL, self.venv, requirement), privileged=True,
                                 timeout=INSTALL_TIMEOUT)
        if not result.ok:
            hint = " (Debian: apt-get install python3-venv)" if "ensurepip" in result.stderr else ""
            raise ProvisionError(f"installing {requirement} into {self.venv} failed: {result.detail}{hint}")
        installed = parse_version(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else None)
        if not in_range(installed, self.spec):
            raise ProvisionError(f"pip installed dvc {installed} into {self.venv}, outside {self.spec}")
        ctx.note(f"dvc {installed} installed ({self.venv}/bin/dvc)")


class FindDvc(_DvcTask):
    """dvc within `dvc_version` must be there already: rotations prove access with it, never install it."""

    def plan(self, ctx: HostContext) -> Change | None:
        decision = decide_dvc(self._state(ctx), self.spec, self.venv)
        if decision.install:
            raise ProvisionError(f"no dvc {self.spec} on this host: run `provision onboard` first")
        ctx.export(DVC_EXPORT, decision.executable)
        self._export_build(ctx, decision.executable)
        ctx.note(f"dvc {decision.version} ({decision.executable})")
        return None
