#!/bin/busybox sh
# PID 1 of the guests `cargo xtask vm` boots (xtask/src/vm.rs owns the qemu
# side). It mounts the host root, shared read-only over 9p, under a tmpfs
# overlay, so the guest runs the host's binaries at the host's paths and
# writes only to its own memory; mounts bpffs, debugfs and tracefs; points
# module autoload at the guest kernel's modules; runs /run/vm/command.sh as
# root with stdout and stderr on the virtio ports "out" and "err"; writes its
# status to /run/vm/status (the host's run directory) and powers off.
# Messages of its own go to the console (the host keeps it in console.log).

/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys

fail() {
    echo "guest init failed: $*"
    poweroff -f
}

while read -r module; do
    insmod "/modules/$module" || fail "insmod $module failed"
done </modules/order

R=/newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 host /lower ||
    fail "cannot mount the host root (9p tag host)"
mount -t tmpfs -o mode=755 upper /upper
mkdir -p /upper/data /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work $R ||
    fail "cannot mount the overlay on the host root"
mount -t proc proc $R/proc
mount -t sysfs sys $R/sys
mount -t devtmpfs dev $R/dev
mount -t tmpfs -o mode=755 run $R/run
mkdir -p $R/run/vm $R/dev/pts $R/dev/shm $R/usr/lib/modules
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none run $R/run/vm ||
    fail "cannot mount the run directory (9p tag run)"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 modules $R/usr/lib/modules ||
    fail "cannot mount the kernel's modules (9p tag modules)"
mount -t devpts devpts $R/dev/pts
mount -t tmpfs shm $R/dev/shm
mount -t bpf bpf $R/sys/fs/bpf
mount -t debugfs debugfs $R/sys/kernel/debug
mount -t tracefs tracefs $R/sys/kernel/tracing

# The kernel runs its module loader in PID 1's first root (this initramfs),
# not in the chroot below: hand the request over to the host's modprobe there.
printf '#!/bin/sh\nexec chroot %s /sbin/modprobe "$@"\n' $R >/bin/modprobe-guest
chmod 755 /bin/modprobe-guest
echo /bin/modprobe-guest >/proc/sys/kernel/modprobe
# No udev: the NIC driver is loaded by hand.
chroot $R /sbin/modprobe -q virtio_net
hostname igmp-snoop-vm
ip link set lo up

# The ports are named by the host (virtserialport name=...).
port() {
    for dir in /sys/class/virtio-ports/*; do
        [ "$(cat "$dir/name" 2>/dev/null)" = "$1" ] && echo "/dev/${dir##*/}" && return
    done
}
tries=0
until [ -n "$(port out)" ] && [ -n "$(port err)" ]; do
    tries=$((tries + 1))
    [ $tries -gt 100 ] && fail "no virtio ports named out and err"
    sleep 0.05
done

echo "guest init: running the command at uptime $(cut -d' ' -f1 /proc/uptime) s"
chroot $R /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root TERM=dumb /bin/sh /run/vm/command.sh </dev/null >"$(port out)" 2>"$(port err)"
status=$?
echo "guest init: status $status at uptime $(cut -d' ' -f1 /proc/uptime) s"
echo $status >$R/run/vm/status
poweroff -f
