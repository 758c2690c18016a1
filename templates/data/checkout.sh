# $1 target commit, $2 "--force" or empty, then the outputs the target's .dvc files track.
# Checks out the target's .dvc files, lets DVC fetch what is missing and check the data out, then prints
# what changed since the state before (dvc diff) and the sizes of the outputs' files.
target=$1 force=$2
shift 2
before=$(git stash create)
before=${before:-$(git rev-parse HEAD)}
git checkout --quiet "$target" -- ':(glob)**/*.dvc'
run_dvc pull --quiet $force
printf 'diff %s\n' "$("$dvc" diff --json "$before" "$target" | tr -d '\n')"
for out; do
  if [ -e "$out" ]; then find "$out" -type f -printf 'size %s %p\n'; fi
done
