# Atomic install of a staged file: $1 staged file, $2 target, $3 owner, $4 group, $5 mode (octal).
# Empty owner/group/mode keep the target's current ones (or the defaults for a new file).
# The copy is made in the target's directory with its final owner and mode set BEFORE any byte is
# written (so secret content is never readable more widely), fsynced, then renamed over the target.
set -eu
staged=$1 target=$2 owner=$3 group=$4 mode=$5
dir=$(dirname -- "$target")
tmp=$(mktemp -p "$dir" ".provision.XXXXXXXX")
trap 'rm -f -- "$tmp" "$staged"' EXIT
if [ -e "$target" ]; then
  chown --reference="$target" -- "$tmp"
  if [ -z "$mode" ]; then chmod --reference="$target" -- "$tmp"; fi
fi
if [ -n "$mode" ]; then chmod -- "$mode" "$tmp"; fi
if [ -n "$owner" ]; then chown -- "$owner" "$tmp"; fi
if [ -n "$group" ]; then chgrp -- "$group" "$tmp"; fi
cat -- "$staged" > "$tmp"
sync -- "$tmp"
mv -f -- "$tmp" "$target"
trap - EXIT
rm -f -- "$staged"
