# bench/part-parallel.sh — sourced by bench/run.sh (BENCH_ONLY=parallel).
# Cold build (no cache) of 4 independent CPU-bound stages and a final
# FROM scratch stage copying one file from each: lading --jobs 1 against its
# default (one job per CPU); buildah (stages one after the other by default)
# and buildah --jobs $NCPU, for reference. Medians of REPS.
# Writes $W/section-parallel.md and summary rows.

STAGE_SECONDS=${BENCH_STAGE_SECONDS:-1.5}
TARGET_SPEEDUP=1.7 # lading --jobs 1 / default, at least (2 CPUs: 2 at most)

# Calibrate the loop: busybox sh on the host, as RUN will run it.
loop_ms() { # COUNT -> ms
	local t0
	t0=$(now_ns)
	/bin/busybox sh -c "i=0; while [ \$i -lt $1 ]; do i=\$((i+1)); done" || die "calibration loop failed"
	echo $(( ($(now_ns) - t0) / 1000000 ))
}
cal_ms=$(loop_ms 200000)
LOOP=$(awk -v ms="$cal_ms" -v s="$STAGE_SECONDS" 'BEGIN { n = 200000 * s * 1000 / (ms > 0 ? ms : 1); printf "%d", int(n / 10000 + 0.5) * 10000 }')
LOOP_MS=$(loop_ms "$LOOP")
log "loop of $LOOP iterations: $LOOP_MS ms on the host (target ${STAGE_SECONDS}s)"

{
	for s in 1 2 3 4; do
		echo "FROM bench-busybox:latest AS s$s"
		echo "RUN i=0; while [ \$i -lt $LOOP ]; do i=\$((i+1)); done; echo \"s$s \$i\" > /n"
	done
	echo "FROM scratch"
	for s in 1 2 3 4; do echo "COPY --from=s$s /n /n$s"; done
} >"$W/par-lading.recipe"
sed 's|^FROM bench-busybox:latest|FROM localhost/bench-busybox|' "$W/par-lading.recipe" >"$W/par-buildah.recipe"

BUILDAH_JOBS=0
if "${B[@]}" bud --help 2>/dev/null | grep -q -- '--jobs'; then BUILDAH_JOBS=1; fi

PAR_LADING=$LADING_OK
par_lading() { # SERIES JOBS-FLAGS...
	local series=$1; shift
	[ "$PAR_LADING" = 1 ] || return 0
	if ! timed "$series" "${L[@]}" --no-cache --progress quiet "$@" -f "$W/par-lading.recipe" "$W/empty"; then
		PAR_LADING=0
		lading_failed "the parallel-stages build ($series) failed"
	fi
}
par_buildah() { # SERIES FLAGS...
	local series=$1; shift
	timed "$series" "${B[@]}" bud --isolation chroot --layers --no-cache -q "$@" \
		-f "$W/par-buildah.recipe" "$W/empty" || die "buildah failed ($series)"
	buildah_prune
}

for rep in $(seq 1 "$REPS"); do
	log "parallel stages $rep/$REPS"
	par_lading lading/jobs1 --jobs 1
	par_lading lading/jobsN
	par_buildah buildah/jobs1
	[ "$BUILDAH_JOBS" = 0 ] || par_buildah buildah/jobsN --jobs "$NCPU"
done

SPEEDUP_L=$(ratio2 "$(med lading/jobs1)" "$(med lading/jobsN)")
SPEEDUP_B=$(ratio2 "$(med buildah/jobs1)" "$(med buildah/jobsN)")
v_speedup=$(verdict "$SPEEDUP_L" ge "$TARGET_SPEEDUP")
summary "4 CPU-bound stages, cold, 1 job (ms)" "$(or_na "$(med lading/jobs1)")" "$(or_na "$(med buildah/jobs1)")" "-" "(for information)"
summary "4 CPU-bound stages, cold, $NCPU jobs (ms)" "$(or_na "$(med lading/jobsN)")" "$(or_na "$(med buildah/jobsN)")" "-" "(for information)"
summary "4 CPU-bound stages: speedup, 1 job / $NCPU jobs" "$SPEEDUP_L" "$SPEEDUP_B" "lading ≥ $TARGET_SPEEDUP (max $NCPU on $NCPU CPUs)" "$v_speedup"

{
	echo "## Parallel stages (cold, no cache)"
	echo
	echo "4 independent stages, each FROM busybox + one RUN of a shell loop of $LOOP iterations"
	echo "($LOOP_MS ms on one core on the host), and a final FROM scratch stage copying one file from each."
	echo "lading \`--no-cache --jobs 1\` vs \`--no-cache\` (default jobs: $NCPU CPUs); buildah"
	echo "\`bud --layers --no-cache\` (stages one after the other) and with \`--jobs $NCPU\`. Median of $REPS."
	echo
	echo "| tool | 1 job (ms) | $NCPU jobs (ms) | speedup | peak RSS, $NCPU jobs (MiB) |"
	echo "|---|---:|---:|---:|---:|"
	echo "| lading | $(or_na "$(med lading/jobs1)") | $(or_na "$(med lading/jobsN)") | $SPEEDUP_L | $(or_na "$(medrss lading/jobsN)") |"
	echo "| buildah | $(or_na "$(med buildah/jobs1)") | $(or_na "$(med buildah/jobsN)") | $SPEEDUP_B | $(or_na "$(medrss buildah/jobsN)") |"
	echo
	echo "- lading speedup ≥ $TARGET_SPEEDUP: $v_speedup (the ideal is 4 x ${LOOP_MS} ms of loops on 1 CPU"
	echo "  against 2 x ${LOOP_MS} ms on $NCPU: a speedup of at most $NCPU, less the fixed costs)"
	echo "- $NCPU jobs, buildah / lading: $(ratio "$(med buildah/jobsN)" "$(med lading/jobsN)");" \
		"1 job, buildah / lading: $(ratio "$(med buildah/jobs1)" "$(med lading/jobs1)")"
	[ "$BUILDAH_JOBS" = 1 ] || echo "- this buildah has no --jobs: only its sequential build is measured"
	echo
	busy_note lading/jobs1 lading/jobsN buildah/jobs1 buildah/jobsN
	echo "Raw run times (ms), and the CPUs other processes kept busy:"
	echo
	for s in lading/jobs1 lading/jobsN buildah/jobs1 buildah/jobsN; do
		echo "- ${s/jobsN/jobs$NCPU}: $(raw "$s"); other load $(rawother "$s")"
	done
	echo
} >"$W/section-parallel.md"
