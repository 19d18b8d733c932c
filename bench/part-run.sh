# bench/part-run.sh — sourced by bench/run.sh (BENCH_ONLY=run).
# RUN per-step overhead, no cache: (T(N steps) - T(0 steps)) / N; peak RSS of
# the N-step build; lading in its default network (a private namespace with
# pasta) and, for information, with --network host; importing the base from an
# OCI archive (for information).
# Writes $W/section-run.md and summary rows.

STEPS=${BENCH_STEPS:-50}
NOLAYERS=${BENCH_BUILDAH_NOLAYERS:-1}
TARGET_LADING_MS=25 # lading per-step overhead, ms, at most
TARGET_RATIO=5      # buildah/lading per-step overhead, at least

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

# run_cmd KIND RECIPE: sets CMD. Empty context; every step runs (no cache).
run_cmd() {
	case $1 in
	lading) CMD=("${L[@]}" --no-cache --progress quiet -f "$2" "$W/empty") ;;
	lading-host) CMD=("${L[@]}" --network host --allow network.host --no-cache --progress quiet -f "$2" "$W/empty") ;;
	buildah) CMD=("${B[@]}" bud --isolation chroot --layers --no-cache -q -f "$2" "$W/empty") ;;
	buildah-nolayers) CMD=("${B[@]}" bud --isolation chroot --layers=false --no-cache -q -f "$2" "$W/empty") ;;
	*) die "run_cmd: $1" ;;
	esac
}

run_lading() { # SERIES RECIPE [KIND]
	[ "$LADING_OK" = 1 ] || return 0
	run_cmd "${3:-lading}" "$2"
	timed "$1" "${CMD[@]}" || lading_failed "the $1 build failed"
}
run_buildah() { # SERIES KIND RECIPE
	run_cmd "$2" "$3"
	timed_retry "$1" "${CMD[@]}" || die "buildah failed ($1)"
	buildah_prune
}

# run_import TOOL: FROM oci-archive into a store that has never seen the base.
run_import() {
	local tool=$1 saveB=("${B[@]}") saveL=("${L[@]}") d
	d=$(mktemp -d "$W/import.XXXX")
	if [ "$tool" = lading ]; then
		L=("$LADING" build --root "$d/lading-root")
		run_lading lading/import "$W/import-0.recipe"
	else
		B=("$BUILDAH" --root "$d/root" --runroot "$d/runroot" --storage-driver overlay)
		run_buildah buildah/import buildah "$W/import-0.recipe"
		"${B[@]}" rmi --all --force >/dev/null 2>&1 || true
	fi
	B=("${saveB[@]}")
	L=("${saveL[@]}")
	rm -rf "$d" 2>/dev/null || true
}

log "warm-up (not counted)"
run_cmd buildah "$W/buildah-0.recipe"
"${CMD[@]}" >/dev/null 2>&1 || true
buildah_prune
if [ "$LADING_OK" = 1 ]; then
	run_cmd lading "$W/lading-0.recipe"
	"${CMD[@]}" >/dev/null 2>&1 || true
fi

run_t0=$(now_ns)
for rep in $(seq 1 "$REPS"); do
	log "run $rep/$REPS"
	run_lading lading/0 "$W/lading-0.recipe"
	run_lading lading/N "$W/lading-N.recipe"
	run_lading lading-host/0 "$W/lading-0.recipe" lading-host
	run_lading lading-host/N "$W/lading-N.recipe" lading-host
	run_buildah buildah/0 buildah "$W/buildah-0.recipe"
	run_buildah buildah/N buildah "$W/buildah-N.recipe"
	if [ "$NOLAYERS" = 1 ]; then
		run_buildah buildah-nolayers/0 buildah-nolayers "$W/buildah-0.recipe"
		run_buildah buildah-nolayers/N buildah-nolayers "$W/buildah-N.recipe"
	fi
	run_import lading
	run_import buildah
done
run_elapsed=$(( ($(now_ns) - run_t0) / 1000000000 ))

perstep() { # TOOL -> per-step overhead ms (one decimal), or empty
	local t0 tn
	t0=$(med "$1/0"); tn=$(med "$1/N")
	[ -n "$t0" ] && [ -n "$tn" ] || return 0
	awk -v a="$t0" -v b="$tn" -v n="$STEPS" 'BEGIN { printf "%.1f", (b - a) / n }'
}

L_STEP=$(perstep lading)
B_STEP=$(perstep buildah)
NL_STEP=$(perstep buildah-nolayers)
R_STEP=$(ratio "$B_STEP" "$L_STEP")
R_NL=$(ratio "$NL_STEP" "$L_STEP")
R_RSS=$(ratio "$(medrss buildah/N)" "$(medrss lading/N)")
verdict_lading=$(verdict "$L_STEP" le "$TARGET_LADING_MS")
verdict_ratio=$(verdict "$R_STEP" ge "$TARGET_RATIO")

summary "RUN per-step overhead, no cache, default network (ms)" "$(or_na "$L_STEP")" "$(or_na "$B_STEP")" \
	"lading ≤ $TARGET_LADING_MS" "$verdict_lading"
summary "RUN per-step overhead, buildah / lading" "" "$R_STEP" "≥ $TARGET_RATIO" "$verdict_ratio"

run_row() { # LABEL SERIES-PREFIX TARGET
	printf '| %s | %s | %s | %s | %s | %s |\n' "$1" \
		"$(or_na "$(med "$2/0")")" "$(or_na "$(med "$2/N")")" "$(or_na "$(perstep "$2")")" \
		"$(or_na "$(medrss "$2/N")")" "$3"
}

{
	echo "## RUN per-step overhead (no cache)"
	echo
	echo "FROM busybox (already imported in each tool's store) + $STEPS x \`RUN echo \$i > /f\$i\`,"
	echo "against FROM busybox + \`ENV X=1\`; empty context; \`--no-cache\` for both tools;"
	echo "median of $REPS runs (${run_elapsed}s)."
	echo
	echo "| tool | T0 (ms) | T$STEPS (ms) | per step (ms) | peak RSS, $STEPS steps (MiB) | target |"
	echo "|---|---:|---:|---:|---:|---|"
	run_row "lading (default network: private namespace, pasta)" lading "≤ $TARGET_LADING_MS ms/step: $verdict_lading"
	run_row "lading --network host" lading-host "(for information)"
	run_row "buildah --layers (a layer per step, like lading)" buildah "-"
	if [ "$NOLAYERS" = 1 ]; then
		run_row "buildah, no --layers (one commit at the end)" buildah-nolayers "(for information)"
	fi
	echo
	echo "- per-step overhead, buildah --layers / lading: **$R_STEP** (target ≥ $TARGET_RATIO: $verdict_ratio)"
	echo "- networks: lading's default gives every build one private network namespace (made at its first RUN" \
		"step, with pasta for outbound access) that its RUN steps join; buildah with \`--isolation chroot\`" \
		"runs RUN steps in the host's network namespace (its default there)"
	if [ "$NOLAYERS" = 1 ]; then
		echo "- per-step overhead, buildah without --layers / lading: $R_NL"
	fi
	echo "- peak RSS of the $STEPS-step build, buildah --layers / lading: $R_RSS"
	echo "- base import (fresh store, \`FROM oci-archive:busybox.tar\` + \`ENV X=1\`):" \
		"lading $(or_na "$(med lading/import)") ms, buildah $(or_na "$(med buildah/import)") ms"
	echo
	busy_note lading/0 lading/N lading-host/0 lading-host/N buildah/0 buildah/N buildah-nolayers/0 buildah-nolayers/N
	echo "Raw run times (ms), and the CPUs other processes kept busy:"
	echo
	for s in lading/0 lading/N lading-host/0 lading-host/N buildah/0 buildah/N buildah-nolayers/0 buildah-nolayers/N lading/import buildah/import; do
		[ "$NOLAYERS" = 1 ] || [[ $s != buildah-nolayers/* ]] || continue
		echo "- ${s/\/N/\/$STEPS}: $(raw "$s"); other load $(rawother "$s")"
	done
	echo
} >"$W/section-run.md"
