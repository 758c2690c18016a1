# $1 target commit, $2 "--force" or empty, then the outputs the target's .dvc files track.
# Checks out the target's .dvc files and the data (from the cache alone when it has everything, e.g.
# after `data fetch`; else DVC fetches what is missing), then prints what changed since the state before
# (dvc diff) and the sizes of the outputs' files. DVC's own messages go to stderr.
target=$1 force=$2
shift 2
before=$(git stash create)
before=${before:-$(git rev-parse HEAD)}
git checkout --quiet "$target" -- ':(glob)**/*.dvc'
if ! run_dvc checkout $force >&2 2>/dev/null; then run_dvc pull $force >&2; fi
printf 'diff %s\n' "$("$dvc" diff --json "$before" "$target" | tr -d '\n')"
for out; do
  if [ -e "$out" ]; then find -L "$out" -type f -printf 'size %s %p\n'; fi
done
