#!/bin/bash
# First boot of a pristine disk image: the image carries Fedora CoreOS's sentinel disk GUID;
# give the disk and its partitions new GUIDs and move the backup GPT to the end of the real
# disk, which may be larger than the image (FCOS coreos-gpt-setup.sh does the same, only for
# that sentinel). $1: a partition of the boot disk.
set -euo pipefail
sentinel=00000000-0000-4000-a000-000000000001
disk=/dev/$(lsblk --nodeps --noheadings --output PKNAME "$1")
guid=$(lsblk --nodeps --noheadings --output PTUUID "$disk")
if [ "$guid" != "$sentinel" ]; then
    echo "fcos-standin-gpt-setup: $disk has disk GUID ${guid:-none}; nothing to do"
    exit 0
fi
echo "fcos-standin-gpt-setup: $disk is a pristine image: new GUIDs, backup GPT moved to the end"
sgdisk --randomize-guids --move-second-header "$disk"
udevadm settle || :
