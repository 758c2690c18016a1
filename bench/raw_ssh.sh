#!/usr/bin/env bash
# The seed job with OpenSSH and bash only: one ssh session per host and step, clients in parallel.
# Usage: raw_ssh.sh bootstrap|dataset|onboard PLAN.env CONTROLLER_KEY PINS
# PLAN.env holds bash assignments written by bench/run (bench/seed.py: what provision would write).
# Like `provision onboard`: client keys are made on the clients, storage gets all clients' lines in one
# session, then each client pins storage's host key, clones, writes config.local and pulls. A client
# that fails leaves the others running; the exit status is 2 when any host failed.
set -euo pipefail
step=$1 plan=$2 controller_key=$3 pins=$4
# shellcheck source=/dev/null
. "$plan"
ssh_options=(-F /dev/null -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes
             -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$pins" -i "$controller_key")

# retry COMMAND...: run it; a refusal before authentication (retry_pattern) is tried again.
retry() {
  local attempt=1 errors
  errors=$(mktemp)
  until "$@" 2>"$errors"; do
    if [ "$attempt" -ge "$retry_attempts" ] || ! grep -Eq "$retry_pattern" "$errors"; then
      cat "$errors" >&2
      rm -f "$errors"
      return 1
    fi
    echo "RETRY $attempt $(hostname): $1" >&2
    attempt=$((attempt + 1))
    sleep "$retry_delay"
  done
  rm -f "$errors"
}

# The account $1 with login shell $2, its root-owned home, ~/.ssh and authorized_keys.
service_account() {
  getent passwd "$1" >/dev/null \
    || useradd --system --gid "$storage_group" --shell "$2" --home-dir "$home_base/$1" --no-create-home \
         --password '*' "$1"
  install -d -o root -g root -m 0755 "$home_base/$1" "$home_base/$1/.ssh"
  [ -f "$home_base/$1/.ssh/authorized_keys" ] \
    || install -o root -g root -m 0644 /dev/null "$home_base/$1/.ssh/authorized_keys"
}

# As git_user in server_repo: clone, dvc init, both config files, commit and push what changed.
server_repository() {
  export DVC_NO_ANALYTICS=1 DVC_SITE_CACHE_DIR=$site_cache_dir
  cd -- "$server_repo"
  if [ ! -d .git ]; then
    git clone --quiet -- "$git_remote" .
    git symbolic-ref HEAD "refs/heads/$branch"
  fi
  [ -d .dvc ] || "$dvc" init --quiet
  printf '%s' "$committed_config" >.dvc/config
  printf '%s' "$server_config_local" >.dvc/config.local
  git add -- .dvc/config .dvc/.gitignore .dvcignore
  git diff --cached --quiet || git -c user.name=raw-ssh -c "user.email=$git_user@storage" commit --quiet \
    -m "Configure DVC remote (raw ssh)"
  [ "$(git rev-parse HEAD)" = "$(git rev-parse -q --verify "refs/remotes/origin/$branch" || true)" ] \
    || git push --quiet -u origin "HEAD:$branch"
}

storage_bootstrap() {
  git --version >/dev/null
  ln -sfn "$dvc" /usr/local/bin/dvc
  getent group "$storage_group" >/dev/null || groupadd --system "$storage_group"
  service_account "$storage_user" "$nologin"
  service_account "$git_user" "$git_shell"
  local commands=$home_base/$git_user/git-shell-commands index
  install -d -o root -g root -m 0755 "$commands"
  for index in "${!git_shell_command_names[@]}"; do
    printf '%s' "${git_shell_command_texts[$index]}" >"$commands/${git_shell_command_names[$index]}"
    chmod 0755 "$commands/${git_shell_command_names[$index]}"
  done
  printf '%s' "$served_repositories" >"$served_repositories_path"
  chmod 0644 "$served_repositories_path"
  if ! printf '%s' "$sshd_drop_in" | cmp -s - "$sshd_drop_in_path"; then
    printf '%s' "$sshd_drop_in" >"$sshd_drop_in_path"
    chmod 0644 "$sshd_drop_in_path"
    sshd -t
    bash -c "$sshd_reload"
  fi
  install -d -o "$storage_user" -g "$storage_group" -m "$shared_mode" "$dvc_storage"
  install -d -o "$git_user" -g "$storage_group" -m "$repository_mode" "$git_remote_parent" "$server_repo"
  install -d -o "$git_user" -g "$storage_group" -m "$shared_mode" "$site_cache_dir"
  if command -v setfacl >/dev/null; then setfacl -m "$acl_spec" -- "$dvc_storage" || true; fi
  [ -f "$git_remote/HEAD" ] || runuser -u "$git_user" -- git init --quiet --bare \
    "--shared=$shared_repository" "--initial-branch=$branch" "$git_remote"
  runuser -u "$git_user" -- bash -c "$(declare -f server_repository); set -euo pipefail; server_repository"
}

# As git_user in server_repo: dvc add and push the dataset, commit, tag, push what is missing.
dataset_as_git_user() {
  export DVC_NO_ANALYTICS=1 DVC_SITE_CACHE_DIR=$site_cache_dir
  cd -- "$server_repo"
  if [ ! -f "$dataset.dvc" ]; then
    umask 002
    "$dvc" add --quiet -- "$dataset"
    "$dvc" push --quiet -- "$dataset.dvc"
    umask 022
  fi
  local identity=(-c user.name=raw-ssh -c "user.email=$git_user@storage")
  git add -- "$dataset.dvc" .gitignore
  git diff --cached --quiet || git "${identity[@]}" commit --quiet -m "Add dataset $dataset (raw ssh)"
  git rev-parse -q --verify "refs/tags/$tag" >/dev/null \
    || git "${identity[@]}" tag --annotate -m "$tag: dataset $dataset" "$tag"
  if [ "$(git rev-parse HEAD)" != "$(git rev-parse -q --verify "refs/remotes/origin/$branch" || true)" ] \
     || [ -z "$(git ls-remote origin "refs/tags/$tag")" ]; then
    git push --quiet origin "HEAD:$branch" "refs/tags/$tag"
  fi
}

storage_dataset() {
  runuser -u "$git_user" -- bash -c "$(declare -f dataset_as_git_user); set -euo pipefail; dataset_as_git_user"
}

# $1 key, $2 home, $3 marker: tools, a key pair made here; prints the public key.
client_key() {
  git --version >/dev/null
  ln -sfn "$dvc" /usr/local/bin/dvc
  install -d -m 0700 "$2/.ssh"
  [ -f "$1" ] || ssh-keygen -q -t ed25519 -N '' -C "$3" -f "$1"
  cat -- "$1.pub"
}

# Triples of marker, storage_user line, git_user line: each client's old lines replaced, atomically.
storage_authorize() {
  local markers=() sftp_lines=() git_lines=() file tmp
  while [ $# -gt 0 ]; do markers+=("$1"); sftp_lines+=("$2"); git_lines+=("$3"); shift 3; done
  for file in "$home_base/$storage_user/.ssh/authorized_keys" "$home_base/$git_user/.ssh/authorized_keys"; do
    tmp=$(mktemp "$file.XXXXXX")
    awk 'NR == FNR { drop[$0] = 1; next } !($NF in drop)' <(printf '%s\n' "${markers[@]}") "$file" >"$tmp"
    if [ "$file" = "$home_base/$storage_user/.ssh/authorized_keys" ]; then
      printf '%s\n' "${sftp_lines[@]}" >>"$tmp"
    else
      printf '%s\n' "${git_lines[@]}" >>"$tmp"
    fi
    chmod 0644 "$tmp"
    mv -f -- "$tmp" "$file"
  done
}

# $1 known_hosts, $2 its pinned lines, $3 workdir, $4 git URL, $5 core.sshCommand, $6 config.local.
client_setup() {
  local line
  touch -- "$1"
  while IFS= read -r line; do grep -qxF -- "$line" "$1" || printf '%s\n' "$line" >>"$1"; done <<<"$2"
  [ -d "$3/.git" ] || retry git clone --quiet -c "core.sshCommand=$5" -- "$4" "$3"
  (umask 077 && printf '%s' "$6" >"$3/.dvc/config.local")
  cd -- "$3"
  export DVC_NO_ANALYTICS=1
  "$dvc" status --quiet || retry "$dvc" pull --quiet
}

# on PORT FUNCTION ARGS...: FUNCTION (with the plan and retry) run as root on the lab host at PORT.
on() {
  local port=$1 function=$2 script
  shift 2
  script="set -euo pipefail; set -a; $(cat -- "$plan"); set +a; $(declare -f retry "$function")"
  case $function in
    storage_bootstrap) script+="; $(declare -f service_account server_repository)" ;;
    storage_dataset) script+="; $(declare -f dataset_as_git_user)" ;;
  esac
  script+="; $function $(printf '%q ' "$@")"
  ssh "${ssh_options[@]}" -p "$port" root@127.0.0.1 "bash -c $(printf '%q' "$script")"
}

# Every client in parallel: FUNCTION with per-client ARGS from the named arrays; stdout to DIR/NAME.
each_client() {
  local out=$1 function=$2 failed=0 index
  shift 2
  local pids=()
  for index in "${!client_name[@]}"; do
    local args=() array element
    for array in "$@"; do
      element="$array[$index]"
      args+=("${!element}")
    done
    on "${client_port[$index]}" "$function" "${args[@]}" >"$out/${client_name[$index]}" &
    pids+=($!)
  done
  for index in "${!pids[@]}"; do
    if ! wait "${pids[$index]}"; then
      echo "FAILED ${client_name[$index]}: $function" >&2
      failed=1
    fi
  done
  return "$failed"
}

case $step in
  bootstrap) on "$storage_port" storage_bootstrap ;;
  dataset) on "$storage_port" storage_dataset ;;
  onboard)
    keys=$(mktemp -d)
    trap 'rm -rf "$keys"' EXIT
    status=0
    each_client "$keys" client_key client_key client_home client_marker || status=2
    triples=()
    for index in "${!client_name[@]}"; do
      [ -s "$keys/${client_name[$index]}" ] || continue
      public_key=$(cut -d' ' -f1,2 "$keys/${client_name[$index]}")
      triples+=("${client_marker[$index]}"
                "${client_sftp_line_prefix[$index]}$public_key${client_sftp_line_suffix[$index]}"
                "${client_git_line_prefix[$index]}$public_key${client_git_line_suffix[$index]}")
    done
    if [ "${#triples[@]}" -gt 0 ]; then on "$storage_port" storage_authorize "${triples[@]}"; fi
    each_client "$keys" client_setup client_known_hosts client_known_hosts_content client_workdir \
      client_git_url client_git_ssh_command client_config_local || status=2
    exit "$status"
    ;;
  *) echo "usage: $0 bootstrap|dataset|onboard PLAN.env CONTROLLER_KEY PINS" >&2; exit 1 ;;
esac
