#!/bin/bash
# Before a promote: the gh-pages site lacks the files over 95 MiB of the source stream's build
# (site-branch.sh keeps them off the branch), and promote copies the artifacts from there. Fetch
# each missing one from the version's GitHub release (tag v<version>), where publish put it.
#   site-fill-from-release.sh FROM VERSION BUILD_DIR SITE_DIR
set -euo pipefail
from=$1 version=$2 build=$3 site=$4
for meta in "$build/builds/$version"/*/meta.json; do
  [ -f "$meta" ] || { echo "::error::no meta.json of $version under $build/builds"; exit 1; }
  arch=$(basename "$(dirname "$meta")")
  dest="$site/prod/streams/$from/builds/$version/$arch"
  mkdir -p "$dest"
  node -e 'for (const i of Object.values(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).images)) console.log(i.path)' "$meta" |
    while read -r file; do
      if [ ! -e "$dest/$file" ]; then
        echo "fetching $file ($arch) from release v$version"
        gh release download "v$version" --pattern "$file" --dir "$dest"
      fi
    done
done
