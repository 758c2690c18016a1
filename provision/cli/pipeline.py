"""`provision pipeline`: render the data pipeline's image and Kubeflow definition."""

from __future__ import annotations

from pathlib import Path

import click

from provision.cli.common import inventory_option
from provision.inventory import load_inventory
from provision.pipeline.kubeflow import SECRETS_DIR
from provision.pipeline.render import render_pipeline


@click.group()
def pipeline() -> None:
    """The daily data pipeline: data steps in containers, on Kubeflow Pipelines.

    \b
    Example:
      provision pipeline render -i site.yml --out build/pipeline
    """


@pipeline.command("render")
@inventory_option
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Directory to write the files into.")
@click.option("--image", default="provision-data:latest", show_default=True,
              help="Image name the pipeline's steps run.")
@click.option("--secret", "secret_name", default=None, metavar="NAME",
              help="Kubernetes Secret with id_ed25519 and config.local [default: provision-<project>].")
@click.option("--volume-claim", default=None, metavar="NAME",
              help="PersistentVolumeClaim holding the checkout [default: <project>-work].")
def render(inventory: str | None, out: Path, image: str, secret_name: str | None, volume_claim: str | None) -> None:
    """Write Dockerfile, entrypoint.sh, ssh_known_hosts, provision-src/ and pipeline.yaml into DIR.

    The image pins storage's host key from the inventory's pins; no key, password or config.local
    enters it. At run time the Secret is mounted read-only at /run/secrets/provision: its
    config.local must name keyfile = /run/secrets/provision/id_ed25519.

    \b
    Example:
      provision pipeline render -i site.yml --out build/pipeline --image registry.example.com/data:1
      docker build -t registry.example.com/data:1 build/pipeline
    """
    loaded = load_inventory(inventory)
    project = loaded.storage.settings.project
    rendered = render_pipeline(loaded, out, image=image, secret_name=secret_name or f"provision-{project}",
                               volume_claim=volume_claim or f"{project}-work")
    for name in rendered.files:
        click.echo(f"wrote {rendered.directory / name}")
    click.echo(f"run-time secrets: mount id_ed25519 and config.local read-only (0400) at {SECRETS_DIR}")
