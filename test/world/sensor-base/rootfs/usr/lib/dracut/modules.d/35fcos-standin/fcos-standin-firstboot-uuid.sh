#!/bin/bash
# First boot of a pristine disk image: the filesystems labelled boot (ext4) and root (xfs) carry
# Fedora CoreOS's sentinel UUIDs; each gets a random one, so no two sensors share them. FCOS's
# 40ignition-ostree/ignition-ostree-firstboot-uuid does the same, and only for those values:
# any other type or UUID is left alone. $1: boot or root.
set -euo pipefail
label=$1
case "$label" in
    boot) sentinel=96d15588-3596-4b3c-adca-a2ff7279ea63 want=ext4 ;;
    root) sentinel=910678ff-f77e-4a7d-8d53-86f2ac47a823 want=xfs ;;
    *) echo "usage: $0 boot|root" >&2; exit 2 ;;
esac
dev=/dev/disk/by-label/$label
type=$(blkid -p -s TYPE -o value "$dev" || :)
uuid=$(blkid -p -s UUID -o value "$dev" || :)
if [ "$type" != "$want" ] || [ "$uuid" != "$sentinel" ]; then
    echo "fcos-standin-firstboot-uuid: $label is ${type:-?} ${uuid:-?}; nothing to do"
    exit 0
fi
case "$type" in
    ext4) tune2fs -U random "$dev" ;;
    xfs) xfs_admin -U generate "$dev" ;;
esac
udevadm settle || :
echo "fcos-standin-firstboot-uuid: $label had the sentinel UUID, now $(blkid -p -s UUID -o value "$dev")"
