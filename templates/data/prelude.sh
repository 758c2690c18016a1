# Start of every `provision data` script. $1 repository ("~/" is the running user's home), $2 dvc,
# $3 umask for DVC's writes or empty (git keeps 022 then). DVC's site cache is the private one that the
# checkout's config.local names (bootstrap and onboard set core.site_cache_dir there).
set -eu
repo=$1 dvc=$2 data_umask=$3
shift 3
case $repo in "~/"*) repo=$HOME/${repo#"~/"} ;; esac
cd -- "$repo" 2>/dev/null || { echo "$repo: no such directory" >&2; exit 3; }
if [ "$(git rev-parse --show-toplevel 2>/dev/null)" != "$(pwd -P)" ] || [ ! -d .dvc ]; then
  echo "$repo is not the top of a git checkout with DVC" >&2
  exit 3
fi
export DVC_NO_ANALYTICS=1 GIT_TERMINAL_PROMPT=0
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
