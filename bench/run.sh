#!/usr/bin/env bash
# bench/run.sh — lading and buildah side by side (issue "RUN in containers").
#
# Measures, for each tool, in one run on the same machine, the same base image
# and the same recipes:
#   1. per-RUN-step overhead: (T(N steps) - T(0 steps)) / N, medians of REPS runs
#   2. peak RSS of the N-step build (/usr/bin/time "Maximum resident set size")
#   3. (for information) importing the base from an OCI archive
# Prints a markdown table on stdout and writes it to .bench/results.md.
# See bench/README.md.
#
# Environment knobs:
#   BENCH_STEPS=50            RUN steps in the big recipe
#   BENCH_REPS=3              runs per figure (median is reported)
#   BENCH_TMPDIR=/tmp         where the scratch directory goes
#   BENCH_BUILDAH_NOLAYERS=1  also measure buildah without --layers (0 to skip)
#   LADING=bin/lading         the lading binary
#   BUILDAH=buildah           the buildah binary
#
# Exit status: 0 when buildah's half ran (whether or not lading could),
# non-zero when buildah or the setup failed.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STEPS=${BENCH_STEPS:-50}
REPS=${BENCH_REPS:-3}
NOLAYERS=${BENCH_BUILDAH_NOLAYERS:-1}
LADING=${LADING:-$REPO/bin/lading}
BUILDAH=${BUILDAH:-buildah}
OUTDIR=$REPO/.bench
RESULTS=$OUTDIR/results.md

# Targets from the issue.
TARGET_LADING_MS=25 # lading per-step overhead, ms, at most
TARGET_RATIO=5      # buildah/lading per-step overhead, at least

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "FATAL: $*"; exit 2; }

# ---------------------------------------------------------------- prerequisites
[ "$(id -u)" = 0 ] || die "run as root (both tools build as root here)"
command -v "$BUILDAH" >/dev/null || die "buildah not found (make deps installs it)"
[ -x /bin/busybox ] || die "/bin/busybox missing: apt-get install -y busybox-static (make deps)"
if [ ! -x /usr/bin/time ]; then
	log "installing package 'time' (for peak RSS)"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null ||
		die "cannot install package 'time'"
fi

W=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/lading-bench.XXXXXX")
B=("$BUILDAH" --root "$W/buildah/root" --runroot "$W/buildah/runroot" --storage-driver overlay)
LROOT=$W/lading-root

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [ -d "$W/buildah" ]; then
		"${B[@]}" rm --all >/dev/null 2>&1
		"${B[@]}" rmi --all --force >/dev/null 2>&1
	fi
	# Anything still mounted under $W (buildah's overlay leftovers), deepest first.
	awk -v w="$W" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do
			umount -R "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		done
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

# run_timed LOG CMD... : runs CMD once under /usr/bin/time; sets LAST_MS and
# LAST_RSS_KB; returns CMD's status (output goes to LOG).
run_timed() {
	local logf=$1; shift
	local t0 t1 rc=0
	t0=$(now_ns)
	/usr/bin/time -f '%M' -o "$W/rss" "$@" >"$logf" 2>&1 || rc=$?
	t1=$(now_ns)
	LAST_MS=$(( (t1 - t0) / 1000000 ))
	LAST_RSS_KB=$(tail -n 1 "$W/rss" 2>/dev/null || echo 0)
	[[ $LAST_RSS_KB =~ ^[0-9]+$ ]] || LAST_RSS_KB=0
	return "$rc"
}

show_failure() { # LOG WHAT
	log "$2 failed; last lines of its output:"
	tail -n 15 "$1" | sed 's/^/    /' >&2
}

# cmd_for KIND RECIPE: sets CMD to the build command. The context is an empty
# directory for both tools; the recipe comes from a file.
cmd_for() {
	case $1 in
	lading) CMD=("$LADING" build --root "$LROOT" --progress quiet -f "$2" "$W/empty") ;;
	buildah) CMD=("${B[@]}" bud --isolation chroot --layers --no-cache -q -f "$2" "$W/empty") ;;
	buildah-nolayers) CMD=("${B[@]}" bud --isolation chroot --layers=false --no-cache -q -f "$2" "$W/empty") ;;
	*) die "cmd_for: $1" ;;
	esac
}

# Between runs: drop buildah's untagged images so its store stays the same size.
buildah_prune() { "${B[@]}" rmi --prune --force >/dev/null 2>&1 || true; }

# ---------------------------------------------------------------- machine + versions
mkdir -p "$W/empty" "$W/logs" "$OUTDIR"
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
FS=$(df -T "$W" | awk 'NR == 2 { print $2 }')
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

log "scratch dir $W ($FS); $STEPS steps, $REPS runs each"
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
	if ! "$LADING" build --root "$LROOT" --progress quiet -t bench-busybox:latest \
		-f "$W/base-import.recipe" "$W/empty" >"$W/logs/base-lading" 2>&1; then
		show_failure "$W/logs/base-lading" "lading import of the base (FROM oci-archive)"
		LADING_OK=0
		LADING_WHY="cannot import the base: $(tail -n 1 "$W/logs/base-lading")"
	fi
fi

# ---------------------------------------------------------------- recipes
# rN: N RUN steps; r0: the same base and one metadata-only step.
{
	echo "FROM bench-busybox:latest"
	for i in $(seq 1 "$STEPS"); do echo "RUN echo $i > /f$i"; done
} >"$W/lading-N.recipe"
printf 'FROM bench-busybox:latest\nENV X=1\n' >"$W/lading-0.recipe"
sed 's|^FROM .*|FROM localhost/bench-busybox|' "$W/lading-N.recipe" >"$W/buildah-N.recipe"
sed 's|^FROM .*|FROM localhost/bench-busybox|' "$W/lading-0.recipe" >"$W/buildah-0.recipe"
# Import variant: both start from the archive.
printf 'FROM oci-archive:%s:latest\nENV X=1\n' "$W/busybox.tar" >"$W/import-0.recipe"

# Smoke test: lading must RUN, and the result must be right.
if [ "$LADING_OK" = 1 ]; then
	printf 'FROM bench-busybox:latest\nRUN echo ok > /smoke && test "$(cat /smoke)" = ok\n' >"$W/smoke.recipe"
	if ! "$LADING" build --root "$LROOT" --progress quiet -f "$W/smoke.recipe" "$W/empty" \
		>"$W/logs/smoke" 2>&1; then
		show_failure "$W/logs/smoke" "lading smoke test (one RUN step)"
		LADING_OK=0
		LADING_WHY="a one-step RUN build fails: $(tail -n 1 "$W/logs/smoke")"
	fi
fi
if [ "$LADING_OK" = 0 ]; then
	log "LADING NOT MEASURED: $LADING_WHY"
	log "continuing with buildah only"
fi

# ---------------------------------------------------------------- measurements
# Each series keeps its run times (ms) and peak RSS (KiB), space separated.
declare -A MS RSS

# measure SERIES KIND RECIPE [ROOT-OVERRIDE]: one timed build; non-zero on failure.
measure() {
	local series=$1 kind=$2 recipe=$3 logf
	logf="$W/logs/${series//\//_}.$(now_ns)"
	cmd_for "$kind" "$recipe"
	if run_timed "$logf" "${CMD[@]}"; then
		MS[$series]="${MS[$series]:-} $LAST_MS"
		RSS[$series]="${RSS[$series]:-} $LAST_RSS_KB"
		log "  $series: ${LAST_MS} ms, peak RSS ${LAST_RSS_KB} KiB"
	else
		show_failure "$logf" "$series"
		return 1
	fi
}

lading_measure() { # SERIES RECIPE
	[ "$LADING_OK" = 1 ] || return 0
	if ! measure "$1" lading "$2"; then
		LADING_OK=0
		LADING_WHY="the $1 build failed (see above)"
		log "LADING NOT MEASURED from here on: $LADING_WHY"
	fi
}
buildah_measure() { # SERIES KIND RECIPE
	measure "$1" "$2" "$3" || die "buildah failed ($1)"
	buildah_prune
}

# import_measure TOOL: FROM oci-archive into a store that has never seen the base.
import_measure() {
	local tool=$1 saveB=("${B[@]}") saveL=$LROOT d
	d=$(mktemp -d "$W/import.XXXX")
	if [ "$tool" = lading ]; then
		LROOT=$d/lading-root
		lading_measure lading/import "$W/import-0.recipe"
	else
		B=("$BUILDAH" --root "$d/root" --runroot "$d/runroot" --storage-driver overlay)
		buildah_measure buildah/import buildah "$W/import-0.recipe"
		"${B[@]}" rmi --all --force >/dev/null 2>&1 || true
	fi
	B=("${saveB[@]}")
	LROOT=$saveL
	rm -rf "$d" 2>/dev/null || true
}

log "warm-up (not counted)"
cmd_for buildah "$W/buildah-0.recipe"
"${CMD[@]}" >/dev/null 2>&1 || true
buildah_prune
if [ "$LADING_OK" = 1 ]; then
	cmd_for lading "$W/lading-0.recipe"
	"${CMD[@]}" >/dev/null 2>&1 || true
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(now_ns)
for rep in $(seq 1 "$REPS"); do
	log "run $rep/$REPS"
	lading_measure lading/0 "$W/lading-0.recipe"
	lading_measure lading/N "$W/lading-N.recipe"
	buildah_measure buildah/0 buildah "$W/buildah-0.recipe"
	buildah_measure buildah/N buildah "$W/buildah-N.recipe"
	if [ "$NOLAYERS" = 1 ]; then
		buildah_measure buildah-nolayers/0 buildah-nolayers "$W/buildah-0.recipe"
		buildah_measure buildah-nolayers/N buildah-nolayers "$W/buildah-N.recipe"
	fi
	import_measure lading
	import_measure buildah
done
ELAPSED_S=$(( ($(now_ns) - START) / 1000000000 ))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
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
perstep() { # TOOL -> per-step overhead ms (one decimal), or empty
	local t0 tn
	t0=$(med "$1/0"); tn=$(med "$1/N")
	[ -n "$t0" ] && [ -n "$tn" ] || return 0
	awk -v a="$t0" -v b="$tn" -v n="$STEPS" 'BEGIN { printf "%.1f", (b - a) / n }'
}
ratio() { # A B -> A/B (one decimal), or "n/a"
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 <= 0) print "n/a"; else printf "%.1f", a / b }'
}
or_na() { [ -n "$1" ] && printf '%s' "$1" || printf 'n/a'; }
raw() { [ -n "${MS[$1]:-}" ] && printf '%s' "${MS[$1]# }" || printf '-'; }

L_STEP=$(perstep lading)
B_STEP=$(perstep buildah)
NL_STEP=$(perstep buildah-nolayers)
R_STEP=$(ratio "$B_STEP" "$L_STEP")
R_NL=$(ratio "$NL_STEP" "$L_STEP")
R_RSS=$(ratio "$(medrss buildah/N)" "$(medrss lading/N)")

verdict_lading=$(awk -v x="$L_STEP" -v t="$TARGET_LADING_MS" 'BEGIN { if (x == "") print "not measured"; else if (x + 0 <= t) print "PASS"; else print "FAIL" }')
verdict_ratio=$(awk -v r="$R_STEP" -v t="$TARGET_RATIO" 'BEGIN { if (r == "n/a") print "not measured"; else if (r + 0 >= t) print "PASS"; else print "FAIL" }')

row() { # LABEL SERIES-PREFIX TARGET
	printf '| %s | %s | %s | %s | %s | %s |\n' "$1" \
		"$(or_na "$(med "$2/0")")" "$(or_na "$(med "$2/N")")" "$(or_na "$(perstep "$2")")" \
		"$(or_na "$(medrss "$2/N")")" "$3"
}

{
	echo "# lading vs buildah: RUN per-step overhead"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), lading commit $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
	echo "- machine: $CPU, $(nproc) CPUs, $MEM, kernel $(uname -r), scratch on $FS"
	echo "- load average before / after measuring: $LOAD_START / $LOAD_END (other work on the machine skews the figures)"
	echo "- lading: $LADING_VERSION"
	echo "- buildah: $BUILDAH_VERSION (--isolation chroot, overlay storage)"
	echo "- recipes: FROM busybox (already imported in each tool's store) + $STEPS x \`RUN echo \$i > /f\$i\`,"
	echo "  against FROM busybox + \`ENV X=1\`; empty context; no cache; median of $REPS runs (${ELAPSED_S}s measuring)"
	echo
	if [ "$LADING_OK" = 0 ]; then
		echo "**lading not measured: $LADING_WHY**"
		echo
	fi
	echo "| tool | T0 (ms) | T$STEPS (ms) | per step (ms) | peak RSS, $STEPS steps (MiB) | target |"
	echo "|---|---:|---:|---:|---:|---|"
	row "lading" lading "≤ $TARGET_LADING_MS ms/step: $verdict_lading"
	row "buildah --layers (a layer per step, like lading)" buildah "-"
	if [ "$NOLAYERS" = 1 ]; then
		row "buildah, no --layers (one commit at the end)" buildah-nolayers "(for information)"
	fi
	echo
	echo "- per-step overhead, buildah --layers / lading: **$R_STEP** (target ≥ $TARGET_RATIO: $verdict_ratio)"
	if [ "$NOLAYERS" = 1 ]; then
		echo "- per-step overhead, buildah without --layers / lading: $R_NL"
	fi
	echo "- peak RSS of the $STEPS-step build, buildah --layers / lading: $R_RSS"
	echo "- base import (fresh store, \`FROM oci-archive:busybox.tar\` + \`ENV X=1\`):" \
		"lading $(or_na "$(med lading/import)") ms, buildah $(or_na "$(med buildah/import)") ms"
	echo
	echo "Raw run times (ms):"
	echo
	for s in lading/0 lading/N buildah/0 buildah/N buildah-nolayers/0 buildah-nolayers/N lading/import buildah/import; do
		[ "$NOLAYERS" = 1 ] || [[ $s != buildah-nolayers/* ]] || continue
		echo "- ${s/\/N/\/$STEPS}: $(raw "$s")"
	done
} >"$W/results.md"

cp "$W/results.md" "$RESULTS"
echo
cat "$W/results.md"
echo
log "written to $RESULTS"
