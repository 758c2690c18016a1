"""The `provision` command line: parse arguments, call a play, print.

Exit statuses: 0 all ok; 1 usage or input error (nothing touched); otherwise a bit mask:
2 a host failed, 4 a host unreachable or refused, 8 audit findings; 130 interrupted.
"""

from __future__ import annotations

import importlib
import json
import signal
import sys
import traceback

import click

from provision import __version__
from provision.cli.common import Invocation, PlayArgs, inventory_option, play_options, run_play
from provision.connection import resolve_target
from provision.engine import EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED
from provision.errors import InputError, ProvisionError
from provision.inventory import Host, Inventory, load_inventory
from provision.known_hosts_file import forget_host
from provision.plays.hostkeys_scan import scan_play
from provision.plays.ping import ping_play
from provision.report import console, print_json
from provision.secrets import REDACTOR

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Commands imported only when named: `provision onboard` does not pay for the audit's detect-secrets,
#: the data commands or kfp (start-up time and memory on every host of a fleet run; bench/RESULTS.md).
LAZY_COMMANDS = {
    "audit": "provision.cli.audit:audit",
    "bootstrap": "provision.cli.bootstrap:bootstrap",
    "data": "provision.cli.data:data",
    "lab": "provision.cli.lab:lab",
    "offboard": "provision.cli.onboard:offboard",
    "onboard": "provision.cli.onboard:onboard",
    "pipeline": "provision.cli.pipeline:pipeline",
    "rotate": "provision.cli.rotate:rotate",
    "secrets": "provision.cli.secrets:secrets",
}


class LazyGroup(click.Group):
    """A group whose commands in LAZY_COMMANDS are imported when used (click's documented pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, _, attribute = LAZY_COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="provision")
def cli() -> None:
    """Provision DVC data registries on NFS storage over SSH, with secrets kept out of git.

    \b
    Example:
      provision -h
      provision ping -i inventories/example.yml --limit storage
    """


@cli.group()
def inventory() -> None:
    """Show the resolved inventory.

    \b
    Example:
      provision inventory list -i site.yml --json
    """


@inventory.command("list")
@inventory_option
@click.option("-l", "--limit", metavar="PATTERN", help="Ansible host pattern.")
@click.option("--json", "json_output", is_flag=True, help="Print what `ansible-inventory --list` prints.")
def inventory_list(inventory: str | None, limit: str | None, json_output: bool) -> None:
    """List hosts, their groups and their resolved vars (ours with defaults).

    \b
    Example:
      provision inventory list -i site.yml --limit clients
    """
    loaded = load_inventory(inventory)
    if json_output:
        print_json(loaded.to_ansible_list(limit))
        return
    out = console()
    for host in loaded.match(limit):
        out.print(f"[bold]{host.name}[/] ({', '.join(g for g in host.groups if g != 'all')})")
        try:
            settings = vars(host.settings)
        except InputError as error:
            out.print(f"  not ready for bootstrap/onboard: {REDACTOR.mask(str(error))}", markup=False)
            continue
        for key, value in sorted(settings.items()):
            out.print(f"  {key} = {REDACTOR.mask(json.dumps(value))}", markup=False)


@inventory.command("graph")
@inventory_option
def inventory_graph(inventory: str | None) -> None:
    """Draw the group tree, as `ansible-inventory --graph` does.

    \b
    Example:
      provision inventory graph -i site.yml
    """
    click.echo(load_inventory(inventory).graph())


@cli.group()
def hostkeys() -> None:
    """Pin SSH host keys in <inventory stem>.known_hosts beside the inventory.

    \b
    Example:
      provision hostkeys scan -i site.yml
    """


@hostkeys.command("scan")
@play_options
def hostkeys_scan(play_args: PlayArgs) -> None:
    """Show each host's key types and SHA256 fingerprints, and pin the new ones.

    A key that differs from the pinned one is refused, never replaced (`hostkeys forget` first).

    \b
    Example:
      provision hostkeys scan -i site.yml --limit storage
    """
    loaded = play_args.load()
    hosts = loaded.select(play_args.limit)
    loaded.check_targets(hosts)
    run_play(play_args, loaded, lambda engine: scan_play(hosts, engine.keys, play_args.timeout))


@hostkeys.command("forget")
@inventory_option
@click.option("-C", "--check", is_flag=True, help="Say what would be forgotten.")
@click.argument("hosts", nargs=-1, required=True)
def hostkeys_forget(inventory: str | None, check: bool, hosts: tuple[str, ...]) -> None:
    """Forget the pinned keys of HOSTS (after a planned key change).

    \b
    Example:
      provision hostkeys forget -i site.yml storage
    """
    loaded = load_inventory(inventory)
    named = _named_hosts(loaded, hosts)
    loaded.check_targets(named)
    for host in named:
        target = resolve_target(host)
        if not forget_host(loaded.known_hosts_path, target.hostname, target.port, check=check):
            click.echo(f"{host.name}: nothing pinned for {target.label}")
        else:
            click.echo(f"{host.name}: {'would forget' if check else 'forgot'} {target.label}")


def _named_hosts(loaded: Inventory, names: tuple[str, ...]) -> list[Host]:
    unknown = [n for n in names if n not in loaded.hosts]
    if unknown:
        raise InputError(f"no such host in the inventory: {', '.join(unknown)}", file=str(loaded.path))
    return [loaded.hosts[n] for n in names]


@cli.command()
@play_options
def ping(play_args: PlayArgs) -> None:
    """Reach every host with pinned keys; report OS, hostname, git and dvc versions.

    \b
    Example:
      provision ping -i site.yml --limit 'clients:!ws2'
    """
    loaded = play_args.load()
    hosts = loaded.select(play_args.limit)
    loaded.check_targets(hosts)
    run_play(play_args, loaded, lambda engine: ping_play(hosts))




def main() -> None:
    """Entry point: maps every error to one line and the exit statuses of the README's "Exit status"."""
    invocation = Invocation()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops a run as Ctrl-C does
    try:
        code = cli.main(prog_name="provision", complete_var="_PROVISION_COMPLETE", standalone_mode=False,
                        obj=invocation)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        error.show()
        sys.exit(EXIT_INPUT)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except ProvisionError as error:
        if invocation.verbose:
            traceback.print_exc()
        click.echo(f"error: {REDACTOR.mask(str(error))}", err=True)
        sys.exit(error.exit_status)
    except Exception as error:  # an unexpected failure is still one line; -v shows where
        if invocation.verbose:
            traceback.print_exc()
        click.echo(f"error: internal: {type(error).__name__}: {REDACTOR.mask(str(error))} (-v for details)", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else 0)
