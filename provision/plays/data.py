"""`provision data ... --on HOST`: the same data operation, run over SSH in that host's checkout.

On the storage host it works in `server_repo` as `git_user` (the account that owns it, through sudo when
the host uses become), with the server repository's site cache and group-writable data; on a client in
`workdir` as the connecting user. Only git and dvc run there: provision need not be installed. The
connection verifies the host key against the inventory's pins like every other command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from provision.connection import CommandResult, HostKeyOptions, Session, open_session
from provision.data.runner import Checkout
from provision.errors import InputError
from provision.inventory import Host, Inventory
from provision.remote import as_user
from provision.secrets.inventory import SecretLookupForInventory
from provision.tasks.git_repo import commit_identity

#: The umask of DVC's writes on storage: the cache and remote are shared with the storage group.
STORAGE_DATA_UMASK = "002"


class SessionRunner:
    """Runs data scripts over an SSH session, as `account` (from root) when one is given."""

    def __init__(self, session: Session, label: str, account: str | None = None) -> None:
        self.session = session
        self.label = label
        self.account = account

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        if self.account:
            return self.session.run(as_user(self.account, argv), privileged=True, timeout=timeout)
        return self.session.run(argv, timeout=timeout)


def host_checkout(inventory: Inventory, host: Host) -> tuple[Checkout, str | None]:
    """The checkout a data command works in on `host`, and the account it runs as (None: the connecting one)."""
    settings = host.settings
    if host.name == inventory.storage.name:
        return Checkout(settings.server_repo, data_umask=STORAGE_DATA_UMASK,
                        identity=commit_identity(settings.git_user, host.name)), settings.git_user
    return Checkout(settings.workdir, identity=commit_identity(host.user or "root", host.name)), None


@contextmanager
def remote_checkout(inventory: Inventory, name: str, *, timeout: float) -> Iterator[tuple[SessionRunner, Checkout]]:
    """An open session to inventory host `name` (its host key pinned) and its checkout; closed afterwards."""
    host = inventory.hosts.get(name)
    if host is None:
        raise InputError(f"no such host in the inventory: {name}", file=str(inventory.path), key="--on")
    inventory.check_targets([host])
    checkout, account = host_checkout(inventory, host)
    keys = HostKeyOptions(inventory.known_hosts_path)
    become_password = SecretLookupForInventory(inventory)(host, "become_password") if host.become else None
    session = open_session(host, keys, timeout=timeout, become_password=become_password)
    try:
        yield SessionRunner(session, name, account), checkout
    finally:
        session.close()
