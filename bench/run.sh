#!/usr/bin/env bash
# bench/run.sh — lading and buildah side by side. See bench/README.md.
#
# Measures, for each tool, in one run on the same machine, the same base image
# and the same recipes (BENCH_ONLY picks the parts, comma separated):
#   run       per-RUN-step overhead: (T(N steps) - T(0 steps)) / N, no cache,
#             peak RSS of the N-step build, importing the base (bench/part-run.sh)
#   cache     build cache: no-op rebuild of a 30-step recipe over a 20,000-file
#             150 MB context, and a rebuild after one small file changed; peak
#             RSS of the no-op rebuild (bench/part-cache.sh)
#   parallel  cold build of 4 independent CPU-bound stages, 1 job vs 2 jobs
#             (bench/part-parallel.sh)
#   export    writing a 500 MB image as an OCI archive; the cold build of that
#             image and its peak RSS (bench/part-export.sh)
#   pull      pulling a 300 MB, 6-layer image from a local registry (Debian's
#             docker-registry): lading pull vs skopeo copy, lading pull +
#             unpack (+ RUN true) vs buildah pull; peak RSS (bench/part-pull.sh)
#   rootless  lading rootless beside lading as root: RUN per-step overhead and
#             no-op rebuild (bench/part-rootless.sh)
#   realistic a two-stage Debian recipe (apt-get install in both stages, then
#             COPY --from), cold, against docker's BuildKit (a private dockerd
#             this script starts and stops) and buildah (bench/part-realistic.sh)
#   user      lading's end-to-end figures: per RUN step with a fresh --root to
#             an OCI tarball, no-op rebuild of a 10,000-file context
#             (bench/part-user.sh)
#   platforms lading only: one --platform linux/amd64,linux/arm64 build against
#             two one-platform builds, arm64 RUN under QEMU (bench/part-platforms.sh)
# Prints markdown tables on stdout and writes them to .bench/results.md.
#
# Environment knobs:
#   BENCH_ONLY=run,cache,parallel,export,pull,rootless,realistic,user,platforms   parts to run
#   BENCH_REPS=3              runs per figure (median is reported)
#   BENCH_FAST_REPS=5         runs per figure of the fast ones (no-op rebuild)
#   BENCH_STEPS=50            RUN steps in the big recipe of "run"
#   BENCH_BUILDAH_NOLAYERS=1  "run": also measure buildah without --layers (0 to skip)
#   BENCH_STAGE_SECONDS=1.5   "parallel": CPU time of one stage's loop
#   BENCH_EXPORT_MB=500       "export": size of the image's data
#   BENCH_PULL_LAYER_MB=50    "pull": size of each of the image's 6 layers
#   BENCH_TMPDIR=/tmp         where the scratch directory goes
#   LADING=bin/lading         the lading binary
#   BUILDAH=buildah           the buildah binary
#
# Exit status: 0 when buildah's half ran (whether or not lading could),
# non-zero when buildah or the setup failed.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/bench
ONLY=${BENCH_ONLY:-run,cache,parallel,export,pull,rootless,realistic,user,platforms}
REPS=${BENCH_REPS:-3}
FAST_REPS=${BENCH_FAST_REPS:-5}
LADING=${LADING:-$REPO/bin/lading}
BUILDAH=${BUILDAH:-buildah}
OUTDIR=$REPO/.bench
RESULTS=$OUTDIR/results.md

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "FATAL: $*"; exit 2; }

selected() { [[ ",$ONLY," == *",$1,"* ]]; }
for p in ${ONLY//,/ }; do
	case $p in
	run | cache | parallel | export | pull | rootless | realistic | user | platforms) ;;
	*) die "BENCH_ONLY: unknown part '$p' (known: run, cache, parallel, export, pull, rootless, realistic, user, platforms)" ;;
	esac
done

# ---------------------------------------------------------------- prerequisites
[ "$(id -u)" = 0 ] || die "run as root (both tools build as root here)"
command -v "$BUILDAH" >/dev/null || die "buildah not found (make deps installs it)"
[ -x /bin/busybox ] || die "/bin/busybox missing: apt-get install -y busybox-static (make deps)"
if [ ! -x /usr/bin/time ]; then
	log "installing package 'time' (for peak RSS)"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null ||
		die "cannot install package 'time'"
fi
if selected cache || selected export || selected pull || selected user; then
	command -v go >/dev/null || die "go not found (it compiles bench/gen.go, the context generator)"
fi

W=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/lading-bench.XXXXXX")
B=("$BUILDAH" --root "$W/buildah/root" --runroot "$W/buildah/runroot" --storage-driver overlay)
LROOT=$W/lading-root

# umount_under DIR: unmounts everything mounted at or under DIR, deepest first.
umount_under() {
	awk -v w="$1" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do
			umount -R "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		done
}

# The registry of the "pull" part (bench/part-pull.sh starts it).
REG_PID=""
stop_registry() {
	[ -n "$REG_PID" ] || return 0
	kill "$REG_PID" 2>/dev/null || true
	wait "$REG_PID" 2>/dev/null || true
	REG_PID=""
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	stop_registry
	! declare -F stop_docker >/dev/null || stop_docker
	if [ -d "$W/buildah" ]; then
		"${B[@]}" rm --all >/dev/null 2>&1
		"${B[@]}" rmi --all --force >/dev/null 2>&1
	fi
	# Anything still mounted under $W (buildah's overlay leftovers).
	umount_under "$W"
	# Keep the build logs (small) for a look after the run.
	if [ -d "$W/logs" ]; then
		rm -rf "$OUTDIR/logs" && cp -r "$W/logs" "$OUTDIR/logs"
	fi
	rm -rf "$W"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
now_ns() { date +%s%N; }

median() { # numbers on the command line -> median (lower middle for even counts)
	printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# cpu_busy -> jiffies (1/100 s) all CPUs spent busy since boot (not idle, not iowait).
cpu_busy() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# run_timed LOG CMD... : runs CMD once under /usr/bin/time; sets LAST_MS,
# LAST_RSS_KB and LAST_OTHER (CPUs that other processes kept busy during the
# run: all busy CPU time minus CMD's own user + system time, over the wall
# time); returns CMD's status (stdout and stderr go to LOG).
run_timed() {
	local logf=$1; shift
	local t0 t1 c0 c1 rc=0 own
	# Dirty pages of the run before (the other tool's, often) are written
	# back first: on ext4 an fsync of the next run otherwise waits for them.
	sync
	c0=$(cpu_busy)
	t0=$(now_ns)
	/usr/bin/time -f '%M %U %S' -o "$W/rss" "$@" >"$logf" 2>&1 || rc=$?
	t1=$(now_ns)
	c1=$(cpu_busy)
	LAST_MS=$(( (t1 - t0) / 1000000 ))
	own=$(tail -n 1 "$W/rss" 2>/dev/null || echo 0 0 0)
	LAST_RSS_KB=${own%% *}
	[[ $LAST_RSS_KB =~ ^[0-9]+$ ]] || LAST_RSS_KB=0
	# /proc/stat counts in 10 ms ticks: too coarse for runs under 0.5 s.
	LAST_OTHER=$(awk -v c="$((c1 - c0))" -v ms="$LAST_MS" -v own="$own" 'BEGIN {
		if (ms < 500) { print "~"; exit }
		split(own, a, " "); o = (c / 100 - a[2] - a[3]) / (ms / 1000)
		printf "%.1f", (o > 0 ? o : 0) }')
	return "$rc"
}

show_failure() { # LOG WHAT
	log "$2 failed; last lines of its output:"
	tail -n 15 "$1" | sed 's/^/    /' >&2
}

# Each series keeps its run times (ms), peak RSS (KiB) and the other
# processes' load (CPUs), space separated.
declare -A MS RSS OTHER

# timed SERIES CMD... : one timed run recorded under SERIES; sets LAST_LOG;
# non-zero (after showing the output's tail) when CMD fails.
timed() {
	local series=$1; shift
	LAST_LOG="$W/logs/${series//\//_}.$(now_ns)"
	if run_timed "$LAST_LOG" "$@"; then
		MS[$series]="${MS[$series]:-} $LAST_MS"
		RSS[$series]="${RSS[$series]:-} $LAST_RSS_KB"
		OTHER[$series]="${OTHER[$series]:-} $LAST_OTHER"
		log "  $series: ${LAST_MS} ms, peak RSS ${LAST_RSS_KB} KiB, other load ${LAST_OTHER} CPUs"
	else
		show_failure "$LAST_LOG" "$series"
		return 1
	fi
}

# timed_retry: timed, run once more when the first try fails. For buildah,
# whose chroot isolation fails now and then on this host ("sealing memfd
# copy: Device or resource busy"); a failed try records no time.
timed_retry() {
	timed "$@" && return 0
	log "  $1 failed; one more try"
	timed "$@"
}

med() { # SERIES -> median ms, or empty
	[ -n "${MS[$1]:-}" ] || return 0
	# shellcheck disable=SC2086
	median ${MS[$1]}
}
medrss() { # SERIES -> median peak RSS in MiB (one decimal), or empty
	[ -n "${RSS[$1]:-}" ] || return 0
	# shellcheck disable=SC2086
	awk -v k="$(median ${RSS[$1]})" 'BEGIN { printf "%.1f", k / 1024 }'
}
ratio() { # A B -> A/B (one decimal), or "n/a"
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 <= 0) print "n/a"; else printf "%.1f", a / b }'
}
ratio2() { # A B -> A/B (two decimals), or "n/a"
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 <= 0) print "n/a"; else printf "%.2f", a / b }'
}
# verdict X OP T -> PASS / FAIL / "not measured"; OP is le, lt or ge.
verdict() {
	awk -v x="$1" -v op="$2" -v t="$3" 'BEGIN {
		if (x == "" || x == "n/a") { print "not measured"; exit }
		ok = (op == "le") ? (x + 0 <= t + 0) : (op == "lt") ? (x + 0 < t + 0) : (x + 0 >= t + 0)
		print ok ? "PASS" : "FAIL" }'
}
or_na() { [ -n "$1" ] && printf '%s' "$1" || printf 'n/a'; }
raw() { [ -n "${MS[$1]:-}" ] && printf '%s' "${MS[$1]# }" || printf '-'; }
rawother() { [ -n "${OTHER[$1]:-}" ] && printf '%s' "${OTHER[$1]# }" || printf '-'; }
# busy_note SERIES... -> a warning when other processes loaded the machine
# (more than 0.3 CPU on average) during any run of the series that lasted
# 0.5 s or more ("~": too short to tell).
busy_note() {
	local all="" s
	for s in "$@"; do all="$all ${OTHER[$s]:-}"; done
	# shellcheck disable=SC2086
	printf '%s\n' $all | awk -v n="$NCPU" '$1 != "~" && $1 > 0.3 { b++; if ($1 > m) m = $1 } END {
		if (b) printf "- **the machine was busy**: other processes used up to %.1f of the %d CPUs during %d of these runs; the times are inflated and noisy\n\n", m, n, b }'
}
rawrss() { # SERIES -> peak RSS of each run, MiB
	[ -n "${RSS[$1]:-}" ] || { printf -- '-'; return; }
	# shellcheck disable=SC2086
	printf '%s\n' ${RSS[$1]} | awk '{ printf "%s%.1f", (NR > 1 ? " " : ""), $1 / 1024 }'
}

# Between runs of no-cache builds: drop buildah's untagged images so its store
# stays the same size. Not used where buildah's layer cache is measured.
buildah_prune() { "${B[@]}" rmi --prune --force >/dev/null 2>&1 || true; }

# lading's health: LADING_OK=0 stops measuring lading in the parts that follow;
# each part says in its section why lading is missing.
lading_failed() { # WHY
	LADING_OK=0
	LADING_WHY=$1
	log "LADING NOT MEASURED from here on: $1"
}

# Summary rows, one per target: | figure | lading | buildah | target | verdict |
SUMMARY=()
summary() { SUMMARY+=("| $1 | $2 | $3 | $4 | $5 |"); }

# ---------------------------------------------------------------- machine + versions
mkdir -p "$W/empty" "$W/logs" "$OUTDIR"
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
FS=$(df -T "$W" | awk 'NR == 2 { print $2 }')
NCPU=$(nproc)
BUILDAH_VERSION=$("$BUILDAH" --version 2>&1 | head -n 1)
LADING_OK=1
LADING_WHY=""
if [ ! -x "$LADING" ]; then
	LADING_OK=0
	LADING_WHY="binary $LADING not found (make build)"
	LADING_VERSION="(missing)"
else
	LADING_VERSION=$("$LADING" version 2>&1 | head -n 1 || true)
fi
# lading with the scratch store; every lading command of the benchmark uses it.
L=("$LADING" build --root "$LROOT")

log "scratch dir $W ($FS); parts: $ONLY; $REPS runs per figure ($FAST_REPS for the fast ones)"
log "buildah: $BUILDAH_VERSION"
log "lading:  $LADING_VERSION"

# ---------------------------------------------------------------- base image
# A busybox root filesystem from Debian's busybox-static, built into an image by
# buildah (FROM scratch + COPY), exported as an OCI archive, then imported by
# each tool into its own store. Nothing is pulled.
CTX=$W/ctx
mkdir -p "$CTX/rootfs/bin" "$CTX/rootfs/etc" "$CTX/rootfs/tmp" "$CTX/rootfs/root"
cp /bin/busybox "$CTX/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do
	[ "$a" = busybox ] || ln -sf busybox "$CTX/rootfs/bin/$a"
done
chmod 1777 "$CTX/rootfs/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$CTX/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$CTX/rootfs/etc/group"

log "building the busybox base with buildah"
printf 'FROM scratch\nCOPY rootfs/ /\n' >"$W/base.recipe"
if ! "${B[@]}" bud --isolation chroot --layers -q -f "$W/base.recipe" -t localhost/bench-busybox "$CTX" \
	>"$W/logs/base-buildah" 2>&1; then
	show_failure "$W/logs/base-buildah" "buildah base build"
	die "cannot build the base image with buildah"
fi
if ! "${B[@]}" push localhost/bench-busybox "oci-archive:$W/busybox.tar:latest" >"$W/logs/push" 2>&1; then
	show_failure "$W/logs/push" "buildah push"
	die "cannot export the base image"
fi

if [ "$LADING_OK" = 1 ]; then
	log "importing the base into lading's store"
	printf 'FROM oci-archive:%s:latest\n' "$W/busybox.tar" >"$W/base-import.recipe"
	if ! "${L[@]}" --progress quiet -t bench-busybox:latest \
		-f "$W/base-import.recipe" "$W/empty" >"$W/logs/base-lading" 2>&1; then
		show_failure "$W/logs/base-lading" "lading import of the base (FROM oci-archive)"
		lading_failed "cannot import the base: $(tail -n 1 "$W/logs/base-lading")"
	fi
fi

# Smoke test: lading must RUN, and the result must be right.
if [ "$LADING_OK" = 1 ]; then
	printf 'FROM bench-busybox:latest\nRUN echo ok > /smoke && test "$(cat /smoke)" = ok\n' >"$W/smoke.recipe"
	if ! "${L[@]}" --no-cache --progress quiet -f "$W/smoke.recipe" "$W/empty" \
		>"$W/logs/smoke" 2>&1; then
		show_failure "$W/logs/smoke" "lading smoke test (one RUN step)"
		lading_failed "a one-step RUN build fails: $(tail -n 1 "$W/logs/smoke")"
	fi
fi
[ "$LADING_OK" = 1 ] || log "continuing with buildah only"

# The context generator (deterministic data: same files on every run).
if selected cache || selected export || selected pull || selected user; then
	(cd "$REPO" && go build -o "$W/gen" bench/gen.go) || die "cannot compile bench/gen.go"
fi

# ---------------------------------------------------------------- parts
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(now_ns)
for part in run cache parallel export pull rootless realistic user platforms; do
	selected "$part" || continue
	log "=== part: $part"
	part_start=$(now_ns)
	# shellcheck source=/dev/null
	. "$BENCH/part-$part.sh"
	log "=== part $part took $(( ($(now_ns) - part_start) / 1000000000 ))s"
done
ELAPSED_S=$(( ($(now_ns) - START) / 1000000000 ))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
{
	echo "# lading vs buildah"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), lading commit $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
	echo "- machine: $CPU, $NCPU CPUs, $MEM, kernel $(uname -r), scratch on $FS"
	echo "- load average before / after measuring: $LOAD_START / $LOAD_END (other work on the machine skews the figures)"
	echo "- lading: $LADING_VERSION"
	echo "- buildah: $BUILDAH_VERSION (--isolation chroot, overlay storage)"
	echo "- parts: $ONLY; ${ELAPSED_S}s measuring; medians of $REPS runs ($FAST_REPS for the no-op rebuild)"
	echo
	if [ "$LADING_OK" = 0 ]; then
		echo "**lading not measured (in part or at all): $LADING_WHY**"
		echo
	fi
	if [ "${#SUMMARY[@]}" -gt 0 ]; then
		echo "## Targets"
		echo
		echo "| figure | lading | buildah | target | verdict |"
		echo "|---|---:|---:|---|---|"
		printf '%s\n' "${SUMMARY[@]}"
		echo
	fi
	for part in run cache parallel export pull rootless realistic user platforms; do
		[ -f "$W/section-$part.md" ] && cat "$W/section-$part.md"
	done
} >"$W/results.md"

cp "$W/results.md" "$RESULTS"
echo
cat "$W/results.md"
echo
log "written to $RESULTS"
