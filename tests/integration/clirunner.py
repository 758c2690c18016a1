"""Running the real `provision` command in a child process, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: How a test runs the tool: this checkout's code, in this interpreter.
COMMAND = (sys.executable, "-m", "provision")


def tool_environment(home: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The tool's environment: HOME pointed at a test directory (no stray ~/.ssh state), none of the
    caller's PROVISION_* settings, then `env`."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PROVISION_")}
    child_env.update({"HOME": str(home), "COLUMNS": "200"})
    child_env.update(env or {})
    return child_env


def provision(*args: str, home: Path, env: dict[str, str] | None = None, stdin: str | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`provision ARGS`, run to its end."""
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, input=stdin,
                          env=tool_environment(home, env), timeout=timeout, check=False)


def provision_json(*args: str, home: Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """A play command with --json: its exit status and its one document."""
    done = provision(*args, "--json", home=home, env=env)
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"not one JSON document: {done.stdout!r}\nstderr: {done.stderr}") from error
