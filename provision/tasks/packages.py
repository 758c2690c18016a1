"""Tools on a host: git must be there; dvc is installed into its own virtualenv when missing or too old.

DVC goes into `dvc_venv` with pip, in a virtualenv made from the host's `/usr/bin/python3` (not a
Python under /root, which service accounts cannot run), and is linked as /usr/local/bin/dvc so that
every account finds it on its PATH. Tasks that run dvc use the absolute path this task exports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from provision.engine import Change, HostContext, Task
from provision.errors import ProvisionError, command_error
from provision.facts import CommandFact, Fact
from provision.remote import script

DVC_LINK = "/usr/local/bin/dvc"
SYSTEM_PYTHON = "/usr/bin/python3"
GIT_SHELL = "/usr/bin/git-shell"
#: Export key under which EnsureDvc hands the dvc executable to later tasks of the phase.
DVC_EXPORT = "dvc"
INSTALL_TIMEOUT = 1800.0

# $1 dvc_venv. One line per finding: the venv's dvc, the venv's python, the link, another dvc on PATH,
# the system Python.
_DVC_PROBE = """
venv=$1 link=/usr/local/bin/dvc
if [ -x "$venv/bin/dvc" ]; then printf 'venv %s\\n' "$("$venv/bin/dvc" --version 2>/dev/null | tail -n 1)"; fi
if [ -x "$venv/bin/python" ]; then echo 'venv-python yes'; fi
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
_DVC_INSTALL = """
set -eu
venv=$1 requirement=$2
if [ ! -x "$venv/bin/python" ]; then /usr/bin/python3 -m venv "$venv"; fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$requirement"
"$venv/bin/dvc" --version
"""

_GIT_PROBE = 'git --version && if [ -x "$1" ]; then echo git-shell; fi'


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


@dataclass(frozen=True)
class DvcState:
    """What the probe found: dvc in the venv, elsewhere on PATH, the link, the system Python."""

    venv_version: Version | None = None
    venv_python: bool = False
    link_target: str | None = None
    link_is_file: bool = False
    path_dvc: str | None = None
    path_version: Version | None = None
    system_python: str | None = None

    @classmethod
    def parse(cls, output: str) -> DvcState:
        values: dict[str, str] = {}
        for line in output.splitlines():
            key, _, value = line.partition(" ")
            values[key] = value.strip()
        path_dvc, path_version = None, None
        if "path" in values:
            path_dvc, _, version_text = values["path"].partition(" ")
            path_version = parse_version(version_text)
        return cls(
            venv_version=parse_version(values.get("venv")),
            venv_python="venv-python" in values,
            link_target=values.get("link"),
            link_is_file="link-file" in values,
            path_dvc=path_dvc,
            path_version=path_version,
            system_python=values.get("python") or None,
        )


@dataclass(frozen=True)
class DvcDecision:
    """Which dvc to use and what to do to get it."""

    executable: str
    version: Version | None
    install: bool
    link: bool


def decide_dvc(state: DvcState, spec: str, venv: str) -> DvcDecision:
    """Prefer the venv's dvc, then one already on PATH; install into the venv when neither fits."""
    venv_dvc = f"{venv}/bin/dvc"
    if in_range(state.venv_version, spec):
        return DvcDecision(venv_dvc, state.venv_version, install=False, link=state.link_target != venv_dvc)
    if state.path_dvc and in_range(state.path_version, spec):
        return DvcDecision(state.path_dvc, state.path_version, install=False, link=False)
    return DvcDecision(venv_dvc, None, install=True, link=state.link_target != venv_dvc)


class DvcFact(CommandFact):
    """The dvc installations a host has (see _DVC_PROBE)."""

    def __init__(self, venv: str) -> None:
        super().__init__(tuple(script(_DVC_PROBE, venv)), privileged=True)


class EnsureGit(Task):
    """git must be present; on storage also git-shell, the login shell of git_user."""

    name = "git"

    def __init__(self, *, git_shell: bool = False) -> None:
        self.git_shell = git_shell
        self._fact = CommandFact(tuple(script(_GIT_PROBE, GIT_SHELL)))

    def facts(self) -> Sequence[Fact]:
        return (self._fact,)

    def plan(self, ctx: HostContext) -> Change | None:
        output = ctx.fact(self._fact)
        if output is None:
            raise ProvisionError("git is missing: install it (Debian: apt-get install git)")
        version_line, *rest = output.splitlines()
        if self.git_shell and "git-shell" not in rest:
            raise ProvisionError(f"{GIT_SHELL} is missing: it comes with git (Debian: apt-get install git)")
        ctx.note(version_line.strip())
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


class EnsureDvc(_DvcTask):
    """dvc within `dvc_version`: reused when present, else pip-installed into `dvc_venv` and linked."""

    def plan(self, ctx: HostContext) -> Change | None:
        state = DvcState.parse(ctx.fact(self._fact) or "")
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
        if not decision.install and not decision.link:
            return None
        steps = []
        if decision.install:
            found = state.venv_version or state.path_version
            why = f"dvc {found} is outside {self.spec}" if found else "dvc is missing"
            venv_step = "" if state.venv_python else f"a venv from {SYSTEM_PYTHON} {state.system_python}, "
            steps.append(f"install dvc[ssh]{self.spec} into {self.venv} ({venv_step}{why})")
        if decision.link:
            steps.append(f"link {DVC_LINK} -> {decision.executable}")

        def apply() -> None:
            if decision.install:
                self._install(ctx)
            if decision.link:
                result = ctx.session.run(["ln", "-sfn", "--", decision.executable, DVC_LINK], privileged=True)
                if not result.ok:
                    raise command_error(f"linking {DVC_LINK}", result)
            ctx.forget(self._fact)

        return Change(", ".join(steps), apply)

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
        decision = decide_dvc(DvcState.parse(ctx.fact(self._fact) or ""), self.spec, self.venv)
        if decision.install:
            raise ProvisionError(f"no dvc {self.spec} on this host: run `provision onboard` first")
        ctx.export(DVC_EXPORT, decision.executable)
        ctx.note(f"dvc {decision.version} ({decision.executable})")
        return None
