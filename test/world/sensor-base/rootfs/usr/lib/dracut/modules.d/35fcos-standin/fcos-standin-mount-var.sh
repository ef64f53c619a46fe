#!/bin/bash
# First boot: the deployment's stateroot /var bound at /sysroot/var, so that Ignition mounts
# /var and the data filesystems and writes its files where the booted system has them (ostree
# itself mounts /var only after switch-root, with var.mount). Found from the ostree= argument:
# /sysroot/<ostree=> links to the deployment, whose stateroot var is ../../var.
set -euo pipefail
case "${1:-}" in
mount)
    target=
    for arg in $(</proc/cmdline); do
        case "$arg" in ostree=*) target=${arg#ostree=} ;; esac
    done
    [ -n "$target" ] || { echo "fcos-standin-mount-var: no ostree= kernel argument" >&2; exit 1; }
    [ -L "/sysroot/sysroot$target" ] || { echo "fcos-standin-mount-var: /sysroot/sysroot$target is not a deployment link" >&2; exit 1; }
    var=$(realpath "/sysroot/sysroot$target/../../var")
    mount --bind "$var" /sysroot/var
    echo "fcos-standin-mount-var: $var on /sysroot/var"
    ;;
umount)
    # What Ignition mounted below it is gone by now (its umount stage runs first).
    if grep -q ' /sysroot/var ' /proc/self/mounts; then
        umount /sysroot/var
        echo "fcos-standin-mount-var: /sysroot/var unmounted"
    fi
    ;;
*)
    echo "usage: fcos-standin-mount-var mount|umount" >&2
    exit 64
    ;;
esac
