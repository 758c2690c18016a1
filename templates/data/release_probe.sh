# $1 tag, then the paths to release. Key-value lines (see provision.data.release.ReleaseFacts).
tag=$1
shift
if git rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
  printf 'tag_local %s\n' "$(git rev-parse "refs/tags/$tag^{commit}")"
fi
remote_tag=$(git ls-remote --tags origin "refs/tags/$tag")
if [ -n "$remote_tag" ]; then printf 'tag_remote %s\n' "${remote_tag%%	*}"; fi
printf 'branch %s\n' "$(git symbolic-ref --short -q HEAD || true)"
git status --porcelain --untracked-files=no | sed 's/^/status /'
for path; do
  if [ -e "$path" ]; then printf 'exists %s\n' "$path"; fi
done
