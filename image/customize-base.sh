#!/bin/sh
# mmdebstrap customize hook of the image's base stage (image/base.py): runs on the build host as
# root with the arm64 tree in $1; every command inside the tree runs through qemu-user binfmt.
#   $2  directory holding the arm64 wheels/sdists, requirements.txt and constraints.txt
#   $3  initramfs module list (image/initramfs-modules.txt)
#   $4  build-only Debian packages to purge afterwards (image/build-packages.txt)
set -eu
root=$1 wheels=$2 modules=$3 build_packages=$4
venv=/opt/handset
in_root() { chroot "$root" "$@"; }
phase() { echo "customize: $*"; }

mountpoint -q "$root/proc" || { mount -t proc proc "$root/proc"; trap 'umount "$root/proc"' EXIT; }

phase "Python packages into $venv (arm64 wheels; sdists compile here)"
rm -rf "$root/tmp/wheels" && cp -r "$wheels" "$root/tmp/wheels"
in_root python3 -m venv "$venv"
in_root "$venv/bin/python" -m pip install -q --no-index --no-cache-dir --disable-pip-version-check \
    --find-links /tmp/wheels -c /tmp/wheels/constraints.txt -r /tmp/wheels/requirements.txt
in_root "$venv/bin/python" -m pip freeze --all > "$root$venv/freeze.txt"
rm -rf "$root/tmp/wheels"

phase "purge the compilers"
# shellcheck disable=SC2046
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q --autoremove \
    $(sed 's/#.*//' "$build_packages") > /dev/null

phase "initramfs (MODULES=list)"
kver=$(ls "$root/lib/modules")
[ "$(echo "$kver" | wc -w)" = 1 ] || { echo "expected one kernel, found: $kver" >&2; exit 1; }
rm -f "$root/etc/initramfs-tools/modules.d/"* 2>/dev/null || true
sed 's/#.*//; /^ *$/d' "$modules" > "$root/etc/initramfs-tools/modules"
for module in $(cat "$root/etc/initramfs-tools/modules"); do
    in_root modinfo -k "$kver" "$module" > /dev/null || {
        echo "initramfs module '$module' is not in kernel $kver (image/initramfs-modules.txt)" >&2
        exit 1
    }
done
cat > "$root/etc/initramfs-tools/conf.d/handset-image" <<CONF
MODULES=list
COMPRESS=zstd
FSTYPE=ext4
CONF
# One cmdline for Pi 3, Pi 4 and Zero 2 W; the mini UART (ttyS1) is the serial console.
cat > "$root/etc/default/raspi-firmware" <<CONF
ROOTPART=LABEL=RASPIROOT
CMA=0
CONSOLES="tty0 ttyS1,115200"
KERNEL_ARCH=arm64
CONF
cat > "$root/etc/default/raspi-firmware-custom" <<CONF
[pi02]
device_tree=bcm2837-rpi-zero-2-w.dtb
CONF
rm -f "$root/usr/sbin/update-initramfs"
in_root dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
in_root update-initramfs -c -k "$kver"
in_root /etc/kernel/postinst.d/z50-raspi-firmware "$kver"
for needed in "vmlinuz-$kver" "initrd.img-$kver" cmdline.txt config.txt bootcode.bin start.elf \
    start4.elf bcm2837-rpi-3-b.dtb bcm2711-rpi-4-b.dtb bcm2837-rpi-zero-2-w.dtb; do
    [ -e "$root/boot/firmware/$needed" ] || {
        echo "the boot partition lacks $needed; it has: $(ls "$root/boot/firmware" | tr '\n' ' ')" >&2
        exit 1
    }
done

phase "no secrets or passwords in the image"
rm -f "$root"/etc/ssh/ssh_host_*
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
if awk -F: '$2 !~ /^[!*]*$/ {print $1; bad=1} END {exit !bad}' \
    "$root/etc/shadow"; then
    echo "an account in /etc/shadow has a password" >&2; exit 1
fi

phase "clean apt caches"
in_root apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log
