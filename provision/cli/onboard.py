"""`provision onboard` and `provision offboard`: client machines in and out of the data registry."""

from __future__ import annotations

import click

from provision.cli.common import PlayArgs, play_options, run_play
from provision.plays.onboard import offboard_play, onboard_play, select_clients


@click.command()
@play_options
@click.option("--pull", is_flag=True, help="Also run `dvc pull` in each checkout and report files and bytes.")
@click.option("--verify", is_flag=True,
              help="Prove access (and check the data with --pull) again even where a recorded proof still holds.")
@click.argument("hosts", nargs=-1)
def onboard(play_args: PlayArgs, pull: bool, verify: bool, hosts: tuple[str, ...]) -> None:
    """Onboard client HOSTS (default: every non-storage host) onto the storage server.

    Each client gets git and dvc, its own ed25519 key pair (made on the client), key lines on storage
    for DVC (SFTP only) and git (git-shell only), storage's host key from the controller's pins, a
    checkout of git_remote in workdir and a 0600 .dvc/config.local; access is proven (the clone, `dvc
    pull` or `dvc status -c`) before the client counts as done. A re-run skips the proof while the record
    of the last one still holds (--verify proves again).

    \b
    Example:
      provision onboard -i site.yml --pull
      provision onboard -i site.yml ws3 --diff
    """
    inventory = play_args.load()
    clients = select_clients(inventory, hosts, play_args.limit)
    play = onboard_play(inventory, clients, pins_path=inventory.known_hosts_path, pull=pull, verify=verify)
    run_play(play_args, inventory, lambda engine: play)


@click.command()
@play_options
@click.option("--purge", is_flag=True, help="Also delete the client's key pair.")
@click.argument("hosts", nargs=-1, required=True)
def offboard(play_args: PlayArgs, purge: bool, hosts: tuple[str, ...]) -> None:
    """Revoke client HOSTS: their key lines leave storage, their credentials leave config.local.

    Storage's refusal of each client's key is proven from the client. A client that is down is still
    revoked on storage.

    \b
    Example:
      provision offboard -i site.yml ws2 --purge
    """
    inventory = play_args.load()
    clients = select_clients(inventory, hosts, play_args.limit)
    run_play(play_args, inventory, lambda engine: offboard_play(inventory, clients, purge=purge))
