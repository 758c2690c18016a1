#!/usr/bin/env bash
# Set up provision, then show it on a local lab of real OpenSSH hosts (as root on Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv=${PROVISION_VENV:-/var/lib/provision/venv}
provision() { "$venv/bin/provision" "$@"; }
lab=${PROVISION_LAB_DIR:-$(mktemp -d /var/tmp/provision-lab.XXXXXX)}
trap 'provision lab down --dir "$lab"' EXIT
set -x
provision lab up --dir "$lab" --hosts storage,ws1,ws2
export PROVISION_INVENTORY=$lab/inventory.yml
provision inventory graph
provision hostkeys scan
provision ping
