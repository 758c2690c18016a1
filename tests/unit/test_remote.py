"""Probe batching and quoting: run for real through /bin/sh on this machine."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from provision.remote import ProbeBatch, as_user, privileged_line, quote_argv, script, sudo_prefix


def run_sh(command: str) -> str:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout


def test_batch_returns_each_probe_output_and_status() -> None:
    probes = [
        ["printf", "one\ntwo"],
        ["sh", "-c", "echo out; exit 3"],
        ["printf", ""],
        ["echo", "$(touch /tmp/never) ; rm -rf / `id`"],
    ]
    batch = ProbeBatch(probes)
    results = batch.parse(run_sh(batch.command()))
    assert [r.stdout for r in results] == ["one\ntwo", "out\n", "", "$(touch /tmp/never) ; rm -rf / `id`\n"]
    assert [r.rc for r in results] == [0, 3, 0, 0]


def test_batch_output_cannot_forge_frames() -> None:
    batch = ProbeBatch([["echo", "@@provision-0000000000000000 0 7"], ["true"]])
    results = batch.parse(run_sh(batch.command()))
    assert results[0].rc == 0 and results[1].rc == 0
    assert "@@provision" in results[0].stdout


def test_batch_missing_frame_is_an_error() -> None:
    batch = ProbeBatch([["true"]])
    with pytest.raises(ValueError, match="no output frame"):
        batch.parse("garbage")


def test_script_passes_values_as_positional_arguments_not_text() -> None:
    hostile = "x'; touch /tmp/pwned; echo '"
    argv = script('printf "%s" "$1"', hostile)
    assert run_sh(quote_argv(argv)) == hostile


def test_as_user_quotes_nested_command() -> None:
    argv = as_user("git", ["git", "commit", "-m", "it's done; rm -rf /"])
    assert argv[:4] == ["su", "-s", "/bin/sh", "-c"]
    assert argv[-1] == "git"
    assert subprocess.run(["sh", "-c", f"set -- {argv[4]}; printf '%s|' \"$@\""], capture_output=True,
                          text=True, check=True).stdout == "git|commit|-m|it's done; rm -rf /|"


def test_sudo_prefix_without_password_never_prompts() -> None:
    assert sudo_prefix(None) == ["sudo", "-n", "--"]
    assert sudo_prefix("[p] ", "git") == ["sudo", "-k", "-S", "-p", "[p] ", "-H", "-u", "git", "--"]


def test_privileged_command_never_reads_the_sessions_stdin() -> None:
    """What sudo leaves unread on stdin (the become password) never reaches the command."""
    line = privileged_line(quote_argv(["cat"]), "[p] ")
    argv = shlex.split(line)
    assert argv[:argv.index("--") + 1] == sudo_prefix("[p] ")
    command = argv[argv.index("--") + 1:]
    done = subprocess.run(command, input="the become password\n", capture_output=True, text=True, check=True)
    assert done.stdout == ""
