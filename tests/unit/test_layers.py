"""The layers hold: the CLI reaches tasks only through plays, plays compose tasks without defining any,
and a task module imports another task module for its tasks, not for helpers (those belong in a module
of their own, so that each task module is one resource)."""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

import provision
from provision.engine import Task

PACKAGE = Path(provision.__file__).parent

#: Task modules that import another task module for helpers alone (importer -> imported), as the code
#: stands. The list only shrinks: move the helper out of the task module, then drop its line here.
KNOWN_HELPER_IMPORTS = frozenset({
    "audit -> accounts",
    "audit -> authorized_keys",
    "audit -> client_key",
    "audit -> storage_host_key",
    "audit -> directories",
    "audit -> dvc_repo",
    "audit -> sshd_config",
    "authorized_keys -> client_key",
    "authorized_keys -> files",
    "checkout -> client_key",
    "checkout -> storage_host_key",
    "storage_host_key -> client_key",
    "storage_host_key -> files",
    "directories -> files",
    "dvc_client -> checkout",
    "dvc_client -> client_key",
    "dvc_client -> files",
    "dvc_repo -> accounts",
    "dvc_repo -> files",
    "dvc_repo -> git_repo",
    "dvc_repo -> packages",
    "host_info -> packages",
    "key_rotation -> client_key",
    "key_rotation -> proofs",
    "packages -> files",
    "proofs -> checkout",
    "proofs -> client_key",
    "proofs -> storage_host_key",
    "proofs -> dvc_client",
    "proofs -> packages",
    "proofs -> proof_record",
    "sshd_config -> authorized_keys",
    "sshd_config -> files",
})


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).glob("*.py"))


def _imports(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(module, names) of every import in the file, function-level ones too, relative ones resolved."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            yield module, [alias.name for alias in node.names]


def _is_task_class(value: object) -> bool:
    return inspect.isclass(value) and issubclass(value, Task)


def _reaches_tasks(module: str, names: list[str]) -> bool:
    return module == "provision.tasks" or module.startswith("provision.tasks.") or (
        module == "provision" and "tasks" in names)


def test_the_walk_sees_what_a_module_imports() -> None:
    imported = dict(_imports(PACKAGE / "plays" / "bootstrap.py"))
    assert "StoragePassword" in imported["provision.tasks.password_login"]
    assert _reaches_tasks("provision", ["engine", "tasks"]) and not _reaches_tasks("provision.plays", ["tasks"])


@pytest.mark.parametrize("path", _modules("cli"), ids=lambda path: path.name)
def test_the_cli_imports_no_task_module(path: Path) -> None:
    reached = sorted({module for module, names in _imports(path) if _reaches_tasks(module, names)})
    assert not reached, f"provision/cli/{path.name} imports {', '.join(reached)}: reach tasks through a play"


@pytest.mark.parametrize("path", _modules("plays"), ids=lambda path: path.name)
def test_plays_define_no_task_classes(path: Path) -> None:
    module = importlib.import_module(_module_name(path))
    defined = [name for name, value in vars(module).items()
               if _is_task_class(value) and value.__module__ == module.__name__]
    assert not defined, f"provision/plays/{path.name} defines {', '.join(defined)}: move them into provision/tasks/"


def _helper_imports() -> dict[str, list[str]]:
    """`importer -> imported` for task modules importing another task module's helpers but none of its tasks."""
    found: dict[str, list[str]] = {}
    for path in _modules("tasks"):
        for module, names in _imports(path):
            if not module.startswith("provision.tasks.") or not names:
                continue
            imported = importlib.import_module(module)
            if not any(_is_task_class(getattr(imported, name)) for name in names):
                found.setdefault(f"{path.stem} -> {module.rpartition('.')[2]}", []).extend(names)
    return found


def test_task_modules_import_other_task_modules_for_tasks_not_helpers() -> None:
    found = _helper_imports()
    new = {pair: names for pair, names in found.items() if pair not in KNOWN_HELPER_IMPORTS}
    assert not new, f"helpers imported from task modules (move them into a module of their own): {new}"
    gone = sorted(KNOWN_HELPER_IMPORTS - set(found))
    assert not gone, f"no longer imported for helpers alone, drop from KNOWN_HELPER_IMPORTS: {gone}"
