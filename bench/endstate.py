"""The one end-state check run after every run of every contender.

It reads the lab hosts' files from the controller (their private directories live under the lab
directory) and asks git inside the hosts, and compares with the SeedPlan, which holds what provision
would write. It returns the problems found, one line each; an empty list means the job is done.
"""

from __future__ import annotations

import stat
from pathlib import Path

from configobj import ConfigObj

from bench.seed import ClientPlan, SeedPlan
from provision.lab import Lab


def _git(lab: Lab, host: str, *args: str) -> str | None:
    """git as root inside a host (any repository owner accepted), or None when it fails."""
    done = lab.exec(host, ["git", "-c", "safe.directory=*", *args])
    return done.stdout.strip() if done.returncode == 0 else None


def _passwd(lab: Lab, host: str) -> dict[str, list[str]]:
    return {line.split(":")[0]: line.split(":") for line in lab.host_path(host, "/etc/passwd").read_text().splitlines()}


def _group_members(lab: Lab, host: str, group: str) -> tuple[str, set[str]]:
    for line in lab.host_path(host, "/etc/group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == group:
            return fields[2], set(filter(None, fields[3].split(",")))
    return "", set()


def _mode_problem(path: Path, shown: str, mode: int, uid: int | None = None) -> str | None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return f"{shown} is missing"
    if stat.S_IMODE(info.st_mode) != mode:
        return f"{shown} has mode {stat.S_IMODE(info.st_mode):o}, not {mode:o}"
    if uid is not None and info.st_uid != uid:
        return f"{shown} is owned by uid {info.st_uid}, not {uid}"
    return None


def _storage_problems(lab: Lab, plan: SeedPlan, tag_commit: str | None) -> list[str]:
    host = lab.storage_host
    problems = []
    accounts = _passwd(lab, host)
    gid, members = _group_members(lab, host, plan.storage_group)
    for user, shell in ((plan.storage_user, plan.nologin), (plan.git_user, plan.git_shell)):
        entry = accounts.get(user)
        if entry is None:
            problems.append(f"storage: no account {user}")
            continue
        if entry[6] != shell:
            problems.append(f"storage: {user} has shell {entry[6]}, not {shell}")
        if entry[3] != gid and user not in members:
            problems.append(f"storage: {user} is not in group {plan.storage_group}")
        keys = f"{entry[5]}/.ssh/authorized_keys"
        if problem := _mode_problem(lab.host_path(host, keys), f"storage:{keys}", 0o644, uid=0):
            problems.append(problem)
    if tag_commit is None:
        problems.append(f"storage: {plan.git_remote} has no tag {plan.tag}")
    else:
        committed = _git(lab, host, "--git-dir", plan.git_remote, "show", f"{plan.tag}:.dvc/config")
        if committed != plan.committed_config.strip():
            problems.append(f"storage: .dvc/config at {plan.tag} in {plan.git_remote} is not what provision commits")
        if _git(lab, host, "--git-dir", plan.git_remote, "cat-file", "-e", f"{plan.tag}:{plan.dataset}.dvc") is None:
            problems.append(f"storage: {plan.dataset}.dvc is not committed at {plan.tag}")
    if _git(lab, host, "-C", plan.server_repo, "show", "HEAD:.dvc/config") != plan.committed_config.strip():
        problems.append(f"storage: {plan.server_repo} has no committed .dvc/config as provision writes it")
    if _git(lab, host, "-C", plan.server_repo, "status", "--porcelain") != "":
        problems.append(f"storage: {plan.server_repo} has uncommitted changes (or is no repository)")
    return problems


def _authorized_lines(lab: Lab, plan: SeedPlan, account: str) -> set[str]:
    entry = _passwd(lab, lab.storage_host).get(account)
    path = lab.host_path(lab.storage_host, f"{entry[5]}/.ssh/authorized_keys") if entry else None
    return set(path.read_text().splitlines()) if path and path.is_file() else set()


def _client_problems(lab: Lab, plan: SeedPlan, client: ClientPlan, manifest: dict[str, str], tag_commit: str | None,
                     authorized: dict[str, set[str]]) -> list[str]:
    name = client.name
    problems = []
    for path, mode in ((client.key, 0o600), (f"{client.home}/.ssh", 0o700)):
        if problem := _mode_problem(lab.host_path(name, path), f"{name}:{path}", mode):
            problems.append(problem)
    public_path = lab.host_path(name, f"{client.key}.pub")
    public_key = " ".join(public_path.read_text().split()[:2]) if public_path.is_file() else None
    if public_key is None:
        problems.append(f"{name}: no public key {client.key}.pub")
    else:
        for account, (prefix, suffix) in ((plan.storage_user, client.sftp_line), (plan.git_user, client.git_line)):
            if f"{prefix}{public_key}{suffix}" not in authorized[account]:
                problems.append(f"storage: {account}'s authorized_keys lacks {name}'s line as provision writes it")
    known_hosts = lab.host_path(name, client.known_hosts)
    present = set(known_hosts.read_text().splitlines()) if known_hosts.is_file() else set()
    if not set(client.known_hosts_content.splitlines()) <= present:
        problems.append(f"{name}: {client.known_hosts} does not pin storage's host keys")
    if _git(lab, name, "-C", client.workdir, "config", "remote.origin.url") != client.git_url:
        problems.append(f"{name}: {client.workdir} is no clone of {client.git_url}")
    if _git(lab, name, "-C", client.workdir, "config", "core.sshCommand") != client.git_ssh_command:
        problems.append(f"{name}: core.sshCommand in {client.workdir} is not the client key with pinned host keys")
    if tag_commit is not None and _git(lab, name, "-C", client.workdir, "rev-parse", "HEAD") != tag_commit:
        problems.append(f"{name}: {client.workdir} is not at {plan.tag}")
    config_local = f"{client.workdir}/.dvc/config.local"
    if problem := _mode_problem(lab.host_path(name, config_local), f"{name}:{config_local}", 0o600):
        problems.append(problem)
    else:
        config = ConfigObj(lab.host_path(name, config_local).read_text().splitlines(), interpolation=False)
        wanted = ConfigObj(client.config_local.splitlines(), interpolation=False)
        if any(not dict(values).items() <= dict(config.get(section, {})).items() for section, values in wanted.items()):
            problems.append(f"{name}: {config_local} lacks the remote's user and keyfile")
    pulled = _workspace_digests(lab, name, f"{client.workdir}/{plan.dataset}")
    if pulled != manifest:
        wrong = sum(pulled.get(path) != digest for path, digest in manifest.items())
        extra = len(set(pulled) - set(manifest))
        problems.append(f"{name}: {plan.dataset}/ differs from the dataset ({wrong} of {len(manifest)} files "
                        f"missing or different, {extra} extra)")
    return problems


def _workspace_digests(lab: Lab, host: str, directory: str) -> dict[str, str]:
    """sha256 of every file under directory, read inside the host: DVC links point into the host's own cache."""
    done = lab.exec(host, ["sh", "-c", 'cd "$1" && find -L . -type f -exec sha256sum {} +', "sh", directory])
    digests = {}
    for line in done.stdout.splitlines():
        digest, _, path = line.partition("  ")
        digests[path.removeprefix("./")] = digest
    return digests


def end_state_problems(lab: Lab, plan: SeedPlan, manifest: dict[str, str]) -> list[str]:
    """Everything that differs from the seed job's end state, one line each."""
    tag_commit = _git(lab, lab.storage_host, "--git-dir", plan.git_remote, "rev-parse", "--verify",
                      f"refs/tags/{plan.tag}^{{commit}}")
    problems = _storage_problems(lab, plan, tag_commit)
    authorized = {account: _authorized_lines(lab, plan, account) for account in (plan.storage_user, plan.git_user)}
    for client in plan.clients:
        problems += _client_problems(lab, plan, client, manifest, tag_commit, authorized)
    return problems
