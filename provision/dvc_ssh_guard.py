"""Makes DVC's SSH remote verify the server's host key and never forward the SSH agent, and keeps DVC's
directory listings inside their directory.

dvc-ssh hands its connection options to sshfs, which passes `known_hosts=None` to asyncssh (any host
key is accepted), and asks for agent forwarding. `provision` installs this file as the top-level module
`provision_dvc_ssh_guard` into the virtualenv of the dvc it installs, with a `.pth` line that imports it
at interpreter start. It then wraps `dvc_ssh.SSHFileSystem._prepare_credentials` when dvc_ssh is first
imported: the options it returns get the user's `~/.ssh/known_hosts` (where `provision onboard` pins
storage's host key; no file means no key is trusted) and `agent_forwarding=False`.

It patches only dvc-ssh versions whose code it was checked against; with any other version it changes
nothing and says so on stderr, and `provision onboard`/`ping` warn. Standard library only: it runs
inside dvc's virtualenv, where provision itself is not installed.

A directory output's listing (a `.dir` object) names each file by a path relative to the output, and
DVC writes each file where that path leads, `..` included, and through any link on the way, such as
the output's own path committed to git as a link; any client that can push data and commits could
send another client's `dvc pull` to `~/.ssh/rc`. So when `dvc_data.hashfile.tree` is imported, the
guard wraps `Tree.from_list`, through which every listing is read, to refuse an entry whose path is
absolute or has an empty, `.` or `..` part; and when `dvc_data.index.checkout` is, it wraps `apply`,
which makes, changes and deletes a checkout's files, to refuse changes below a link in the checkout.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.metadata
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any

#: dvc-ssh versions whose `_prepare_credentials` and sshfs hand-off this guard was checked against.
CHECKED_DVC_SSH_VERSIONS = frozenset({"4.3.0"})
TARGET_MODULE = "dvc_ssh"
#: Where DVC reads directory listings (Tree.from_list).
LISTING_MODULE = "dvc_data.hashfile.tree"
#: Where DVC applies a checkout's changes to the work tree (apply).
CHECKOUT_MODULE = "dvc_data.index.checkout"
#: The changes of a checkout diff, each a list of entries whose `key` is a path below the checkout.
_DIFF_CHANGES = ("files_delete", "dirs_delete", "dirs_create", "files_create", "files_chmod")
#: Set on the patched method, so that a second patch (or a status probe) can tell.
MARKER = "__provision_guarded__"


def known_hosts() -> str | bytes:
    """The running user's ~/.ssh/known_hosts, or no trusted key at all (asyncssh: b'') when it is missing."""
    path = os.path.expanduser("~/.ssh/known_hosts")
    return path if os.path.isfile(path) else b""


def harden(options: dict[str, Any]) -> dict[str, Any]:
    """asyncssh connect options that check the host key against the user's pins and keep the agent home."""
    options["known_hosts"] = known_hosts()
    options["agent_forwarding"] = False
    return options


def guard(module: ModuleType, version: str | None) -> bool:
    """Wrap the module's `SSHFileSystem._prepare_credentials` if `version` was checked; say so if not."""
    if version not in CHECKED_DVC_SSH_VERSIONS:
        print(f"provision: dvc-ssh {version} is not a version provision's guard was checked against, so DVC's "
              "SSH remote does not verify the host key and forwards the agent; run `provision onboard` to "
              "install a checked dvc", file=sys.stderr)
        return False
    filesystem = module.SSHFileSystem
    original: Callable[..., dict[str, Any]] = filesystem._prepare_credentials
    if getattr(original, MARKER, False):
        return True

    @functools.wraps(original)
    def prepare_credentials(self: Any, **config: Any) -> dict[str, Any]:
        return harden(original(self, **config))

    setattr(prepare_credentials, MARKER, True)
    filesystem._prepare_credentials = prepare_credentials
    return True


def safe_relpath(relpath: object) -> bool:
    """A listing entry's path stays in its directory: relative, and no part empty, `.` or `..`."""
    return (isinstance(relpath, str) and "\0" not in relpath
            and all(part not in ("", ".", "..") for part in relpath.split("/")))


def guard_listings(module: ModuleType) -> bool:
    """Wrap the module's `Tree.from_list` so that a listing with an entry leaving its directory is refused."""
    tree = getattr(module, "Tree", None)
    original = getattr(tree, "from_list", None)
    if tree is None or original is None:
        print("provision: this dvc-data has no Tree.from_list, so provision's guard cannot check directory "
              "listings: a listing from another client may write files outside the output", file=sys.stderr)
        return False
    if getattr(original, MARKER, False):
        return True
    refused = getattr(module, "ObjectFormatError", ValueError)
    key = getattr(tree, "PARAM_RELPATH", "relpath")

    @functools.wraps(original)
    def from_list(cls: type, entries: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        for entry in entries:
            relpath = entry.get(key) if isinstance(entry, dict) else None
            if not safe_relpath(relpath):
                raise refused(f"directory listing entry {relpath!r} leads out of its directory (refused by "
                              "provision's guard)")
        return original.__func__(cls, entries, *args, **kwargs)

    setattr(from_list, MARKER, True)
    tree.from_list = classmethod(from_list)
    return True


def link_on_the_way(root: str, keys: Iterable[Sequence[str]]) -> str | None:
    """The first directory below `root` on the way to one of `keys` (path parts) that is a link, if any."""
    checked: set[tuple[str, ...]] = set()
    for key in keys:
        for depth in range(1, len(key)):
            parts = tuple(key[:depth])
            if parts in checked:
                continue
            checked.add(parts)
            path = os.path.join(root, *parts)
            if os.path.islink(path):
                return path
    return None


def guard_checkout(module: ModuleType) -> bool:
    """Wrap the module's `apply` so that no change to a local checkout goes through a link inside it."""
    original = getattr(module, "apply", None)
    if original is None:
        print("provision: this dvc-data has no checkout apply, so provision's guard cannot keep checkouts from "
              "writing through links: data from another client may write files outside the output",
              file=sys.stderr)
        return False
    if getattr(original, MARKER, False):
        return True

    @functools.wraps(original)
    def apply(diff: Any, path: str, fs: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(fs, "protocol", None) == "local":
            keys = (entry.key for change in _DIFF_CHANGES for entry in getattr(diff, change, ()) if entry.key)
            link = link_on_the_way(path, keys)
            if link is not None:
                raise OSError(f"{link} is a link inside the checkout: DVC would write through it, so the checkout "
                              "is refused by provision's guard (remove the link, then check out again)")
        return original(diff, path, fs, *args, **kwargs)

    setattr(apply, MARKER, True)
    module.apply = apply
    return True


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version("dvc-ssh")
    except importlib.metadata.PackageNotFoundError:
        return None


def _guard_ssh(module: ModuleType) -> None:
    guard(module, _installed_version())


#: The modules the guard patches, each with its patch.
_PATCHES: dict[str, Callable[[ModuleType], object]] = {
    TARGET_MODULE: _guard_ssh, LISTING_MODULE: guard_listings, CHECKOUT_MODULE: guard_checkout}


class _GuardingLoader(importlib.abc.Loader):
    """Runs the real loader, then guards the module before anyone else sees it."""

    def __init__(self, loader: importlib.abc.Loader, patch: Callable[[ModuleType], object]) -> None:
        self.loader = loader
        self.patch = patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        self.patch(module)


class _GuardFinder(importlib.abc.MetaPathFinder):
    """Finds the patched modules the usual way and hands them out with the guarding loader; nothing else
    is touched."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        patch = _PATCHES.get(fullname)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _GuardingLoader(spec.loader, patch)
        return spec


def install() -> None:
    """Guard each module now if it is already imported, else when it is (at no cost to other imports)."""
    for name, patch in _PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not all(name in sys.modules for name in _PATCHES) and not any(
            isinstance(finder, _GuardFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _GuardFinder())


if __name__ == "provision_dvc_ssh_guard":
    install()
