"""ansible-core's own answer for inventories: the document `ansible-inventory -i FILE --list [--limit P]` prints.

Run as a script with the venv's Python (ansible-core is a dev dependency): it reads a JSON list of jobs
`{"path": FILE, "limits": [PATTERN or null, ...]}` from stdin and prints a JSON list of results
`{"error": TEXT or null, "lists": [DOCUMENT or {"error": TEXT}, ...], "warnings": [TEXT, ...]}`.
Each inventory is parsed
once (as ansible-inventory's _play_prereqs does) and each limit is applied with ansible-inventory's own
code (InventoryCLI.json_inventory and dump), which is what the CLI runs, without paying ~1 s of start-up
per call. A source that the yaml plugin cannot parse is an error here (ansible-inventory would only warn
and list nothing).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any


def _configure() -> None:
    os.environ.update({
        "ANSIBLE_INVENTORY_ENABLED": "yaml",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "1",
    })


def run(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    _configure()
    from ansible.cli.inventory import InventoryCLI
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.utils.display import Display
    from ansible.vars.manager import VariableManager

    warnings: list[str] = []

    def warning(self: Display, msg: str, *args: Any, **kwargs: Any) -> None:
        warnings.append(str(msg))

    def deprecated(self: Display, msg: str, *args: Any, **kwargs: Any) -> None:
        warnings.append(f"DEPRECATION: {msg}")

    Display.warning = warning  # type: ignore[method-assign]
    Display.deprecated = deprecated  # type: ignore[method-assign]
    cli = InventoryCLI(["ansible-inventory", "--list"])
    cli.parse()  # ansible's CLI arguments are a process-wide singleton: set them once
    with contextlib.suppress(AnsibleError):  # sets up vault secrets, then finds no default inventory
        cli._play_prereqs()
    results = []
    for job in jobs:
        warnings.clear()
        result: dict[str, Any] = {"error": None, "lists": [], "warnings": warnings}
        try:
            cli.loader = DataLoader()
            cli.inventory = InventoryManager(loader=cli.loader, sources=[job["path"]])
            cli.vm = VariableManager(loader=cli.loader, inventory=cli.inventory)
            for limit in job["limits"]:
                cli.inventory.subset(limit)
                cli.inventory.clear_pattern_cache()
                try:
                    document = json.loads(cli.dump(cli.json_inventory(cli._get_group("all"))))
                except AnsibleError as error:  # e.g. a subscript beyond the hosts a pattern matched
                    document = {"error": str(error)}
                result["lists"].append(document)
        except Exception as error:
            result["error"] = f"{type(error).__name__}: {error}"
        result["warnings"] = list(dict.fromkeys(warnings))
        results.append(result)
    return results


if __name__ == "__main__":
    json.dump(run(json.load(sys.stdin)), sys.stdout)
