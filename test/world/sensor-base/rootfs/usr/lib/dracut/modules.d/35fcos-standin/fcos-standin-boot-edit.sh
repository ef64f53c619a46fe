#!/bin/bash
# First boot: a pristine disk boots with no root= or boot= (its filesystems had the sentinel
# UUIDs). Now that they have their own, the default BLS entry names them, so every later boot,
# and every deployment ostree makes from this one, mounts them by UUID. FCOS's
# 35coreos-ignition/coreos-boot-edit.sh has `rdcore rootmap` append root=UUID=<root> rw
# rootflags=prjquota when the command line has no root=, then `rdcore bind-boot` append
# boot=UUID=<boot> when the entry has no boot=, and both edit the last entry in name order.
set -euo pipefail
root_uuid=$(blkid -p -s UUID -o value /dev/disk/by-label/root)
boot_uuid=$(blkid -p -s UUID -o value /dev/disk/by-label/boot)
mkdir -p /run/fcos-standin
echo "$boot_uuid" > /run/fcos-standin/bootfs_uuid
mnt=/run/fcos-standin/boot
mkdir -p "$mnt"
mount -o rw /dev/disk/by-label/boot "$mnt"
trap 'umount "$mnt"' EXIT
entry=$(ls "$mnt"/loader/entries/*.conf | sort -V | tail -n 1)
options=$(sed -n 's/^options[[:space:]]\{1,\}//p' "$entry")
add=()
case " $(cat /proc/cmdline) " in
    *" root="*) ;;
    *) add+=("root=UUID=$root_uuid" rw rootflags=prjquota) ;;
esac
case " $options " in
    *" boot="*) ;;
    *) add+=("boot=UUID=$boot_uuid") ;;
esac
if [ ${#add[@]} -eq 0 ]; then
    echo "fcos-standin-boot-edit: ${entry##*/} already names root and boot"
    exit 0
fi
tmp=$entry.tmp
while IFS= read -r line; do
    case "$line" in
        options[[:space:]]*) printf 'options %s %s\n' "$options" "${add[*]}" ;;
        *) printf '%s\n' "$line" ;;
    esac
done < "$entry" > "$tmp"
sync "$tmp"
mv "$tmp" "$entry"
sync "$mnt"
echo "fcos-standin-boot-edit: ${entry##*/}: appended ${add[*]}"
