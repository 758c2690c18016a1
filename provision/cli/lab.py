"""`provision lab ...`: a local lab of real OpenSSH hosts for demos and tests (logic in provision.lab)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from provision.lab import Lab

DEFAULT_HOSTS = "storage,ws1,ws2"


def _dir_option(func: Any) -> Any:
    return click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
                        default="lab", show_default=True, help="The lab's directory.")(func)


def _print_status(lab: Lab) -> None:
    for status in lab.status():
        state = f"running, pid {status.pid}" if status.running else "stopped"
        click.echo(f"{status.name:<12} {status.group:<8} 127.0.0.1:{status.port:<6} {state}")


@click.group()
def lab() -> None:
    """A local lab of real OpenSSH hosts on 127.0.0.1 (needs root and Linux).

    Each host is an sshd with its own hostname, /etc, /home, /root, /opt, /usr/local, /run, /tmp,
    /var/tmp and /mnt/nfs; the lab writes DIR/inventory.yml and its host-key pins.

    \b
    Example:
      provision lab up --hosts storage,ws1,ws2 --shared-nfs
      provision -i lab/inventory.yml ping
      provision lab down
    """


@lab.command()
@click.option("--hosts", help=f"Comma-separated host names; the first is the storage host "
                              f"[default: {DEFAULT_HOSTS}, or the existing lab's].")
@click.option("--shared-nfs", is_flag=True, default=None,
              help="Clients' /mnt/nfs is the storage host's export (stands in for an NFS mount).")
@click.option("--project", help="The inventory's `project` [default: demo, or the existing lab's].")
@click.option("--share-dvc/--no-share-dvc", default=None,
              help="Hosts see this venv's dvc at /opt/provision/dvc [default: when possible].")
@_dir_option
def up(hosts: str | None, shared_nfs: bool | None, project: str | None, share_dvc: bool | None,
       directory: Path) -> None:
    """Create and start the lab, or start the stopped hosts of an existing one.

    \b
    Example:
      provision lab up --hosts storage,ws1,ws2 --dir lab
    """
    the_lab = Lab(directory)
    if the_lab.exists:
        facts = the_lab.facts
        host_names = hosts.split(",") if hosts is not None else the_lab.hosts
        shared_nfs = facts["shared_nfs"] if shared_nfs is None else shared_nfs
        project = facts["project"] if project is None else project
    else:
        host_names = (hosts or DEFAULT_HOSTS).split(",")
    the_lab.up([name.strip() for name in host_names], shared_nfs=bool(shared_nfs),
               project=project or "demo", share_dvc=share_dvc)
    for warning in the_lab.warnings:
        click.echo(f"warning: {warning}", err=True)
    if not the_lab.started:
        click.echo(f"the lab in {the_lab.dir} is already up")
    _print_status(the_lab)
    click.echo(f"inventory: {the_lab.inventory_path} (pins: {the_lab.known_hosts_path})")
    click.echo(f"admin: {the_lab.admin_user}, key {the_lab.admin_key}, "
               f"sudo password in {the_lab.admin_password_file}")


@lab.command()
@click.option("--purge", is_flag=True, help="Also remove the lab directory.")
@_dir_option
def down(purge: bool, directory: Path) -> None:
    """Stop every host of the lab (only the lab's processes); keep its files unless --purge.

    \b
    Example:
      provision lab down --purge
    """
    the_lab = Lab(directory)
    the_lab.down(purge=purge)
    click.echo(f"the lab in {the_lab.dir} is down" + (" and removed" if purge else ""))


@lab.command()
@click.argument("host")
@_dir_option
def stop(host: str, directory: Path) -> None:
    """Stop HOST's sshd (fault injection); it stays in the inventory.

    \b
    Example:
      provision lab stop ws2
    """
    Lab(directory).stop(host)
    click.echo(f"{host} stopped")


@lab.command()
@click.argument("host")
@_dir_option
def start(host: str, directory: Path) -> None:
    """Start HOST again, with the same port, keys and files.

    \b
    Example:
      provision lab start ws2
    """
    the_lab = Lab(directory)
    the_lab.start(host)
    click.echo(f"{host} running on 127.0.0.1:{the_lab.port(host)}, pid {the_lab.pid(host)}")


@lab.command()
@click.argument("host")
@_dir_option
def rekey(host: str, directory: Path) -> None:
    """Give HOST new host keys; the pins keep the old ones, so the tool must refuse it.

    \b
    Example:
      provision lab rekey storage
    """
    Lab(directory).rekey(host)
    click.echo(f"{host} has new host keys; the pins in the inventory's known_hosts still hold the old ones")


@lab.command()
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document.")
@_dir_option
def status(json_output: bool, directory: Path) -> None:
    """Show the lab's hosts, ports, pids and whether each runs.

    \b
    Example:
      provision lab status --json
    """
    the_lab = Lab(directory)
    if json_output:
        document: dict[str, Any] = {"dir": str(the_lab.dir), "inventory": str(the_lab.inventory_path),
                                    "hosts": [asdict(status) for status in the_lab.status()]}
        click.echo(json.dumps(document, indent=2))
        return
    _print_status(the_lab)


@lab.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@_dir_option
def exec_command(host: str, argv: tuple[str, ...], directory: Path) -> None:
    """Run a command as root inside HOST (its /etc, /home, /mnt/nfs ...), without SSH.

    \b
    Example:
      provision lab exec storage -- ls -l /mnt/nfs
    """
    done = Lab(directory).exec(host, list(argv))
    click.echo(done.stdout, nl=False)
    click.echo(done.stderr, nl=False, err=True)
    raise SystemExit(done.returncode)
