"""Installing the pre-commit hook: where git looks for it, and never over someone else's hook."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from provision.audit.hook import CHAINED, MARK, install_hook
from provision.errors import ProvisionError


def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path / "r")], check=True)
    return tmp_path / "r"


def test_core_hooks_path_is_honoured(tmp_path: Path) -> None:
    path = repo(tmp_path)
    subprocess.run(["git", "-C", str(path), "config", "core.hooksPath", "githooks"], check=True)
    assert install_hook(path).endswith("githooks/pre-commit: installed")
    hook = path / "githooks" / "pre-commit"
    assert MARK in hook.read_text() and hook.stat().st_mode & 0o111
    assert CHAINED not in hook.read_text()


def test_a_foreign_hook_is_chained_once_and_never_lost(tmp_path: Path) -> None:
    path = repo(tmp_path)
    hooks = path / ".git" / "hooks"
    (hooks / "pre-commit").write_text("#!/bin/sh\necho mine\n")
    assert "kept the existing hook" in install_hook(path)
    assert (hooks / CHAINED).read_text() == "#!/bin/sh\necho mine\n"
    assert f'"$(dirname -- "$0")/{CHAINED}" "$@" || exit $?' in (hooks / "pre-commit").read_text()
    (hooks / "pre-commit").write_text("#!/bin/sh\necho another\n")
    with pytest.raises(ProvisionError, match="merge them by hand"):
        install_hook(path)
    assert (hooks / "pre-commit").read_text() == "#!/bin/sh\necho another\n"
