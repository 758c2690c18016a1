# Every tag: name, commit, date and message (base64), then the .dvc files of its commit (base64).
if ! fetch_tags 2>/dev/null; then echo "origin unreachable: showing the tags known here" >&2; fi
git for-each-ref --sort=creatordate --format='%(refname:strip=2)' refs/tags | while IFS= read -r tag; do
  commit=$(git rev-parse "refs/tags/$tag^{commit}")
  printf 'tag %s %s %s %s\n' "$tag" "$commit" "$(git for-each-ref --format='%(creatordate:iso-strict)' "refs/tags/$tag")" \
    "$(git for-each-ref --format='%(contents)' "refs/tags/$tag" | base64 -w0)"
  git ls-tree -r --name-only "$commit" | grep '\.dvc$' | while IFS= read -r file; do
    printf 'dvcfile %s %s\n' "$file" "$(git show "$commit:$file" | base64 -w0)"
  done
done
