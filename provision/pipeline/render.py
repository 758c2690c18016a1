"""`pipeline render`: the files a team builds and deploys the data pipeline from, in one directory.

Dockerfile and entrypoint come from templates/pipeline/; the image's known hosts hold storage's pinned
public host keys from the inventory's pins; the tool's source is copied beside them so the directory
alone is the build context; the Kubeflow pipeline is compiled with the kfp SDK.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from provision.inventory import Inventory
from provision.known_hosts_file import known_hosts_name
from provision.paths import templates_dir
from provision.pipeline.kubeflow import IMAGE_UID, SECRETS_DIR, PipelineSettings, compile_pipeline
from provision.render import render
from provision.tasks.checkout import git_url
from provision.tasks.storage_host_key import pinned_known_hosts, storage_host_keys

#: The base image of both stages (Debian, as the hosts provision supports).
BASE_IMAGE = "python:3.11-slim-bookworm"
#: What the image needs of this checkout to install the tool.
SOURCE_PARTS = ("provision", "templates", "pyproject.toml", "README.md")


@dataclass(frozen=True)
class RenderedPipeline:
    """The files written."""

    directory: Path
    files: tuple[str, ...]


def _copy_source(target: Path) -> None:
    """The tool's source (package, templates, pyproject.toml) as a build context part, without caches."""
    root = templates_dir().parent
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    for part in SOURCE_PARTS:
        source = root / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.exists():
            shutil.copy2(source, target / part)


def render_pipeline(inventory: Inventory, out: Path, *, image: str, secret_name: str,
                    volume_claim: str) -> RenderedPipeline:
    """Write Dockerfile, entrypoint.sh, ssh_known_hosts, provision-src/ and pipeline.yaml into `out`."""
    storage = inventory.storage
    settings = storage.settings
    keys = storage_host_keys(inventory.known_hosts_path, storage)
    out.mkdir(parents=True, exist_ok=True)
    (out / "Dockerfile").write_text(render(
        "pipeline/Dockerfile.j2", base_image=BASE_IMAGE, dvc_version=settings.dvc_version, uid=IMAGE_UID,
        secrets_dir=SECRETS_DIR, project=settings.project, git_url=git_url(settings)))
    entrypoint = out / "entrypoint.sh"
    shutil.copy2(templates_dir() / "pipeline" / "entrypoint.sh", entrypoint)
    entrypoint.chmod(0o755)
    (out / "ssh_known_hosts").write_text(
        pinned_known_hosts("", known_hosts_name(settings.storage_address, settings.storage_port), keys))
    _copy_source(out / "provision-src")
    compile_pipeline(PipelineSettings(image, settings.project, secret_name, volume_claim), out / "pipeline.yaml")
    return RenderedPipeline(out, ("Dockerfile", "entrypoint.sh", "ssh_known_hosts", "provision-src/",
                                  "pipeline.yaml"))
