# Atomic install of a staged file: $1 staged file, $2 target, $3 owner, $4 group, $5 mode (octal).
# Empty owner/group/mode keep the target's current ones (or the defaults for a new file).
# The copy is made in the target's directory with its final owner and mode set BEFORE any byte is
# written (so secret content is never readable more widely), fsynced, then renamed over the target.
# As root, the steps below follow names, so the target's directory and every directory above it must
# belong to root and be writable by nobody else (above the target's directory, a sticky one such as
# /tmp is fine: nobody else may rename root's entries there): then no other account can swap the
# temporary file for a link between two steps. Anywhere else root refuses to write. The staged file
# lies in the connecting user's staging directory: staged_content (provision.connection.STAGED_CONTENT)
# reads it without following a link and refuses it if it was rewritten. root_only_directory
# (provision.tasks.files.ROOT_ONLY_DIRECTORY) checks the directories. Both are defined before this script.
set -eu
staged=$1 target=$2 owner=$3 group=$4 mode=$5
dir=$(dirname -- "$target")
refuse() { printf 'refusing to write %s as root: %s\n' "$target" "$1" >&2; exit 1; }
if [ "$(id -u)" -eq 0 ]; then
  [ -d "$dir" ] || refuse "$dir does not exist"
  problem=$(root_only_directory "$dir") || refuse "$problem"
fi
tmp=$(mktemp -p "$dir" ".provision.XXXXXXXX")
trap 'rm -f -- "$tmp" "$staged"' EXIT
if [ -e "$target" ]; then
  chown --reference="$target" -- "$tmp"
  if [ -z "$mode" ]; then chmod --reference="$target" -- "$tmp"; fi
fi
if [ -n "$mode" ]; then chmod -- "$mode" "$tmp"; fi
if [ -n "$owner" ]; then chown -- "$owner" "$tmp"; fi
if [ -n "$group" ]; then chgrp -- "$group" "$tmp"; fi
staged_content "$staged" > "$tmp"
sync -- "$tmp"
mv -f -- "$tmp" "$target"
trap - EXIT
rm -f -- "$staged"
