# bench/part-user.sh — sourced by bench/run.sh (BENCH_ONLY=user).
# The figures a user sees, end to end, lading only:
#   - per RUN step: a fresh --root each build (importing the base from its
#     OCI archive), a 50-RUN recipe built to an OCI tarball, minus the same
#     with 1 RUN, divided by 49 (cache on, as users build);
#   - no-op rebuild of a 10,000-file context into the store (COPY of the
#     whole context, then a RUN), median of FAST_REPS.
# Writes $W/section-user.md and summary rows.

TARGET_STEP_MS=20  # end-to-end per-step cost, ms, at most
TARGET_NOOP10_MS=150 # no-op rebuild of 10,000 files, ms, at most
USER_STEPS=50

if [ "$LADING_OK" = 1 ]; then
	{
		echo "FROM oci-archive:$W/busybox.tar:latest"
		for i in $(seq 1 "$USER_STEPS"); do echo "RUN echo $i > /f$i"; done
	} >"$W/user-N.recipe"
	printf 'FROM oci-archive:%s:latest\nRUN echo 1 > /f1\n' "$W/busybox.tar" >"$W/user-1.recipe"
	user_fresh() { # SERIES RECIPE
		local d
		d=$(mktemp -d "$W/user.XXXX")
		timed "$1" "$LADING" build --root "$d/root" --progress quiet --output "type=oci,dest=$d/out.tar" \
			-f "$2" "$W/empty" || lading_failed "the $1 build failed"
		rm -rf "$d"
	}
	for rep in $(seq 1 "$REPS"); do
		log "end-to-end per-step $rep/$REPS"
		user_fresh user/1 "$W/user-1.recipe"
		user_fresh user/N "$W/user-N.recipe"
	done

	# 10,000 files: the first five parts of the generated tree, linked.
	CTX10=$W/ctx10k
	mkdir -p "$CTX10"
	[ -d "$W/tree" ] || "$W/gen" tree "$W/tree" >"$W/logs/gen-tree" 2>&1 || die "gen tree failed"
	for k in 0 1 2 3 4; do cp -al "$W/tree/part0$k" "$CTX10/"; done
	NOOP10_FILES=$(find "$CTX10" -type f | wc -l)
	printf 'FROM bench-busybox:latest\nCOPY . /ctx/\nRUN ls /ctx | wc -l > /n\n' >"$W/noop10.recipe"
	"${L[@]}" --progress quiet -f "$W/noop10.recipe" "$CTX10" >"$W/logs/noop10-cold" 2>&1 ||
		lading_failed "the cold build of the 10,000-file context failed"
	for rep in $(seq 1 "$FAST_REPS"); do
		log "no-op rebuild of $NOOP10_FILES files $rep/$FAST_REPS"
		timed user/noop10 "${L[@]}" --progress quiet -f "$W/noop10.recipe" "$CTX10" || lading_failed "a no-op rebuild failed"
	done
fi

U1=$(med user/1)
UN=$(med user/N)
U_STEP=$(awk -v a="$UN" -v b="$U1" -v n="$USER_STEPS" 'BEGIN { if (a == "" || b == "") print ""; else printf "%.1f", (a - b) / (n - 1) }')
U_NOOP=$(med user/noop10)
v_step=$(verdict "$U_STEP" le "$TARGET_STEP_MS")
v_noop10=$(verdict "$U_NOOP" le "$TARGET_NOOP10_MS")
summary "end-to-end per RUN step: fresh root, $USER_STEPS vs 1 RUN to an OCI tarball (ms)" "$(or_na "$U_STEP")" "" "≤ $TARGET_STEP_MS" "$v_step"
summary "no-op rebuild, ${NOOP10_FILES:-10000}-file context (ms)" "$(or_na "$U_NOOP")" "" "≤ $TARGET_NOOP10_MS" "$v_noop10"
{
	echo "## Figures users see (lading)"
	echo
	echo "| figure | lading | target |"
	echo "|---|---:|---|"
	echo "| build, fresh --root, 1 RUN to an OCI tarball (ms, median of $REPS) | $(or_na "$U1") | |"
	echo "| build, fresh --root, $USER_STEPS RUN to an OCI tarball (ms, median of $REPS) | $(or_na "$UN") | |"
	echo "| per RUN step, (T($USER_STEPS) - T(1)) / $((USER_STEPS - 1)) (ms) | $(or_na "$U_STEP") | ≤ $TARGET_STEP_MS: $v_step |"
	echo "| no-op rebuild, ${NOOP10_FILES:-10000} files, COPY . + RUN (ms, median of $FAST_REPS) | $(or_na "$U_NOOP") | ≤ $TARGET_NOOP10_MS: $v_noop10 |"
	echo
	busy_note user/1 user/N user/noop10
	echo "Raw run times (ms) and the CPUs other processes kept busy:"
	echo
	for s in user/1 user/N user/noop10; do
		echo "- $s: $(raw "$s"); other load $(rawother "$s")"
	done
	echo
} >"$W/section-user.md"
