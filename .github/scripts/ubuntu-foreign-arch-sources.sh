#!/bin/bash
# Ubuntu keeps amd64 packages on archive.ubuntu.com and every other arch on ports.ubuntu.com.
# `rock-image doctor --install test|artifacts` adds the arm64 dpkg architecture on amd64 hosts
# (arm64 busybox and GRUB for aarch64 fixtures and disks), which makes `apt-get update` fail on
# GitHub's Ubuntu runners unless each source is limited to its arch and ports serves arm64.
# No-op anywhere but an amd64 Ubuntu with deb822 sources.
set -euo pipefail
sources=/etc/apt/sources.list.d/ubuntu.sources
[ -f "$sources" ] && [ "$(dpkg --print-architecture)" = amd64 ] || exit 0
# shellcheck source=/dev/null
. /etc/os-release
if ! grep -q '^Architectures:' "$sources"; then
  sudo sed -i '/^Types: deb/a Architectures: amd64' "$sources"
fi
printf '%s\n' 'Types: deb' 'URIs: http://ports.ubuntu.com/ubuntu-ports' \
  "Suites: $VERSION_CODENAME $VERSION_CODENAME-updates $VERSION_CODENAME-security" \
  'Components: main universe' 'Architectures: arm64' \
  'Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg' |
  sudo tee /etc/apt/sources.list.d/ubuntu-ports-arm64.sources >/dev/null
