#!/usr/bin/env bash
# Write the authors' release's attacks/ and models/ packages (liuyixin-louis/Stable-Unlearnable-
# Example) out of a bare git mirror into a folder that tools/release_step.py imports from. The
# folder is ignored by git (third_party/ in .gitignore): the release is read at run time, never
# committed.
#   bash tools/release_export.sh /path/to/mirror.git [third_party/sem_release]
set -eu
GIT=${1:?usage: release_export.sh MIRROR_GIT_DIR [DEST]}
DEST=${2:-third_party/sem_release}
mkdir -p "$DEST"
for f in $(git --git-dir "$GIT" ls-tree -r --name-only HEAD attacks models); do
  case "$f" in *.py) mkdir -p "$DEST/$(dirname "$f")"; git --git-dir "$GIT" show "HEAD:$f" > "$DEST/$f";; esac
done
git --git-dir "$GIT" rev-parse HEAD > "$DEST/COMMIT"
echo "wrote $(find "$DEST" -name '*.py' | wc -l) files of $(cat "$DEST/COMMIT") to $DEST"
