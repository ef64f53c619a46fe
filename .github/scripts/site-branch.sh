#!/bin/bash
# The published site (stream metadata, release index, update graph, signatures) lives on the
# gh-pages branch, served by GitHub Pages.
#   site-branch.sh checkout DIR          work tree of gh-pages at DIR (an empty orphan the first time)
#   site-branch.sh push DIR MESSAGE      commit DIR and push, rebasing on other streams' pushes
# Files over 95 MiB (disk images) are not committed: GitHub refuses files over 100 MB; they are
# on the GitHub release, and each one is named in a warning.
set -euo pipefail
branch=${SITE_BRANCH:-gh-pages}
cmd=$1 dir=$2

case $cmd in
checkout)
  if git fetch --quiet --depth=1 origin "$branch"; then
    git worktree add --quiet --detach "$dir" FETCH_HEAD
  else
    git worktree add --quiet --detach "$dir"
    git -C "$dir" checkout --quiet --orphan "$branch"
    git -C "$dir" rm -r --quiet --force .
  fi
  ;;
push)
  message=$3
  git -C "$dir" config user.name 'github-actions[bot]'
  git -C "$dir" config user.email '41898282+github-actions[bot]@users.noreply.github.com'
  : >"$dir/.nojekyll"
  find "$dir" -path "$dir/.git" -prune -o -type f -size +95M -printf '%P\n' | sort >"$dir/.gitignore"
  while read -r big; do
    echo "::warning::$big is over 95 MiB: not on the site branch (it is on the GitHub release)"
  done <"$dir/.gitignore"
  git -C "$dir" add --all
  if git -C "$dir" diff --cached --quiet; then
    echo "site unchanged"
    exit 0
  fi
  git -C "$dir" commit --quiet -m "$message"
  for attempt in 1 2 3 4 5; do
    if git -C "$dir" push --quiet origin "HEAD:refs/heads/$branch"; then exit 0; fi
    echo "push rejected (attempt $attempt): rebasing on the branch"
    git -C "$dir" fetch --quiet origin "$branch"
    git -C "$dir" rebase --quiet FETCH_HEAD
  done
  echo "::error::could not push the site to $branch"
  exit 1
  ;;
*)
  echo "usage: $0 checkout DIR | push DIR MESSAGE" >&2
  exit 64
  ;;
esac
