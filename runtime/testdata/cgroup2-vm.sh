#!/usr/bin/env bash
# runtime/testdata/cgroup2-vm.sh — `make test-cgroup2`: runs the runtime
# package's cgroup and limit tests on a pure cgroup v2 kernel, in a throwaway
# VM under qemu-system-x86_64 (software emulation, no KVM needed): Debian's
# kernel package, and an initramfs holding busybox, the runtime test binary,
# lading, newuidmap/newgidmap and the libraries they need. The VM's init
# mounts only the unified cgroup2 hierarchy, enables the memory, pids and cpu
# controllers below the root (as systemd does), runs the tests as root in the
# root cgroup, then a rootless `lading build --pids-limit` as user 1000 in a
# cgroup delegated to it (as systemd-run --user --scope -p Delegate=yes
# makes). Exits non-zero unless both pass.
#
# Environment: CGROUP2_TESTS (the -test.run pattern), CGROUP2_TIMEOUT
# (seconds the VM may run, default 900).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PATTERN=${CGROUP2_TESTS:-Cgroup|Limit|CreateV2|LeaveHome}
TIMEOUT=${CGROUP2_TIMEOUT:-900}
GO=${GO:-go}

need() { dpkg -s "$1" >/dev/null 2>&1 || missing="$missing $1"; }
missing=""
need qemu-system-x86; need busybox-static; need cpio
if [ -n "$missing" ]; then
	echo "installing:$missing" >&2
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

W=$(mktemp -d /tmp/lading-cgroup2-vm.XXXXXX)
trap 'rm -rf "$W"' EXIT

# The kernel: Debian's current one, from its package (not installed).
K=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
(cd "$W" && apt-get download "$K" >/dev/null)
dpkg-deb -x "$W"/linux-image-*.deb "$W/kpkg"
KERNEL=$(ls "$W"/kpkg/boot/vmlinuz-*)

# The initramfs.
R=$W/root
mkdir -p "$R"/{bin,proc,sys,dev,tmp,newroot,etc}
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
(cd "$REPO" && "$GO" test -c -o "$R/runtime.test" ./runtime)
(cd "$REPO" && "$GO" build -o "$R/lading" ./cmd/lading)
mkdir -p "$R/usr/bin"
cp -p /usr/bin/newuidmap /usr/bin/newgidmap "$R/usr/bin/"
for lib in $(ldd "$R/runtime.test" "$R/lading" /usr/bin/newuidmap 2>/dev/null | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | sort -u); do
	mkdir -p "$R$(dirname "$lib")"
	cp -L "$lib" "$R$lib"
done
printf 'root:x:0:0::/root:/bin/sh\nbuild:x:1000:1000::/tmp/home:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\nbuild:x:1000:\n' >"$R/etc/group"
echo build:100000:65536 >"$R/etc/subuid"
echo build:100000:65536 >"$R/etc/subgid"
mkdir -p "$R/ctx"
cp /bin/busybox "$R/ctx/busybox"
# 60 processes under a limit of 20: the step sees at most 20.
cat >"$R/ctx/Recipe" <<'EOR'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN echo "uid_map $(cat /proc/self/uid_map)"; (i=0; while [ $i -lt 60 ]; do sleep 1000 & i=$((i+1)); done) 2>/dev/null; set -- /proc/[0-9]*; echo "processes $#"
EOR

# Stage one: pivot_root cannot leave the initramfs, so copy it to a tmpfs
# and switch_root there.
cat >"$R/init" <<'EOI'
#!/bin/busybox sh
mount -t proc proc /proc
mount -t tmpfs -o size=1500m tmpfs /newroot
for d in bin lib lib64 usr etc runtime.test lading ctx init2; do [ -e /$d ] && cp -a /$d /newroot/; done
mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/tmp
umount /proc
exec switch_root /newroot /init2
EOI
cat >"$R/init2" <<EOI
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "+memory +pids +cpu" > /sys/fs/cgroup/cgroup.subtree_control
echo "cgroup mounts:"; grep cgroup /proc/mounts
echo "own cgroup: \$(cat /proc/self/cgroup)"
cd /tmp
/runtime.test -test.v -test.count=1 -test.timeout=$((TIMEOUT - 60))s -test.run '$PATTERN'
echo "LADING-CGROUP2-EXIT=\$?"
# Rootless, in a cgroup delegated to the user.
U=/sys/fs/cgroup/user-build
mkdir -p \$U /tmp/home
chown 1000:1000 \$U \$U/cgroup.procs \$U/cgroup.subtree_control \$U/cgroup.threads /tmp/home
chmod -R a+rX /ctx
sh -c "echo \\\$\\\$ > \$U/cgroup.procs; exec su -s /bin/sh build -c 'exec env HOME=/tmp/home XDG_RUNTIME_DIR=/tmp/home /lading build --progress plain --no-cache --pids-limit 20 /ctx'" 2>&1
echo "LADING-ROOTLESS-EXIT=\$?"
poweroff -f
EOI
chmod 755 "$R/init" "$R/init2"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$W/initrd.gz"

echo "booting $K under qemu (software emulation); tests: $PATTERN" >&2
timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -m 2048 -smp 2 -nographic -no-reboot \
	-kernel "$KERNEL" -initrd "$W/initrd.gz" \
	-append "console=ttyS0 panic=-1 quiet cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1" \
	</dev/null | tee "$W/console.log" | sed -n '/cgroup mounts:/,$p'
status=$(sed -n 's/.*LADING-CGROUP2-EXIT=\([0-9]*\).*/\1/p' "$W/console.log" | tail -n 1)
rootless=$(sed -n 's/.*LADING-ROOTLESS-EXIT=\([0-9]*\).*/\1/p' "$W/console.log" | tail -n 1)
procs=$(sed -n 's/.*processes \([0-9]*\).*/\1/p' "$W/console.log" | tail -n 1)
if [ -z "$status" ] || [ -z "$rootless" ]; then
	echo "the VM did not report a result" >&2
	exit 1
fi
if [ "$rootless" != 0 ] || [ -z "$procs" ] || [ "$procs" -gt 20 ]; then
	echo "rootless build with --pids-limit 20: exit $rootless, $procs processes seen" >&2
	exit 1
fi
echo "rootless build with --pids-limit 20: $procs processes seen" >&2
exit "$status"
