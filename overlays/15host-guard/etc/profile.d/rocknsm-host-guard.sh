# shellcheck shell=sh
# RockNSM host-package guard (design notes, seed 000: "defend using yum through aliases as a
# simple reminder"). The host OS is an image: extra tools belong in a toolbox container, OS
# changes in the image build or, for a single sensor, in an rpm-ostree layer. Interactive
# shells only, so scripts are never affected. Sourced by sh and bash: POSIX sh only.
#
# Bypass, when it is really needed: `\dnf ...` or `command dnf ...` (the alias is skipped).
# Opt out for a whole session: export ROCKNSM_NO_HOST_GUARD=1 before logging in.

case $- in
  *i*)
    if [ -z "${ROCKNSM_NO_HOST_GUARD:-}" ]; then
      rocknsm_host_guard() {
        printf '%s\n' \
          "RockNSM: this sensor runs an image-based OS; '$1' does not install software on it." \
          "  Tools for yourself:  toolbox create && toolbox enter   (then '$1 install ...' inside)" \
          "  OS packages:         rpm-ostree install PACKAGE         (layered, applied on reboot)" \
          "  Really need it:      \\$1 ...   (skips this reminder)" >&2
        return 1
      }
      alias yum='rocknsm_host_guard yum'
      alias dnf='rocknsm_host_guard dnf'
      alias dnf5='rocknsm_host_guard dnf5'
    fi
    ;;
esac
