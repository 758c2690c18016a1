"""`provision audit`: committed credentials in repositories, unsafe setups on hosts, and the pre-commit hook."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from provision.audit.hook import install_hook
from provision.audit.repo import audit_repository
from provision.audit.rules import BASELINE
from provision.cli.common import PlayArgs, play_options, run_play
from provision.engine import EXIT_FINDINGS, EXIT_OK
from provision.plays.audit import audit_hosts_play, host_findings
from provision.report import console, print_findings, print_json


@click.group()
def audit() -> None:
    """Find committed credentials and unsafe setups; block them at commit time.

    Exit status: 0 nothing found, 8 findings, 1 usage error.

    \b
    Example:
      provision audit repo --history
      provision audit install-hook
      provision audit hosts -i site.yml
    """


@audit.command("repo")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--history", is_flag=True, help="Also every commit reachable from any ref or stash.")
@click.option("--staged", is_flag=True, help="Only the staged content (what the pre-commit hook checks).")
@click.option("--update-baseline", is_flag=True,
              help="Record the findings in .secrets.baseline as accepted (only for secrets already rotated).")
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document.")
def audit_repo(path: Path, history: bool, staged: bool, update_baseline: bool, json_output: bool) -> None:
    """Scan the git work tree at PATH (default: here) for committed credentials.

    DVC configs (`.dvc/config`, subrepos', a tracked `.dvc/config.local`) with passwords or other
    credential keys, credentials in URLs, private keys, `.env` files, and generic secrets found by
    detect-secrets (mark false positives in `.secrets.baseline`). Values are always masked.

    \b
    Example:
      provision audit repo ~/demo --history --json
    """
    if staged and (history or update_baseline):
        raise click.UsageError("--staged goes alone: it checks what is about to be committed")
    collector = audit_repository(path, history=history, staged=staged, update_baseline=update_baseline)
    findings = collector.findings
    status = EXIT_FINDINGS if findings and not update_baseline else EXIT_OK
    if json_output:
        print_json({"command": "audit repo", "findings": [f.document() for f in findings], "exit_status": status})
    else:
        print_findings(console(), findings, blocked=staged)
        if update_baseline:
            console().print(f"recorded in {BASELINE}: the next audit accepts them", markup=False)
    sys.exit(status)


@audit.command("install-hook")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
def audit_install_hook(path: Path) -> None:
    """Install a git pre-commit hook that refuses commits whose staged files hold credentials.

    An existing pre-commit hook is kept (renamed to pre-commit.chained) and runs first.

    \b
    Example:
      provision audit install-hook ~/demo
    """
    click.echo(install_hook(path))


@audit.command("hosts")
@play_options
def audit_hosts(play_args: PlayArgs) -> None:
    """Check storage and clients, read-only and in one round trip per host, against what bootstrap and
    onboard set up: key lines, markers, modes, owners, drop-ins, pins and committed credentials.

    \b
    Example:
      provision audit hosts -i site.yml --json
    """
    inventory = play_args.load()
    hosts = inventory.select(play_args.limit)
    play_args.check = True  # read-only, whatever the flags say
    run_play(play_args, inventory, lambda engine: audit_hosts_play(inventory, hosts), findings=host_findings)
