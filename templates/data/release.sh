# $1 tag, $2 message, $3 $4 committer name and email when git has none, then the paths to release.
# dvc add, dvc push, commit, annotated tag, atomic git push. Any failure puts the branch, the tag and
# the .dvc/.gitignore files back as they were: no tag ever names data missing from the remote.
tag=$1 message=$2 name=$3 email=$4
shift 4
if ! git config user.email >/dev/null 2>&1; then
  export GIT_AUTHOR_NAME="$name" GIT_AUTHOR_EMAIL="$email" GIT_COMMITTER_NAME="$name" GIT_COMMITTER_EMAIL="$email"
fi
branch=$(git symbolic-ref --short HEAD)
start=$(git rev-parse HEAD)
saved=$(mktemp -d)
tagged=
each_file() {  # ACTION PATH...: ACTION on each path's .dvc file and the .gitignore beside it
  action=$1
  shift
  for path; do
    "$action" "$path.dvc"
    "$action" "$(dirname -- "$path")/.gitignore"
  done
}
save() {
  key=$(printf '%s' "$1" | md5sum | cut -c1-32)
  if [ -e "$1" ]; then cp -p -- "$1" "$saved/$key"; else : > "$saved/$key.absent"; fi
}
restore() {
  key=$(printf '%s' "$1" | md5sum | cut -c1-32)
  git reset --quiet -- "$1" 2>/dev/null || true
  if [ -e "$saved/$key" ]; then cp -p -- "$saved/$key" "$1"; elif [ -e "$saved/$key.absent" ]; then rm -f -- "$1"; fi
}
undo() {
  status=$?
  trap - EXIT
  if [ "$status" -ne 0 ]; then
    if [ -n "$tagged" ]; then git tag -d -- "$tag" >/dev/null 2>&1 || true; fi
    git reset --quiet --keep "$start" 2>/dev/null || true
    each_file restore "$@"
  fi
  rm -rf -- "$saved"
  exit "$status"
}
each_file save "$@"
trap 'undo "$@"' EXIT
if git ls-remote --exit-code origin "refs/heads/$branch" >/dev/null; then
  git fetch --quiet origin "refs/heads/$branch"
  git merge --quiet --ff-only FETCH_HEAD
fi
if git rev-parse -q --verify "refs/tags/$tag" >/dev/null; then echo "tag $tag exists" >&2; exit 3; fi
run_dvc add -- "$@" >&2
for path; do
  out=$(run_dvc push -- "$path.dvc" 2>&1) || { printf '%s\n' "$out" >&2; exit 4; }
  printf 'push %s\n' "$(printf '%s\n' "$out" | tail -n 1)"
  git add -- "$path.dvc"
  ignore=$(dirname -- "$path")/.gitignore
  if [ -e "$ignore" ]; then git add -- "$ignore"; fi
done
if ! git diff --cached --quiet; then git commit --quiet -m "$message"; fi
git tag --annotate -m "$message" -- "$tag"
tagged=yes
git push --quiet --atomic origin "HEAD:refs/heads/$branch" "refs/tags/$tag"
printf 'commit %s\n' "$(git rev-parse HEAD)"
for path; do print_file dvcfile "$path.dvc" "$path.dvc"; done
