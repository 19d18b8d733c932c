# bench/part-realistic.sh — sourced by bench/run.sh (BENCH_ONLY=realistic).
# The most common real recipe shape, lading against docker's BuildKit (and
# buildah): a builder stage and a runtime stage on a Debian base, each
# running `apt-get install`, meeting at a COPY --from. Cold builds without
# cache, medians of REPS. BuildKit overlaps the two apt-get steps; lading
# must too, and be faster.
#
# Nothing is pulled: the Debian base is made by debootstrap (minbase,
# bookworm) from Debian's mirror once and cached in .bench/debian-base.tar,
# with the package lists and the .debs both stages install already in it,
# so the builds themselves read nothing from the network and apt-get
# spends its time unpacking and configuring. docker runs a private dockerd
# (its own data root, exec root and socket under the scratch directory,
# no iptables, no bridge), started here and stopped at the end.
# Writes $W/section-realistic.md and summary rows.

TARGET_BK_RATIO=0.8 # lading / BuildKit, at most
DEBIAN_BASE=$OUTDIR/debian-base.tar
DEBIAN_MIRROR=${BENCH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BUILD_PKGS="gcc libc6-dev"
RUNTIME_PKGS="python3-minimal ca-certificates"
DOCKER=/usr/bin/docker

need_deb() { # PACKAGE COMMAND
	command -v "$2" >/dev/null && return 0
	log "installing package '$1'"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null ||
		die "cannot install package '$1'"
}
need_deb debootstrap debootstrap
need_deb docker.io dockerd

# make_debian_base: the cached Debian root filesystem as a tar.
make_debian_base() {
	[ -s "$DEBIAN_BASE" ] && return 0
	local r=$OUTDIR/debian-rootfs.tmp
	rm -rf "$r"
	log "making the Debian base with debootstrap (once; cached in $DEBIAN_BASE)"
	debootstrap --variant=minbase bookworm "$r" "$DEBIAN_MIRROR" >"$W/logs/debootstrap" 2>&1 ||
		{ show_failure "$W/logs/debootstrap" debootstrap; die "cannot make the Debian base"; }
	cp /etc/resolv.conf "$r/etc/resolv.conf"
	# shellcheck disable=SC2086
	chroot "$r" /bin/sh -c "apt-get update -qq && apt-get install -y -qq --download-only --no-install-recommends $BUILD_PKGS $RUNTIME_PKGS" \
		>"$W/logs/debian-download" 2>&1 ||
		{ show_failure "$W/logs/debian-download" "apt-get --download-only"; die "cannot fill the Debian base's apt cache"; }
	: >"$r/etc/resolv.conf"
	tar --numeric-owner -C "$r" -cf "$DEBIAN_BASE.tmp" . && mv "$DEBIAN_BASE.tmp" "$DEBIAN_BASE"
	rm -rf "$r"
}
make_debian_base

# The private docker daemon.
DOCKER_DIR=$W/docker
DOCKER_PID=""
stop_docker() {
	[ -n "$DOCKER_PID" ] || return 0
	kill "$DOCKER_PID" 2>/dev/null || true
	wait "$DOCKER_PID" 2>/dev/null || true
	DOCKER_PID=""
}
mkdir -p "$DOCKER_DIR"
dockerd --iptables=false --bridge=none --data-root "$DOCKER_DIR/data" --exec-root "$DOCKER_DIR/exec" \
	-H "unix://$DOCKER_DIR/sock" --pidfile "$DOCKER_DIR/pid" >"$W/logs/dockerd" 2>&1 &
DOCKER_PID=$!
D=("$DOCKER" -H "unix://$DOCKER_DIR/sock")
for _ in $(seq 1 60); do "${D[@]}" version >/dev/null 2>&1 && break; sleep 0.5; done
"${D[@]}" version >/dev/null 2>&1 || { show_failure "$W/logs/dockerd" dockerd; die "dockerd did not start"; }
BK_VERSION=$("${D[@]}" version --format '{{.Server.Version}}' 2>/dev/null)

log "importing the Debian base into buildah, lading and docker"
mkdir -p "$W/debctx"
ln -f "$DEBIAN_BASE" "$W/debctx/rootfs.tar" 2>/dev/null || cp "$DEBIAN_BASE" "$W/debctx/rootfs.tar"
printf 'FROM scratch\nADD rootfs.tar /\nENV DEBIAN_FRONTEND=noninteractive\nCMD ["/bin/bash"]\n' >"$W/debian.recipe"
"${B[@]}" bud --isolation chroot -q -f "$W/debian.recipe" -t localhost/bench-debian "$W/debctx" >"$W/logs/debian-buildah" 2>&1 ||
	{ show_failure "$W/logs/debian-buildah" "buildah Debian base"; die "cannot build the Debian base"; }
"${B[@]}" push localhost/bench-debian "oci-archive:$W/debian.tar:latest" >"$W/logs/debian-push" 2>&1 &&
	"${B[@]}" push localhost/bench-debian "docker-archive:$W/debian-docker.tar:bench-debian:latest" >>"$W/logs/debian-push" 2>&1 ||
	{ show_failure "$W/logs/debian-push" "buildah push"; die "cannot export the Debian base"; }
"${D[@]}" load -i "$W/debian-docker.tar" >"$W/logs/debian-docker" 2>&1 ||
	{ show_failure "$W/logs/debian-docker" "docker load"; die "cannot load the Debian base into docker"; }
REAL_LADING=$LADING_OK
if [ "$REAL_LADING" = 1 ]; then
	printf 'FROM oci-archive:%s:latest\n' "$W/debian.tar" >"$W/debian-import.recipe"
	"${L[@]}" --progress quiet -t bench-debian:latest -f "$W/debian-import.recipe" "$W/empty" >"$W/logs/debian-lading" 2>&1 ||
		{ REAL_LADING=0; lading_failed "cannot import the Debian base: $(tail -n 1 "$W/logs/debian-lading")"; }
fi
rm -f "$W/debctx/rootfs.tar" "$W/debian-docker.tar"

# The recipe: two stages, each installing packages, meeting at COPY --from.
mkdir -p "$W/realctx"
printf '#include <stdio.h>\nint main(void) { puts("hello from the builder stage"); return 0; }\n' >"$W/realctx/hello.c"
real_recipe() { # BASE
	cat <<RECIPE
FROM $1 AS builder
RUN apt-get install -y --no-install-recommends $BUILD_PKGS
COPY hello.c /src/hello.c
RUN gcc -O2 -o /usr/local/bin/hello /src/hello.c

FROM $1
RUN apt-get install -y --no-install-recommends $RUNTIME_PKGS
COPY --from=builder /usr/local/bin/hello /usr/local/bin/hello
RUN hello && python3 -c 'print("runtime ok")'
RECIPE
}
real_recipe bench-debian:latest >"$W/real-lading.recipe"
real_recipe localhost/bench-debian >"$W/real-buildah.recipe"
real_recipe bench-debian:latest >"$W/real-docker.recipe"

real_lading() { CMD=("${L[@]}" --no-cache --progress "$1" -f "$W/real-lading.recipe" "$W/realctx"); }
real_buildah() { CMD=("${B[@]}" bud --isolation chroot --network host -q -t localhost/bench-real -f "$W/real-buildah.recipe" "$W/realctx"); }
real_docker() { CMD=(env DOCKER_BUILDKIT=1 "${D[@]}" build --no-cache --network host -q -t bench-real -f "$W/real-docker.recipe" "$W/realctx"); }

# Overlap, from lading's own events (json progress), checked once: did the
# runtime stage's apt-get start before the builder stage's ended?
REAL_OVERLAP="not checked"
if [ "$REAL_LADING" = 1 ]; then
	real_lading json
	if "${CMD[@]}" >"$W/logs/real-json" 2>&1; then
		REAL_OVERLAP=$(python3 - "$W/logs/real-json" <<'PY'
import json, sys
from datetime import datetime
def t(s):
    d, _, frac = s.rstrip("Z").partition(".")
    return datetime.fromisoformat(d).timestamp() + float("0." + (frac or "0"))
start, end, stage = {}, {}, {}
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("type") == "start" and "apt-get install" in e.get("text", ""):
        start[e["id"]], stage[e["id"]] = t(e["time"]), e.get("stage", "")
    elif e.get("type") == "done" and e.get("id") in start:
        end[e["id"]] = t(e["time"])
ids = sorted(start)
if len(ids) != 2 or any(i not in end for i in ids):
    print("apt-get steps not found in the events")
else:
    a, b = ids
    both = min(end[a], end[b]) - max(start[a], start[b])
    print("the two apt-get steps (%s, %s) ran %s (%.1f s together)" % (stage[a], stage[b] or "runtime",
          "at the same time" if both > 0 else "one after the other", max(both, 0)))
PY
)
	else
		show_failure "$W/logs/real-json" "lading realistic build"
		REAL_LADING=0
		lading_failed "the realistic two-stage build failed"
	fi
fi

# The floor: both stages' apt-get commands run directly in two chroots of
# the Debian base at the same time, with no builder at all (no container,
# no snapshot, no layer): what the work itself costs on this machine.
FLOOR_DIR=$W/floor
floor_run() {
	local r
	for r in a b; do
		rm -rf "$FLOOR_DIR/$r" && mkdir -p "$FLOOR_DIR/$r" && tar -C "$FLOOR_DIR/$r" -xf "$DEBIAN_BASE" &&
			mount --bind /proc "$FLOOR_DIR/$r/proc" || return 1
	done
	local t0 t1 rc=0
	t0=$(now_ns)
	chroot "$FLOOR_DIR/a" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $BUILD_PKGS >"$W/logs/floor-a" 2>&1 &
	local pa=$!
	chroot "$FLOOR_DIR/b" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $RUNTIME_PKGS >"$W/logs/floor-b" 2>&1 || rc=1
	wait "$pa" || rc=1
	t1=$(now_ns)
	umount "$FLOOR_DIR/a/proc" "$FLOOR_DIR/b/proc"
	rm -rf "$FLOOR_DIR"
	[ "$rc" = 0 ] || return 1
	MS[floor/real]="${MS[floor/real]:-} $(((t1 - t0) / 1000000))"
}

for rep in $(seq 1 "$REPS"); do
	log "realistic: the two apt-get commands in bare chroots, at once $rep/$REPS"
	# shellcheck disable=SC2086
	floor_run || log "  the bare-chroot floor failed (see $W/logs/floor-a, floor-b)"
	log "realistic two-stage build $rep/$REPS"
	if [ "$REAL_LADING" = 1 ]; then
		real_lading quiet
		timed lading/real "${CMD[@]}" || { REAL_LADING=0; lading_failed "the realistic build failed"; }
	fi
	real_docker
	timed buildkit/real "${CMD[@]}" || die "docker build (BuildKit) failed"
	real_buildah
	timed_retry buildah/real "${CMD[@]}" || die "buildah failed (realistic build)"
	buildah_prune
done
stop_docker

L_REAL=$(med lading/real)
K_REAL=$(med buildkit/real)
R_REAL=$(ratio2 "$L_REAL" "$K_REAL")
v_real=$(verdict "$R_REAL" le "$TARGET_BK_RATIO")
summary "realistic two-stage Debian build, cold (ms); BuildKit: $(or_na "$K_REAL")" "$(or_na "$L_REAL")" "$(or_na "$(med buildah/real)")" \
	"lading / BuildKit ≤ $TARGET_BK_RATIO" "$v_real ($R_REAL)"
{
	echo "## Realistic two-stage build, against BuildKit"
	echo
	echo "Debian bookworm minbase base (debootstrap), a builder stage (\`apt-get install $BUILD_PKGS\`, COPY, gcc)"
	echo "and a runtime stage (\`apt-get install $RUNTIME_PKGS\`, COPY --from=builder, RUN); the .debs are in the"
	echo "base's apt cache, so no step uses the network. Cold builds: lading --no-cache, docker $BK_VERSION"
	echo "(\`DOCKER_BUILDKIT=1 docker build --no-cache --network host\`, private dockerd), buildah bud without --layers."
	echo
	echo "| figure | lading | BuildKit | buildah | lading / BuildKit | lading / buildah |"
	echo "|---|---:|---:|---:|---:|---:|"
	echo "| cold two-stage build (ms, median of $REPS) | $(or_na "$L_REAL") | $(or_na "$K_REAL") | $(or_na "$(med buildah/real)") | $R_REAL | $(ratio2 "$L_REAL" "$(med buildah/real)") |"
	echo
	echo "- the floor: the two \`apt-get install\` commands alone, in two bare chroots of the base at once (no builder):"
	echo "  $(or_na "$(med floor/real)") ms (median of $REPS: $(raw floor/real)); lading / floor $(ratio2 "$L_REAL" "$(med floor/real)"),"
	echo "  BuildKit / floor $(ratio2 "$K_REAL" "$(med floor/real)")"
	echo "- target: lading / BuildKit ≤ $TARGET_BK_RATIO: $v_real"
	echo "- lading's events (json progress, once): $REAL_OVERLAP"
	echo
	busy_note lading/real buildkit/real buildah/real
	echo "Raw run times (ms) and the CPUs other processes kept busy:"
	echo
	for s in lading/real buildkit/real buildah/real; do
		echo "- $s: $(raw "$s"); other load $(rawother "$s")"
	done
	echo
} >"$W/section-realistic.md"
