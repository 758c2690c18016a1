# Start of every `provision data` script. $1 repository ("~/" is the running user's home), $2 dvc,
# $3 DVC site cache directory or empty, $4 umask for DVC's writes or empty (git keeps 022 then).
set -eu
repo=$1 dvc=$2 site_cache=$3 data_umask=$4
shift 4
case $repo in "~/"*) repo=$HOME/${repo#"~/"} ;; esac
cd -- "$repo" 2>/dev/null || { echo "$repo: no such directory" >&2; exit 3; }
if [ "$(git rev-parse --show-toplevel 2>/dev/null)" != "$(pwd -P)" ] || [ ! -d .dvc ]; then
  echo "$repo is not the top of a git checkout with DVC" >&2
  exit 3
fi
export DVC_NO_ANALYTICS=1 GIT_TERMINAL_PROMPT=0
if [ -n "$site_cache" ]; then export DVC_SITE_CACHE_DIR="$site_cache"; fi
if [ -n "$data_umask" ]; then umask 022; fi
run_dvc() {
  if [ -n "$data_umask" ]; then (umask "$data_umask" && "$dvc" "$@"); else "$dvc" "$@"; fi
}
fetch_tags() {
  git fetch --quiet origin 'refs/tags/*:refs/tags/*'
}
print_file() {  # KEY NAME FILE: one line, the content as base64
  printf '%s %s %s\n' "$1" "$2" "$(base64 -w0 < "$3")"
}
