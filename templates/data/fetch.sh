# $1 tag, $2 jobs. Fills the cache with the tag's objects without touching the work tree: DVC fetches
# from a temporary git worktree at the tag that uses this checkout's cache and config.local. Prints the
# tag's .dvc files and every object the fetch wrote into the cache (size), so copied and already-present
# (linked, with a shared cache) bytes can be told apart.
tag=$1 jobs=$2
fetch_tags
target=$(git rev-parse -q --verify "refs/tags/$tag^{commit}") || { echo "no tag $tag here or in origin" >&2; exit 3; }
cache=$("$dvc" cache dir)
case $cache in /*) ;; *) cache=$(pwd -P)/$cache ;; esac
scratch=$(mktemp -d)
trap 'git worktree remove --force "$scratch/tree" >/dev/null 2>&1 || true; rm -rf -- "$scratch"; git worktree prune' EXIT
git worktree add --quiet --detach "$scratch/tree" "$target"
if [ -f .dvc/config.local ]; then cp -p .dvc/config.local "$scratch/tree/.dvc/config.local"; fi
: > "$scratch/marker"
(cd "$scratch/tree" && "$dvc" config --local cache.dir "$cache" && run_dvc fetch --quiet --jobs "$jobs")
printf 'target %s\n' "$target"
(cd "$scratch/tree" && git ls-files -- ':(glob)**/*.dvc') | while IFS= read -r file; do print_file dvcfile "$file" "$scratch/tree/$file"; done
if [ -d "$cache/files" ]; then find "$cache/files" -type f -cnewer "$scratch/marker" -printf 'copied %s\n'; fi
