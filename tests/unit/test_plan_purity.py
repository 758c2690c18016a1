"""Every task's plan() is a pure function of its facts: planned twice on the same facts it gives the same
result, and while planning it never reaches the host (no session, no login to storage, no host-key scan):
what the controller itself probes (a key scan, a login) comes as a ControllerFact, answered here from samples.

Tasks are found by walking provision.tasks, so a new task fails here until TASKS gives it representative
arguments; probes answer from SAMPLES (output that the fact itself parses), so a new fact fails here until
it has a sample output.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import provision.tasks
from provision.connection import HostKeyOptions
from provision.dvc_config import merge_config
from provision.engine import Change, PlayState, Task
from provision.errors import ProvisionError
from provision.facts import (
    ControllerFact,
    Fact,
    FileFact,
    FileState,
    GroupFact,
    LoginMethodsFact,
    PasswordLoginFact,
    PasswordLoginOutcome,
    UserGroupsFact,
)
from provision.inventory import Host, Inventory, Settings, load_inventory
from provision.known_hosts_file import pin_keys
from provision.remote import BatchOutput
from provision.secrets.inventory import SecretLookupForInventory
from provision.tasks.accounts import (
    AccountFact,
    EnsureGitShellCommands,
    EnsureGroup,
    EnsureServedRepository,
    EnsureServiceAccount,
)
from provision.tasks.audit import (
    AuditClient,
    AuditKeyLines,
    AuditStorage,
    DropInsFact,
    HomeFileFact,
    SiteCacheFact,
    SshdValidFact,
    WritableFact,
)
from provision.tasks.authorized_keys import GIT, SFTP, AuthorizedKeysFact, AuthorizeKeys, key_line
from provision.tasks.checkout import Checkout, CheckoutFact, CheckoutState, git_ssh_command, git_url
from provision.tasks.client_key import (
    CLIENT_EXPORT,
    ClientAccount,
    ClientInfo,
    ClientKeyPair,
    KeyStateFact,
    RemoveKeyPair,
    key_marker,
)
from provision.tasks.directories import AclFact, EnsureDirectory, FilesystemTypeFact, RequireExport
from provision.tasks.dvc_client import (
    DvcClientConfig,
    NewPasswordInConfig,
    PrivateSiteCache,
    RemoveDvcCredentials,
    SharedCacheGroup,
    StorageGroupId,
    managed_settings,
)
from provision.tasks.dvc_repo import DatasetFact, EnsureDataset, EnsureServerRepo, EnsureSiteCache
from provision.tasks.files import EnsureFile
from provision.tasks.git_repo import BareRepoFact, EnsureBareRepo, WorkTreeFact
from provision.tasks.host_info import ReportHostInfo, SystemFact
from provision.tasks.inventory_host_keys import OfferedHostKeysFact, PinHostKeys
from provision.tasks.key_rotation import (
    KeyRotation,
    ProveNewKey,
    RetireOldKey,
    RotatedLines,
    RotationKeyLines,
    RotationKeysFact,
    RotationSummary,
    StartKeyRotation,
    SwitchToNewKey,
)
from provision.tasks.packages import DvcBuild, DvcFact, EnsureDvc, EnsureGit, FindDvc, GitFact
from provision.tasks.password_login import (
    PASSWORD_KEY,
    PasswordHashFact,
    RotateStoragePassword,
    SamePassword,
    StoragePassword,
)
from provision.tasks.proof_record import ProofRecordFact
from provision.tasks.proofs import ClientProof, ProveAccess, ProveDvcPassword, ProveRevoked, PullData
from provision.tasks.sshd_config import (
    ReadableEntriesFact,
    RequireSftpChroot,
    SftpChrootEntries,
    SshdStorageUser,
    drop_in_path,
    render_drop_in,
)
from provision.tasks.storage_host_key import PinStorageHostKey
from tests.unit.helpers import FakeContext, write_inventory

SHARED_CACHE = "/mnt/nfs/cache"
DVC = "/opt/provision/dvc/bin/dvc"
HOME = "/home/alice"
WORKDIR = f"{HOME}/demo"


def _public_key() -> str:
    return Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


OLD_KEY, NEW_KEY, STORAGE_KEY = _public_key(), _public_key(), _public_key()


class HostTouched(Exception):
    """Something that reaches the host was used while planning."""


class Forbidden:
    """Stands in for what reaches a host (the session, a login to storage): any use is recorded, then refused."""

    def __init__(self, what: str, uses: list[str]) -> None:
        self._what = what
        self._uses = uses

    def __getattr__(self, name: str) -> Any:
        self._uses.append(f"{self._what}.{name}")
        raise HostTouched(f"{self._what}.{name} used while planning")


def refused(what: str, uses: list[str]) -> Callable[..., Any]:
    """A function that reaches a host, standing in: a call is recorded, then refused."""

    def call(*args: Any, **kwargs: Any) -> Any:
        uses.append(what)
        raise HostTouched(f"{what} called while planning")

    return call


@dataclass
class World:
    """One storage host and one client, with the objects tasks are built from."""

    inventory: Inventory
    storage: Host
    client: Host
    info: ClientInfo
    uses: list[str]

    @property
    def settings(self) -> Settings:
        return self.storage.settings

    @property
    def client_settings(self) -> Settings:
        return self.client.settings

    @property
    def marker(self) -> str:
        return key_marker(self.settings.inventory_name, self.client.name)

    @property
    def rotation(self) -> KeyRotation:
        return KeyRotation(self.info, OLD_KEY, NEW_KEY, self.marker)

    def login(self) -> Any:
        return Forbidden("storage login", self.uses)

    def proof(self) -> ClientProof:
        return ClientProof(self.info, self.client_settings, DVC, DvcBuild("3.67.1", guarded=True), [STORAGE_KEY],
                           verify=False)


class _Store:
    backend_name = "test store"

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, name: str) -> str | None:
        return self.values.get(name)


class _Secrets(SecretLookupForInventory):
    """The inventory's lookup order over a dict instead of the keyring or vault."""

    def __init__(self, inventory: Inventory, values: dict[str, str]) -> None:
        super().__init__(inventory)
        self._dict_store = _Store(values)

    def store(self) -> Any:
        return self._dict_store


def _secrets(world: World) -> _Secrets:
    return _Secrets(world.inventory, {f"{world.inventory.name}/all/{PASSWORD_KEY}": "stored-password-1"})


#: Each task class with representative arguments, and the host it plans for ("storage" or "client").
TASKS: dict[type[Task], tuple[str, Callable[[World], Task]]] = {
    EnsureGroup: ("storage", lambda w: EnsureGroup(w.settings.storage_group, w.settings.storage_gid)),
    EnsureServiceAccount: ("storage", lambda w: EnsureServiceAccount(w.settings.storage_user, w.settings.storage_group,
                                                                     "/usr/sbin/nologin", "provision DVC")),
    EnsureServedRepository: ("storage", lambda w: EnsureServedRepository(w.settings.git_user, w.settings.git_remote)),
    EnsureGitShellCommands: ("storage", lambda w: EnsureGitShellCommands(w.settings.git_user, "/usr/bin/git-shell")),
    AuditKeyLines: ("storage", lambda w: AuditKeyLines(w.settings.storage_user, SFTP, w.inventory)),
    AuditStorage: ("storage", lambda w: AuditStorage(w.storage, w.inventory)),
    AuditClient: ("client", lambda w: AuditClient(w.client, w.storage, w.inventory.known_hosts_path)),
    AuthorizeKeys: ("storage", lambda w: AuthorizeKeys(w.settings.storage_user,
                                                       {w.marker: [key_line(SFTP, NEW_KEY, w.marker)]},
                                                       purpose="onboard")),
    Checkout: ("client", lambda w: Checkout(w.info, w.client_settings)),
    ClientKeyPair: ("client", lambda w: ClientKeyPair(w.client)),
    ClientAccount: ("client", lambda w: ClientAccount(w.client)),
    RemoveKeyPair: ("client", lambda w: RemoveKeyPair(w.info)),
    PinStorageHostKey: ("client", lambda w: PinStorageHostKey(
        w.info, w.settings.storage_address, w.settings.storage_port, w.inventory.known_hosts_path, w.storage)),
    RequireExport: ("storage", lambda w: RequireExport(w.settings.nfs_root)),
    EnsureDirectory: ("storage", lambda w: EnsureDirectory(w.settings.dvc_storage, w.settings.storage_user,
                                                           w.settings.storage_group, 0o2775, group_acl=True)),
    DvcClientConfig: ("client", lambda w: DvcClientConfig(w.info, w.client_settings, SHARED_CACHE)),
    RemoveDvcCredentials: ("client", lambda w: RemoveDvcCredentials(w.info, w.client_settings.dvc_remote)),
    NewPasswordInConfig: ("client", lambda w: NewPasswordInConfig(w.info, w.client_settings, SHARED_CACHE,
                                                                  rotating=True)),
    StorageGroupId: ("storage", lambda w: StorageGroupId(w.settings.storage_group)),
    SharedCacheGroup: ("client", lambda w: SharedCacheGroup(w.info, w.settings.storage_group, 1500, None,
                                                            SHARED_CACHE)),
    PrivateSiteCache: ("client", lambda w: PrivateSiteCache(w.info, w.client_settings)),
    EnsureSiteCache: ("storage", lambda w: EnsureSiteCache(w.settings)),
    EnsureServerRepo: ("storage", lambda w: EnsureServerRepo(w.settings)),
    EnsureDataset: ("storage", lambda w: EnsureDataset(w.settings, "data", "v1")),
    EnsureFile: ("storage", lambda w: EnsureFile("/etc/provision-example", "text\n", "root", "root", 0o644)),
    EnsureBareRepo: ("storage", lambda w: EnsureBareRepo(w.settings.git_remote, w.settings.git_user,
                                                         w.settings.storage_group)),
    ReportHostInfo: ("client", lambda w: ReportHostInfo(w.client_settings.dvc_venv)),
    PinHostKeys: ("client", lambda w: PinHostKeys(HostKeyOptions(w.inventory.known_hosts_path, accept_new=False,
                                                              check=False), 5.0)),
    StartKeyRotation: ("client", lambda w: StartKeyRotation(w.client)),
    RotationKeyLines: ("storage", lambda w: RotationKeyLines(
        w.settings.storage_user, [RotatedLines(w.marker, OLD_KEY, key_line(SFTP, NEW_KEY, w.marker))],
        purpose="rotate", revoke_old=False)),
    ProveNewKey: ("client", lambda w: ProveNewKey(w.rotation, w.client_settings, w.storage.name)),
    SwitchToNewKey: ("client", lambda w: SwitchToNewKey(w.rotation, w.client_settings, None, DVC)),
    RetireOldKey: ("client", lambda w: RetireOldKey(w.rotation, w.client_settings, None)),
    RotationSummary: ("storage", lambda w: RotationSummary("key rotation", ["ws1"], [], "provision rotate keys")),
    EnsureGit: ("storage", lambda w: EnsureGit(git_shell=True)),
    EnsureDvc: ("client", lambda w: EnsureDvc(w.client_settings.dvc_version, w.client_settings.dvc_venv)),
    FindDvc: ("client", lambda w: FindDvc(w.client_settings.dvc_version, w.client_settings.dvc_venv)),
    StoragePassword: ("storage", lambda w: StoragePassword(w.storage, _secrets(w), w.login())),
    RotateStoragePassword: ("storage", lambda w: RotateStoragePassword(w.storage, _secrets(w), w.login())),
    SamePassword: ("client", lambda w: SamePassword(w.client, w.storage, _secrets(w))),
    ProveAccess: ("client", lambda w: ProveAccess(w.proof(), dvc_by_pull=False)),
    ProveDvcPassword: ("client", lambda w: ProveDvcPassword(w.info, w.client_settings, DVC)),
    PullData: ("client", lambda w: PullData(w.proof())),
    ProveRevoked: ("client", lambda w: ProveRevoked(w.info, w.client_settings,
                                                 [w.settings.storage_user, w.settings.git_user])),
    RequireSftpChroot: ("storage", lambda w: RequireSftpChroot(w.settings)),
    SftpChrootEntries: ("storage", lambda w: SftpChrootEntries(w.settings, [w.settings.server_repo])),
    SshdStorageUser: ("storage", lambda w: SshdStorageUser(w.settings, True, w.login())),
}

def _converged_switch(world: World) -> dict[Hashable, Any]:
    """config.local and core.sshCommand naming the new key already: only the proof is left."""
    info = world.rotation.at(world.rotation.new_key)
    config = merge_config(None, managed_settings(world.client_settings, info, None), {})
    return {FileFact(f"{WORKDIR}/.dvc/config.local", privileged=False).key:
            FileState(True, info.user, info.group, 0o600, "regular file", config),
            CheckoutFact(WORKDIR).key: CheckoutState("checkout", git_url(world.client_settings), git_ssh_command(info))}


def _converged_drop_in(world: World) -> dict[Hashable, Any]:
    """The drop-in as bootstrap writes it."""
    settings = world.settings
    return {FileFact(drop_in_path(settings.storage_user)).key:
            FileState(True, "root", "root", 0o644, "regular file", render_drop_in(settings, password=True))}


#: Facts of a host where the task's work is done already, for tasks whose plan takes another path there.
CONVERGED: dict[type[Task], Callable[[World], dict[Hashable, Any]]] = {
    SwitchToNewKey: _converged_switch,
    SshdStorageUser: _converged_drop_in,
}

#: Directories the sample hosts have (the export and the path above it, the shared cache, the checkout's .dvc);
#: every other path is absent.
DIRECTORIES = {"/", "/mnt", "/mnt/nfs", SHARED_CACHE, f"{WORKDIR}/.dvc"}


def _ok(stdout: str) -> BatchOutput:
    return BatchOutput(0, stdout)


def _authorized_keys(world: World, fact: AuthorizedKeysFact) -> BatchOutput:
    """The client's line with its old key, in the account's root-owned authorized_keys."""
    kind = SFTP if fact.account == world.settings.storage_user else GIT
    content = f"{key_line(kind, OLD_KEY, world.marker)}\n".encode()
    return _ok(f"/home/{fact.account}\n{hashlib.sha256(content).hexdigest()}\n{base64.b64encode(content).decode()}")


def _key_state(world: World, fact: KeyStateFact) -> BatchOutput:
    """A key pair made earlier, in a ~/.ssh that lost its 0700."""
    return _ok(f"home {world.info.home}\ngroup {world.info.group}\nkey {world.info.key}\n"
               f"ssh_dir {world.info.user} {world.info.group} 755 directory\n"
               f"private {world.info.user} {world.info.group} 600 regular file\n"
               f"public {world.info.user} {world.info.group} 644 regular file\npublic_text {OLD_KEY}\n")


#: A probe's output on the sample hosts: storage with its group and nothing else yet, a client onboarded earlier
#: with provision's dvc (but not its guard).
SAMPLES: dict[type[Fact], Callable[[World, Any], BatchOutput]] = {
    FileFact: lambda w, f: _ok("root root 755 directory\n" if f.path in DIRECTORIES else "absent\n"),
    GroupFact: lambda w, f: _ok(f"{f.group}:x:1500:\n") if f.group == w.settings.storage_group else BatchOutput(2, ""),
    UserGroupsFact: lambda w, f: _ok(f"{w.info.group}\n"),
    PasswordHashFact: lambda w, f: _ok("set\n"),
    AccountFact: lambda w, f: _ok("absent\n"),
    AuthorizedKeysFact: _authorized_keys,
    CheckoutFact: lambda w, f: _ok(f"checkout\n{git_url(w.client_settings)}\n\n0\n"),
    KeyStateFact: _key_state,
    AclFact: lambda w, f: _ok("acl\n"),
    FilesystemTypeFact: lambda w, f: _ok("nfs\n"),
    BareRepoFact: lambda w, f: _ok("dir absent\n"),
    WorkTreeFact: lambda w, f: _ok("fstype nfs\ndir absent\n"),
    DatasetFact: lambda w, f: _ok("repo present\ndata present\n"),
    DvcFact: lambda w, f: _ok(f"venv-dvc yes\nvenv 3.67.1\nvenv-python yes\nlink {f.venv}/bin/dvc\npython 3.11.2\n"
                              f"purelib {f.venv}/lib/python3.11/site-packages\ndvc-ssh 4.3.0\n"),
    GitFact: lambda w, f: _ok("git 2.39.5\ngit-shell yes\n"),
    SystemFact: lambda w, f: _ok("os Debian GNU/Linux 12 (bookworm)\nhostname ws1\n"),
    HomeFileFact: lambda w, f: _ok(f"{f.path.replace('~', w.info.home)}\nabsent\n"),
    SiteCacheFact: lambda w, f: _ok("/var/tmp/dvc\nroot root 1777 directory\n"),
    WritableFact: lambda w, f: _ok(""),
    DropInsFact: lambda w, f: _ok(""),
    SshdValidFact: lambda w, f: _ok(""),
    RotationKeysFact: lambda w, f: _ok(f"old {OLD_KEY}\nnew absent\nnew.pub absent\n"),
    ProofRecordFact: lambda w, f: _ok("\nabsent\n"),
    ReadableEntriesFact: lambda w, f: _ok(""),
}


#: What the controller's own probes (a key scan, a login) find on a sample host.
CONTROLLER_SAMPLES: dict[type[ControllerFact], Callable[[World], Any]] = {
    LoginMethodsFact: lambda w: ("publickey", "password"),
    PasswordLoginFact: lambda w: PasswordLoginOutcome(offered=True, accepted=True),
    OfferedHostKeysFact: lambda w: (paramiko.Ed25519Key(data=base64.b64decode(STORAGE_KEY.split()[1])),),
}


class ProbedContext(FakeContext):
    """A host whose probes answer from SAMPLES, parsed by each fact; its session refuses every use."""

    def __init__(self, world: World, host: Host, facts: dict[Hashable, Any], *, check: bool) -> None:
        state = PlayState()
        state.report(world.client.name).exports[CLIENT_EXPORT] = world.info
        super().__init__(host, dict(facts), check=check, state=state, session=Forbidden("session", world.uses))
        self.world = world

    def fact(self, fact: Fact) -> Any:
        if isinstance(fact, ControllerFact):
            answer = CONTROLLER_SAMPLES.get(type(fact))
            assert answer is not None, f"no sample value for {type(fact).__name__}: add one to CONTROLLER_SAMPLES"
            return answer(self.world)
        if fact.key not in self._facts:
            sample = SAMPLES.get(type(fact))
            assert sample is not None, f"no sample output for {type(fact).__name__}: add one to SAMPLES"
            self._facts[fact.key] = fact.parse(sample(self.world, fact))
        return self._facts[fact.key]


def task_classes() -> list[type[Task]]:
    """Every concrete Task subclass defined in a module of provision.tasks."""
    found = []
    for module_info in pkgutil.iter_modules(provision.tasks.__path__):
        module = importlib.import_module(f"{provision.tasks.__name__}.{module_info.name}")
        found += [cls for _, cls in inspect.getmembers(module, inspect.isclass)
                  if issubclass(cls, Task) and cls.__module__ == module.__name__ and not inspect.isabstract(cls)]
    return sorted(found, key=lambda cls: (cls.__module__, cls.__name__))


def _command(command: Any) -> tuple[Any, ...]:
    return (tuple(command.argv), command.what, command.privileged, tuple(fact.key for fact in command.stale))


def described(planned: Change | Sequence[Change] | None) -> Hashable:
    """What a plan says it would do, without its callables."""
    if planned is None:
        return None
    if isinstance(planned, Change):
        return (planned.summary, planned.diff, planned.apply is not None, tuple(map(_command, planned.commands)))
    return tuple(described(change) for change in planned)


def planned(task: Task, ctx: ProbedContext) -> tuple[Any, ...]:
    """The plan's change (or error), with the notes and exports it left."""
    try:
        outcome: Any = described(task.plan(ctx))  # type: ignore[arg-type]
    except ProvisionError as error:
        outcome = (type(error).__name__, str(error))
    return outcome, tuple(ctx.notes), dict(ctx.state.report(ctx.host.name).exports)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp_path = tmp_path_factory.mktemp("plan-purity")
    inventory = load_inventory(write_inventory(tmp_path, {"hosts": {"ws1": {"ansible_host": "127.0.0.1"}}},
                                               storage={"ansible_host": "127.0.0.1"}, storage_gid=1500))
    storage, client = inventory.storage, inventory.hosts["ws1"]
    pin_keys(inventory.known_hosts_path, "127.0.0.1", storage.settings.storage_port,
             [paramiko.Ed25519Key(data=base64.b64decode(STORAGE_KEY.split()[1]))])
    info = ClientInfo(client.name, "alice", "alice", HOME, f"{HOME}/.ssh/id_ed25519_demo", WORKDIR, OLD_KEY, True)
    return World(inventory, storage, client, info, [])


def test_every_task_has_representative_arguments() -> None:
    missing = [cls.__name__ for cls in task_classes() if cls not in TASKS]
    assert missing == [], f"add representative arguments to TASKS for {', '.join(missing)}"


def _cases() -> list[Any]:
    cases = []
    for cls in task_classes():
        for scenario in ("fresh", "converged") if cls in CONVERGED else ("fresh",):
            for check in (False, True):
                cases.append(pytest.param(cls, scenario, check,
                                          id=f"{cls.__name__}-{scenario}-{'check' if check else 'apply'}"))
    return cases


@pytest.mark.parametrize(("task_class", "scenario", "check"), _cases())
def test_plan_is_a_pure_function_of_the_facts(world: World, task_class: type[Task], scenario: str, check: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    if task_class not in TASKS:
        pytest.fail(f"add representative arguments to TASKS for {task_class.__name__}")
    world.uses.clear()
    monkeypatch.setattr("provision.tasks.inventory_host_keys.scan_host_keys", refused("scan_host_keys", world.uses))
    role, build = TASKS[task_class]
    host = world.storage if role == "storage" else world.client
    task = build(world)
    facts = CONVERGED[task_class](world) if scenario == "converged" else {}
    first = planned(task, ProbedContext(world, host, facts, check=check))
    second = planned(task, ProbedContext(world, host, facts, check=check))
    assert first == second
    assert world.uses == []
