"""The Kubeflow Pipelines v2 pipeline of the data steps, written with the kfp SDK (imported lazily).

Each step runs the image's entrypoint with its step chosen by environment variables; the SSH key and
`config.local` come from a Kubernetes Secret mounted read-only by kfp-kubernetes (`use_secret_as_volume`),
and the checkout lives on a PersistentVolumeClaim shared by the steps, so the data a training step wrote
is what "store model" releases.
"""

# No `from __future__ import annotations`: kfp reads the component functions' annotations as types.
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provision.errors import ProvisionError

#: Where the Secret (keys `id_ed25519`, `config.local`) is mounted in every step.
SECRETS_DIR = "/run/secrets/provision"
#: Where the checkout's volume is mounted.
WORK_DIR = "/work"
#: The image's entrypoint (templates/pipeline/entrypoint.sh).
ENTRYPOINT = "/usr/local/bin/provision-data-step"
#: The image's user (templates/pipeline/Dockerfile.j2).
IMAGE_UID = 10001


@dataclass(frozen=True)
class PipelineSettings:
    """What the compiled pipeline needs to know about the site."""

    image: str
    project: str
    secret_name: str
    volume_claim: str


def _kfp() -> tuple[Any, Any, Any]:
    try:
        from kfp import compiler, dsl, kubernetes
    except ImportError:
        raise ProvisionError("`pipeline render` needs the kfp SDK: pip install 'provision[pipeline]' "
                             "(kfp and kfp-kubernetes)") from None
    return compiler, dsl, kubernetes


def build_pipeline(settings: PipelineSettings) -> Any:
    """The pipeline function: store training data, store model, roll back (each a data step)."""
    _, dsl, kubernetes = _kfp()
    workdir = f"{WORK_DIR}/{settings.project}"

    @dsl.container_component
    def release_step(version: str, paths: str, message: str) -> dsl.ContainerSpec:
        return dsl.ContainerSpec(image=settings.image, command=[ENTRYPOINT], args=["release", version, paths, message])

    @dsl.container_component
    def checkout_step(version: str) -> dsl.ContainerSpec:
        return dsl.ContainerSpec(image=settings.image, command=[ENTRYPOINT], args=["checkout", version])

    def data_task(task: Any, name: str) -> Any:
        task.set_display_name(name)
        task.set_env_variable("PROVISION_WORKDIR", workdir)
        task.set_env_variable("PROVISION_SECRETS_DIR", SECRETS_DIR)
        kubernetes.use_secret_as_volume(task, secret_name=settings.secret_name, mount_path=SECRETS_DIR)
        kubernetes.mount_pvc(task, pvc_name=settings.volume_claim, mount_path=WORK_DIR)
        kubernetes.set_security_context(task, run_as_user=IMAGE_UID, run_as_non_root=True)
        task.set_caching_options(False)
        return task

    @dsl.pipeline(name=f"{settings.project}-data", description="Store training data, store the model, roll back.")
    def data_pipeline(data_version: str, data_paths: str = "data", model_version: str = "",
                      model_paths: str = "model_output", rollback_version: str = "") -> None:
        store_data = data_task(release_step(version=data_version, paths=data_paths, message="training data"),
                               "store training data")
        with dsl.If(model_version != ""):
            data_task(release_step(version=model_version, paths=model_paths, message="model"),
                      "store model").after(store_data)
        with dsl.If(rollback_version != ""):
            data_task(checkout_step(version=rollback_version), "roll back").after(store_data)

    return data_pipeline


def compile_pipeline(settings: PipelineSettings, path: Path) -> None:
    """The pipeline compiled to KFP's YAML at `path`."""
    compiler, _, _ = _kfp()
    compiler.Compiler().compile(build_pipeline(settings), package_path=str(path))
