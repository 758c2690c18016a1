# $1 tag. The tag's commit, its .dvc files, and DVC's view of local changes to tracked data.
tag=$1
fetch_tags
target=$(git rev-parse -q --verify "refs/tags/$tag^{commit}") || { echo "no tag $tag here or in origin" >&2; exit 3; }
printf 'target %s\n' "$target"
git ls-tree -r --name-only "$target" | grep '\.dvc$' | while IFS= read -r file; do
  printf 'dvcfile %s %s\n' "$file" "$(git show "$target:$file" | base64 -w0)"
done
printf 'status %s\n' "$("$dvc" data status --granular --json | tr -d '\n')"
