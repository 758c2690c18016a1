"""Options and helpers that every play command shares."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from provision.audit.findings import Finding
from provision.engine import DEFAULT_LOCK_WAIT, EXIT_FINDINGS, EXIT_OK, Engine, Play, PlayState, RunOptions, exit_status
from provision.inventory import Inventory, load_inventory
from provision.report import ConsoleReporter, QuietReporter, console, play_document, print_findings, print_json
from provision.secrets.inventory import SecretLookupForInventory


@dataclass
class PlayArgs:
    """The options every play command shares."""

    inventory: str | None
    limit: str | None
    check: bool
    diff: bool
    forks: int
    json: bool
    verbose: bool
    accept_new_hostkeys: bool
    timeout: float
    lock_wait: float

    def load(self) -> Inventory:
        return load_inventory(self.inventory)

    def options(self) -> RunOptions:
        return RunOptions(check=self.check, diff=self.diff, forks=self.forks, timeout=self.timeout,
                          accept_new_hostkeys=self.accept_new_hostkeys, lock_wait=self.lock_wait)


@dataclass
class Invocation:
    """What the entry point needs to know after a command ended, however it ended (see provision.cli.main)."""

    verbose: bool = False


def _remember_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """Record -v where the entry point finds it, so an error is shown with its traceback."""
    if isinstance(ctx.obj, Invocation):
        ctx.obj.verbose = value
    return value


def inventory_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-i", "--inventory", envvar="PROVISION_INVENTORY", metavar="FILE",
                        help="Ansible YAML inventory (default: $PROVISION_INVENTORY).")(func)


def play_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """-i, --limit, --check, --diff, -f, --json, -v, --accept-new-hostkeys, --timeout, --lock-wait."""
    options = [
        inventory_option,
        click.option("-l", "--limit", metavar="PATTERN", help="Ansible host pattern, e.g. 'clients:!ws2'."),
        click.option("-C", "--check", is_flag=True, help="Change nothing anywhere; say what would change."),
        click.option("-D", "--diff", is_flag=True, help="Show the changes to text files (secrets masked)."),
        click.option("-f", "--forks", type=click.IntRange(1, 500), default=10, show_default=True,
                     help="Hosts worked on in parallel."),
        click.option("--json", "json_output", is_flag=True, help="Print one JSON document instead of lines."),
        click.option("-v", "--verbose", is_flag=True, callback=_remember_verbose,
                     help="Show every task and tracebacks."),
        click.option("--accept-new-hostkeys", is_flag=True,
                     help="Pin the key of a host seen for the first time (a changed key is still refused)."),
        click.option("--timeout", type=click.FloatRange(1, 86400), default=30.0, show_default=True,
                     help="Seconds allowed to connect and to run each command on a host."),
        click.option("--lock-wait", type=click.FloatRange(0, 86400), default=DEFAULT_LOCK_WAIT, show_default=True,
                     help="Seconds to wait for another provision run that works on the same host."),
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, inventory: str | None, limit: str | None, check: bool, diff: bool, forks: int,
                json_output: bool, verbose: bool, accept_new_hostkeys: bool, timeout: float,
                lock_wait: float, **kwargs: Any) -> Any:
        play_args = PlayArgs(inventory, limit, check, diff, forks, json_output, verbose,
                             accept_new_hostkeys, timeout, lock_wait)
        return func(*args, play_args=play_args, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def run_play(args: PlayArgs, inventory: Inventory, build: Callable[[Engine], Play],
             secrets: SecretLookupForInventory | None = None,
             findings: Callable[[PlayState], Sequence[Finding]] | None = None) -> None:
    """Run a play, print lines and recap (or one JSON document), exit with the status mask.

    `secrets`: the play's own lookup when its tasks also write secrets, so one store serves both.
    `findings`: an audit's findings from the play's results: listed after the recap (or under
    "findings" in the document), and exit bit 8 when there are any.
    """
    reporter = QuietReporter() if args.json else ConsoleReporter(console(), verbose=args.verbose)
    engine = Engine(inventory, args.options(), reporter, secrets=secrets or SecretLookupForInventory(inventory))
    play = build(engine)
    state = engine.run(play)
    found = list(findings(state)) if findings else []
    status = exit_status(state) | (EXIT_FINDINGS if found else EXIT_OK)
    if args.json:
        document = play_document(play.command, state, status)
        if findings:
            document["findings"] = [finding.document() for finding in found]
        print_json(document)
    else:
        reporter.recap(state)
        if findings:
            print_findings(console(), found)
    sys.exit(status)
