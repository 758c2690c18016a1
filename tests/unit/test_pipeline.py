"""`pipeline render`: a Dockerfile without key material, the entrypoint, pins, and a compiled kfp pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from provision.inventory import load_inventory
from provision.pipeline.kubeflow import SECRETS_DIR
from provision.pipeline.render import render_pipeline
from tests.unit.helpers import write_inventory

STORAGE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC8UoQD7CQXPa6WZQKq7xJn03aThFlp/MY/unOaKFawL"
#: Words that would mean a credential travels into an image layer (a key file, its text, config.local).
KEY_MATERIAL = ("id_ed25519", "id_rsa", "id_ecdsa", "config.local", "password", "-----begin", ".pem", ".key",
                "keyfile")


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    inventory = write_inventory(tmp_path, {"hosts": {"ws1": {"ansible_host": "10.0.0.7"}}})
    (tmp_path / "site.known_hosts").write_text(f"10.0.0.5 {STORAGE_KEY}\n")
    out = tmp_path / "out"
    render_pipeline(load_inventory(str(inventory)), out, image="registry.example/data:1",
                    secret_name="provision-demo", volume_claim="demo-work")
    return out


def test_dockerfile_is_multi_stage_non_root_and_carries_no_key_material(rendered: Path) -> None:
    parser = DockerfileParser(path=str(rendered / "Dockerfile"))
    instructions = parser.structure
    assert sum(1 for i in instructions if i["instruction"] == "FROM") == 2
    for instruction in instructions:
        if instruction["instruction"] in ("COPY", "ADD", "ARG", "ENV"):
            value = instruction["value"].lower()
            assert not any(word in value for word in KEY_MATERIAL), instruction["content"]
    assert not any(i["instruction"] == "ADD" for i in instructions)
    users = [i["value"] for i in instructions if i["instruction"] == "USER"]
    assert users == ["provision"]
    assert any(i["instruction"] == "RUN" and "--mount=type=secret" in i["value"] for i in instructions)
    assert parser.baseimage.startswith("python:")


def test_image_pins_storage_host_key_from_the_inventory_pins(rendered: Path) -> None:
    assert (rendered / "ssh_known_hosts").read_text() == f"10.0.0.5 {STORAGE_KEY}\n"
    copied = [i["value"] for i in DockerfileParser(path=str(rendered / "Dockerfile")).structure
              if i["instruction"] == "COPY"]
    assert "--chmod=0644 ssh_known_hosts /etc/ssh/ssh_known_hosts" in copied
    assert (rendered / "provision-src" / "provision" / "data" / "release.py").is_file()
    assert not list((rendered / "provision-src").rglob("__pycache__"))


def test_pipeline_compiles_with_kfp_and_mounts_the_secret(rendered: Path) -> None:
    spec, platform = yaml.safe_load_all((rendered / "pipeline.yaml").read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {"registry.example/data:1"}
    kubernetes = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(kubernetes) == set(executors)
    for config in kubernetes.values():
        assert config["secretAsVolume"] == [{"mountPath": SECRETS_DIR, "optional": False,
                                             "secretName": "provision-demo",
                                             "secretNameParameter": {"runtimeValue": {"constant": "provision-demo"}}}]
        assert config["pvcMount"][0]["mountPath"] == "/work"
    dags = [spec["root"], *(c for c in spec["components"].values() if "dag" in c)]
    names = {task["taskInfo"]["name"] for dag in dags for task in dag["dag"]["tasks"].values()}
    assert {"store training data", "store model", "roll back"} <= names

