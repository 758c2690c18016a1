"""The seed job every contender does, described once from what provision itself would do.

`seed_plan(lab)` reads the lab's inventory with provision's own loader and renders every file and
key line with provision's own helpers and templates, so the peers (ansible-core, the plain ssh
script) get the same values and the end-state checker expects the same result. When provision
changes what it writes (a forced command, the remote URL, an sshd option), the peers and the checker
follow from here.
"""

from __future__ import annotations

import hashlib
import json
import random
import shlex
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from provision.dvc_config import merge_config
from provision.inventory import Settings, load_inventory
from provision.known_hosts_file import known_hosts_name
from provision.lab import Lab
from provision.plays.bootstrap import NOLOGIN
from provision.tasks.accounts import HOME_BASE, SERVED_REPOSITORIES, git_shell_commands, served_repositories
from provision.tasks.authorized_keys import GIT, SFTP, key_line
from provision.tasks.checkout import git_ssh_command, git_url
from provision.tasks.client_key import ClientInfo, connecting_user, expand_home, key_marker
from provision.tasks.directories import REPOSITORY_DIRECTORY_MODE, SHARED_DIRECTORY_MODE, setfacl_spec
from provision.tasks.dvc_client import managed_settings
from provision.tasks.dvc_repo import committed_config, server_config_local, site_cache_dir
from provision.tasks.git_repo import INITIAL_BRANCH, SHARED_REPOSITORY
from provision.tasks.packages import GIT_SHELL
from provision.tasks.sshd_config import drop_in_path, render_drop_in
from provision.tasks.storage_host_key import pinned_known_hosts, storage_host_keys

#: The dataset: DATASET_FILES files of DATASET_BYTES in all, in DATASET_DIRS directories, reproducible.
DATASET = "data"
TAG = "v1.0"
DATASET_FILES = 200
DATASET_DIRS = 10
DATASET_BYTES = 20_000_000
DATASET_SEED = 9
#: The retry policy both peers use for `git clone` and `dvc pull`: only a refusal before authentication
#: (sshd's MaxStartups, a reset) is retried, never an authentication or host-key failure.
RETRY_ATTEMPTS = 5
RETRY_DELAY_SECONDS = 2
RETRY_PATTERN = "kex_exchange_identification|Connection closed by|Connection reset|banner exchange|Connection lost"
#: Stands for a client's public key while its key line is rendered, before the key exists.
_KEY_PLACEHOLDER = "@PUBLIC_KEY@"


@dataclass(frozen=True)
class ClientPlan:
    """One client's part of the seed job: where its files go and what they hold."""

    name: str
    port: int
    home: str
    key: str
    workdir: str
    marker: str
    git_url: str
    git_ssh_command: str
    known_hosts: str
    known_hosts_content: str
    config_local: str
    #: Its key lines on storage are `<prefix><type base64><suffix>`, per account.
    sftp_line: tuple[str, str]
    git_line: tuple[str, str]


@dataclass(frozen=True)
class SeedPlan:
    """The storage side of the seed job and every client's part."""

    storage_port: int
    storage_user: str
    git_user: str
    storage_group: str
    nologin: str
    git_shell: str
    home_base: str
    dvc_storage: str
    git_remote: str
    git_remote_parent: str
    server_repo: str
    site_cache_dir: str
    dvc: str
    shared_mode: str
    repository_mode: str
    shared_repository: str
    branch: str
    acl_spec: str
    committed_config: str
    server_config_local: str
    git_shell_commands: dict[str, str]
    served_repositories_path: str
    served_repositories: str
    sshd_drop_in_path: str
    sshd_drop_in: str
    sshd_reload: str
    dataset: str
    tag: str
    retry_attempts: int
    retry_delay: int
    retry_pattern: str
    clients: list[ClientPlan] = field(default_factory=list)

    def write_ansible_vars(self, path: Path) -> None:
        """The plan as one JSON document for `ansible-playbook -e @FILE` (clients keyed by host name)."""
        document = asdict(self)
        document["clients"] = {client["name"]: client for client in document["clients"]}
        path.write_text(json.dumps(document, indent=2) + "\n")

    def write_shell_vars(self, path: Path) -> None:
        """The plan as bash assignments (clients as parallel arrays) for bench/raw_ssh.sh to source."""
        lines = []
        for key, value in asdict(self).items():
            if key == "clients":
                continue
            if key == "git_shell_commands":
                names = list(value)
                lines.append(f"git_shell_command_names=({' '.join(shlex.quote(n) for n in names)})")
                lines.append(f"git_shell_command_texts=({' '.join(shlex.quote(value[n]) for n in names)})")
                continue
            lines.append(f"{key}={shlex.quote(str(value))}")
        for key in ClientPlan.__dataclass_fields__:
            values = [getattr(client, key) for client in self.clients]
            if isinstance(values[0], tuple):
                for index, part in enumerate(("prefix", "suffix")):
                    quoted = " ".join(shlex.quote(value[index]) for value in values)
                    lines.append(f"client_{key}_{part}=({quoted})")
            else:
                lines.append(f"client_{key}=({' '.join(shlex.quote(str(value)) for value in values)})")
        path.write_text("\n".join(lines) + "\n")


def _line_parts(account: str, marker: str, read_only: bool) -> tuple[str, str]:
    prefix, _, suffix = key_line(account, _KEY_PLACEHOLDER, marker, read_only=read_only).partition(_KEY_PLACEHOLDER)
    return prefix, suffix


def _home(lab: Lab, host: str, user: str) -> str:
    for line in lab.host_path(host, "/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return fields[5]
    raise SystemExit(f"lab host {host} has no user {user}")


def _fstype(lab: Lab, host: str, path: str) -> str:
    return lab.exec(host, ["stat", "-f", "-c", "%T", path], check=True).stdout.strip()


def seed_plan(lab: Lab) -> SeedPlan:
    """What the seed job does on this lab, with provision's inventory defaults and file formats."""
    inventory = load_inventory(lab.inventory_path)
    storage = inventory.storage
    settings: Settings = storage.settings
    pinned_keys = storage_host_keys(inventory.known_hosts_path, storage)
    clients = []
    for host in inventory.clients:
        client: Settings = host.settings
        user = connecting_user(host)
        home = _home(lab, host.name, user)
        info = ClientInfo(name=host.name, user=user, group=user, home=home, key=expand_home(client.client_key, home),
                          workdir=expand_home(client.workdir, home), public_key=None)
        marker = key_marker(client.inventory_name, host.name)
        read_only = client.access == "read"
        clients.append(ClientPlan(
            name=host.name, port=lab.port(host.name), home=home, key=info.key, workdir=info.workdir,
            marker=marker, git_url=git_url(client), git_ssh_command=git_ssh_command(info),
            known_hosts=info.known_hosts,
            known_hosts_content=pinned_known_hosts("", known_hosts_name(client.storage_address, client.storage_port),
                                                   pinned_keys),
            config_local=merge_config(None, managed_settings(client, info, None), {}) or "",
            sftp_line=_line_parts(SFTP, marker, read_only), git_line=_line_parts(GIT, marker, read_only)))
    hardlink_lock = _fstype(lab, storage.name, settings.nfs_root).startswith("nfs")
    git_home = f"{HOME_BASE}/{settings.git_user}"
    return SeedPlan(
        storage_port=lab.port(storage.name), storage_user=settings.storage_user, git_user=settings.git_user,
        storage_group=settings.storage_group, nologin=NOLOGIN, git_shell=GIT_SHELL, home_base=HOME_BASE,
        dvc_storage=settings.dvc_storage, git_remote=settings.git_remote,
        git_remote_parent=str(Path(settings.git_remote).parent), server_repo=settings.server_repo,
        site_cache_dir=site_cache_dir(git_home), dvc=f"{settings.dvc_venv}/bin/dvc",
        shared_mode=f"{SHARED_DIRECTORY_MODE:o}", repository_mode=f"{REPOSITORY_DIRECTORY_MODE:o}",
        shared_repository=SHARED_REPOSITORY, branch=INITIAL_BRANCH, acl_spec=setfacl_spec(settings.storage_group),
        committed_config=committed_config(settings, hardlink_lock=hardlink_lock),
        server_config_local=server_config_local(settings, git_home),
        git_shell_commands=git_shell_commands(settings.git_user, GIT_SHELL),
        served_repositories_path=f"{git_home}/{SERVED_REPOSITORIES}",
        served_repositories=served_repositories(None, settings.git_remote, settings.git_user),
        sshd_drop_in_path=drop_in_path(settings.storage_user), sshd_drop_in=render_drop_in(settings, password=False),
        sshd_reload=shlex.join(settings.sshd_reload_command), dataset=DATASET, tag=TAG,
        retry_attempts=RETRY_ATTEMPTS, retry_delay=RETRY_DELAY_SECONDS, retry_pattern=RETRY_PATTERN,
        clients=clients)


def make_dataset(directory: Path) -> dict[str, str]:
    """Write the dataset into `directory` (same bytes every time); returns its manifest, path -> sha256."""
    generator = random.Random(DATASET_SEED)
    size = DATASET_BYTES // DATASET_FILES
    manifest = {}
    for index in range(DATASET_FILES):
        relative = f"part{index % DATASET_DIRS:02d}/sample{index:04d}.bin"
        content = generator.randbytes(size)
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        manifest[relative] = hashlib.sha256(content).hexdigest()
    return manifest


def place_dataset(lab: Lab, plan: SeedPlan, source: Path) -> None:
    """The dataset copied into the server repository and handed to git_user, as a data owner would put it."""
    storage = lab.storage_host
    target = lab.host_path(storage, f"{plan.server_repo}/{plan.dataset}")
    if not target.exists():
        shutil.copytree(source, target)
    lab.exec(storage, ["chown", "-R", f"{plan.git_user}:{plan.storage_group}", f"{plan.server_repo}/{plan.dataset}"],
             check=True)
