"""The README's migration guide, followed on the lab: from a password committed in .dvc/config and
`dvc remote modify --local ... password` on the clients, to per-client keys and a clean audit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from provision.inventory import load_inventory
from provision.remote import as_user
from tests.integration.clirunner import provision, provision_json
from tests.integration.helpers import DVC, WORKDIR, bootstrap_with_dataset, failures, run, sh
from tests.integration.test_audit_hook import hook_env, stage_config
from tests.integration.test_audit_hosts import found

pytestmark = pytest.mark.integration

LEAKED = "leaked-in-the-write-up-1234"
GIT_IDENTITY = ["-c", "user.name=Admin", "-c", "user.email=admin@example.invalid"]


def test_migration_guide_from_a_committed_password(make_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = make_lab(("storage", "ws1"))
    home = tmp_path / "home"
    home.mkdir()
    inventory = str(lab.inventory_path)
    settings = load_inventory(lab.inventory_path).storage.settings
    remote, repo = settings.dvc_remote, settings.server_repo

    # The write-up's setup: storage_user has a password, committed in .dvc/config; the client repeats it locally.
    bootstrap_with_dataset(lab, home)
    done = provision("onboard", "-i", inventory, home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    run(lab, "storage", ["chpasswd"], input=f"{settings.storage_user}:{LEAKED}\n")
    git = ["git", *GIT_IDENTITY, "-C", repo]
    run(lab, "storage", as_user(settings.git_user, ["sh", "-c", 'printf "    password = %s\\n" "$2" >> "$1"', "sh",
                                                    f"{repo}/.dvc/config", LEAKED]))
    run(lab, "storage", as_user(settings.git_user, [*git, "commit", "-q", "-am", "remote password"]))
    run(lab, "storage", as_user(settings.git_user, [*git, "push", "-q", "origin", "HEAD"]))
    leak = sh(lab, "storage", as_user(settings.git_user, [*git, "rev-parse", "HEAD"])).strip()
    run(lab, "ws1", ["git", "-C", WORKDIR, "pull", "-q"])
    run(lab, "ws1", ["sh", "-c", 'cd "$1" && "$2" remote modify --local "$3" password "$4"', "sh", WORKDIR, DVC, remote,
                     LEAKED])
    checkout = lab.host_path("ws1", WORKDIR)

    # 1. Find every copy.
    status, document = provision_json("audit", "repo", str(checkout), "--history", home=home)
    assert status == 8
    assert [(f["rule"], f["file"], f["commit"], f["value"]) for f in document["findings"]] == [
        ("dvc-credential", ".dvc/config", leak, "password = ********")]
    status, document = provision_json("audit", "hosts", "-i", inventory, home=home)
    assert found(document) == {("storage", "password-hash", settings.storage_user),
                                                         ("ws1", "dvc-credential", f"{WORKDIR}/.dvc/config")}
    assert LEAKED not in str(document)

    # 3. Rotate by retiring the password: bootstrap resets the hash and rewrites the committed config.
    done = provision("bootstrap", "-i", inventory, home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sh(lab, "storage", ["getent", "shadow", settings.storage_user]).split(":")[1] == "*"
    assert "password" not in sh(lab, "storage", ["cat", f"{repo}/.dvc/config"])

    # 4. Every client its own key; config.local loses the password; checkouts pull the clean config.
    done = provision("onboard", "-i", inventory, home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "password" not in sh(lab, "ws1", ["cat", f"{WORKDIR}/.dvc/config.local"])
    run(lab, "ws1", ["git", "-C", WORKDIR, "pull", "-q"])

    # 5. Check: the hosts as the tool makes them, the tree clean.
    status, document = provision_json("audit", "hosts", "-i", inventory, home=home)
    assert found(document) == set(), failures(document)
    assert provision("audit", "repo", str(checkout), home=home).returncode == 0

    # 6. History still has the dead value until it is accepted in the baseline.
    assert provision("audit", "repo", str(checkout), "--history", home=home).returncode == 8
    assert provision("audit", "repo", str(checkout), "--history", "--update-baseline", home=home).returncode == 0
    assert provision("audit", "repo", str(checkout), "--history", home=home).returncode == 0

    # 7. Keep it out: the hook refuses a new password (the dead one is accepted by the baseline now).
    assert provision("audit", "install-hook", str(checkout), home=home).returncode == 0
    env = hook_env(home)
    stage_config(checkout, env, (checkout / ".dvc" / "config").read_text() + "    password = a-new-one-5678\n")
    refused = subprocess.run(["git", "-C", str(checkout), "commit", "-m", "again"], capture_output=True, text=True,
                             env=env, check=False)
    assert refused.returncode != 0 and "dvc-credential: .dvc/config" in refused.stdout + refused.stderr
