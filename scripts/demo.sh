#!/usr/bin/env bash
# Set up provision, then show it on a local lab of real OpenSSH hosts (as root on Debian):
# pin host keys, ping, bootstrap the storage server with a first dataset tagged v1.0, onboard two
# clients that pull it, and show that a second run changes nothing.
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
# The storage side: accounts, export directories, bare and server repositories, DVC remote.
provision bootstrap
# A first dataset, made in the server repository by its owner, then versioned as v1.0.
provision lab exec storage --dir "$lab" -- su -s /bin/sh git -c \
  'mkdir -p /mnt/nfs/demo/data && seq 1 1000 > /mnt/nfs/demo/data/numbers.csv && date -u > /mnt/nfs/demo/data/made.txt'
provision bootstrap --data data --tag v1.0
# The client side: key pairs made on the clients, authorized on storage, checkout, config.local, pull.
provision onboard --pull
provision lab exec ws1 --dir "$lab" -- sh -c 'cd ~/demo && git describe --tags && wc -l data/numbers.csv && grep -rn "password\|keyfile" .dvc/config || echo "no credential in the committed .dvc/config"'
# Everything again: nothing left to change.
provision bootstrap
provision onboard
