#!/bin/sh
# One data step of the pipeline: `provision-data-step [STEP [VERSION [PATHS [MESSAGE]]]]`, or the
# environment variables (arguments win):
#   PROVISION_STEP     release | checkout | fetch
#   PROVISION_VERSION  the version (git tag), e.g. v1.2
#   PROVISION_PATHS    release: the paths to publish, separated by commas (data, model_output)
#   PROVISION_MESSAGE  release: the commit and tag message
#   PROVISION_FORCE    checkout: non-empty to overwrite locally modified data
#   PROVISION_JOBS     fetch: parallel transfers (default 4)
# and where: PROVISION_WORKDIR (the checkout, cloned from PROVISION_GIT_URL when absent),
# PROVISION_SECRETS_DIR (read-only: id_ed25519 and config.local), PROVISION_KNOWN_HOSTS (storage's pins).
# The key and config.local are used where they are mounted; nothing secret is copied or printed.
set -eu
step=${1:-${PROVISION_STEP:?set PROVISION_STEP to release, checkout or fetch}}
version=${2:-${PROVISION_VERSION:?set PROVISION_VERSION}}
paths=${3:-${PROVISION_PATHS:-}}
message=${4:-${PROVISION_MESSAGE:-$version}}
workdir=${PROVISION_WORKDIR:?set PROVISION_WORKDIR}
secrets=${PROVISION_SECRETS_DIR:?set PROVISION_SECRETS_DIR}
known_hosts=${PROVISION_KNOWN_HOSTS:-/etc/ssh/ssh_known_hosts}
provision=${PROVISION_COMMAND:-provision}
ssh_command="ssh -F /dev/null -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$known_hosts -i $secrets/id_ed25519"
if [ ! -d "$workdir/.git" ]; then
  git -c core.sshCommand="$ssh_command" clone --quiet -- "${PROVISION_GIT_URL:?set PROVISION_GIT_URL}" "$workdir"
  git -C "$workdir" config core.sshCommand "$ssh_command"
fi
if [ ! -e "$workdir/.dvc/config.local" ]; then ln -s "$secrets/config.local" "$workdir/.dvc/config.local"; fi
case $step in
  release)
    set --
    for path in $(printf '%s' "${paths:?set PROVISION_PATHS}" | tr ',' ' '); do set -- "$@" --path "$path"; done
    exec $provision data release "$version" "$@" -m "$message" --repo "$workdir" --json ;;
  checkout)
    exec $provision data checkout "$version" ${PROVISION_FORCE:+--force} --repo "$workdir" --json ;;
  fetch)
    exec $provision data fetch "$version" --jobs "${PROVISION_JOBS:-4}" --repo "$workdir" --json ;;
  *)
    echo "PROVISION_STEP must be release, checkout or fetch, not $step" >&2
    exit 64 ;;
esac
