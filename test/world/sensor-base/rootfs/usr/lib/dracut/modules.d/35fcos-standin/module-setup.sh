#!/bin/bash
# Test base (Fedora CoreOS stand-in): the first-boot behaviour of Fedora CoreOS's own dracut
# modules that Debian's Ignition module (30ignition, upstream Ignition 2.14) does not bring, each
# written here from what the FCOS source does:
# - 00-core.ign: the `core` admin user, from a base config in the initramfs (FCOS 40ignition-conf
#   installs 00-core.ign into /usr/lib/ignition/base.d);
# - the /dev/disk/by-id/coreos-boot-disk link (FCOS 35coreos-ignition/80-coreos-boot-disk.rules:
#   the whole disk holding the partition or filesystem named `boot`);
# - fcos-standin-gpt-setup: on the first boot of a pristine disk (disk GUID = FCOS's sentinel)
#   new GUIDs and the backup GPT moved to the end of the real disk (FCOS coreos-gpt-setup.sh);
# - fcos-standin-uuid-boot / -uuid-root: on that first boot, new UUIDs for the filesystems
#   labelled boot and root when they carry FCOS's sentinel UUIDs (FCOS 40ignition-ostree
#   ignition-ostree-firstboot-uuid), then fcos-standin-boot-edit names them with root= and boot=
#   in the BLS entry (FCOS coreos-boot-edit.sh: rdcore rootmap and bind-boot);
# - fcos-standin-root-generator: /sysroot from the filesystem labelled root while the command line
#   has no root= (FCOS coreos-diskful-generator);
# - fcos-standin-mount-var / -populate-var: the stateroot's /var at /sysroot/var while Ignition
#   mounts and writes files, filled by tmpfiles (FCOS 40ignition-ostree
#   ignition-ostree-mount-var.sh and ignition-ostree-populate-var.service);
# - Ignition 2.14's partition-table race (coreos/ignition#1302): no udev write watch on virtio
#   disks and the disks stage after udev settled (current Ignition runs partx itself instead).
# check() is absent on purpose: dracut then includes the module in every initramfs.

depends() {
    echo ignition
}

install() {
    inst_multiple lsblk sgdisk udevadm realpath systemd-tmpfiles mount umount grep blkid tune2fs \
        xfs_admin xfs_db findmnt sed sort tail sync mv
    mkdir -p "$initdir/usr/lib/ignition/base.d"
    inst_simple "$moddir/00-core.ign" /usr/lib/ignition/base.d/00-core.ign
    inst_script "$moddir/fcos-standin-disk-has-boot" /usr/lib/udev/fcos-standin-disk-has-boot
    inst_rules "$moddir/80-fcos-standin-boot-disk.rules" "$moddir/61-fcos-standin-nowatch.rules"
    inst_script "$moddir/fcos-standin-gpt-setup.sh" /usr/sbin/fcos-standin-gpt-setup
    inst_script "$moddir/fcos-standin-mount-var.sh" /usr/sbin/fcos-standin-mount-var
    inst_script "$moddir/fcos-standin-firstboot-uuid.sh" /usr/sbin/fcos-standin-firstboot-uuid
    inst_script "$moddir/fcos-standin-boot-edit.sh" /usr/sbin/fcos-standin-boot-edit
    inst_script "$moddir/fcos-standin-root-generator" "$systemdutildir/system-generators/fcos-standin-root-generator"
    local unit
    for unit in fcos-standin-gpt-setup.service fcos-standin-mount-var.service fcos-standin-populate-var.service; do
        inst_simple "$moddir/$unit" "$systemdsystemunitdir/$unit"
        mkdir -p "$initdir$systemdsystemunitdir/ignition-complete.target.requires"
        ln_r "$systemdsystemunitdir/$unit" "$systemdsystemunitdir/ignition-complete.target.requires/$unit"
    done
    # First boot of a disk only, not of a live system: FCOS pulls its uuid units and
    # coreos-boot-edit in through ignition-diskful.target.
    for unit in fcos-standin-uuid-boot.service fcos-standin-uuid-root.service fcos-standin-boot-edit.service; do
        inst_simple "$moddir/$unit" "$systemdsystemunitdir/$unit"
        mkdir -p "$initdir$systemdsystemunitdir/ignition-diskful.target.requires"
        ln_r "$systemdsystemunitdir/$unit" "$systemdsystemunitdir/ignition-diskful.target.requires/$unit"
    done
    inst_simple "$moddir/ignition-disks-settle.conf" "$systemdsystemunitdir/ignition-disks.service.d/10-fcos-standin.conf"
    inst_simple "$moddir/ignition-remount-sysroot-order.conf" "$systemdsystemunitdir/ignition-remount-sysroot.service.d/10-fcos-standin.conf"
}
