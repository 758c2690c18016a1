#!/usr/bin/env bash
# Set up provision on a Debian machine, as root: system packages, a virtualenv, the package.
# The virtualenv is made from /usr/bin/python3 outside /root, /opt and /tmp so that lab hosts
# (which see the machine's /usr but have their own /root, /opt, /tmp) can run its dvc.
#   scripts/setup.sh          install the package
#   scripts/setup.sh --dev    install it editable, with the test extras
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${PROVISION_VENV:-/var/lib/provision/venv}
packages=(python3 python3-venv git openssh-server openssh-client sudo acl)
if [ "${1:-}" = "--dev" ]; then
  packages+=(gnome-keyring dbus libsecret-tools)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
if [ "${1:-}" = "--dev" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
else
  "$venv/bin/python" -m pip install -q --disable-pip-version-check . 2>&1 | grep -v '^WARNING: Location' || true
fi
"$venv/bin/provision" --version
