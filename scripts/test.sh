#!/usr/bin/env bash
# The test suite: set up (with test extras), lint, then unit and integration tests on a real lab.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
venv=${PROVISION_VENV:-/var/lib/provision/venv}
"$venv/bin/ruff" check provision tests bench
# Two workers, a test file each (a file's lab fixtures stay in one process): the lab tests wait on sshd
# and subprocesses about half the time, so the two cores are used in parallel.
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider -n 2 --dist loadfile "$@"
