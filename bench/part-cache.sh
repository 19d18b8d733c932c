# bench/part-cache.sh — sourced by bench/run.sh (BENCH_ONLY=cache).
# The build cache, lading (default cache) vs buildah --layers (its layer cache):
#   - no-op rebuild: a 30-instruction recipe over a 20,000-file, ~150 MB
#     context, rebuilt with nothing changed (median of FAST_REPS);
#   - one small file changed: a file read by the 3rd instruction (a COPY)
#     changes, then the recipe is rebuilt (median of REPS; a new content each
#     run, so every run is a real cache miss); lading's --progress plain output
#     is checked: instruction 2 cached, instructions 3-30 re-run;
#   - peak RSS of the no-op rebuild.
# Writes $W/section-cache.md and summary rows.

TARGET_NOOP_MS=300         # lading no-op rebuild, ms, below
TARGET_NOOP_STRETCH_MS=150 # stretch goal
TARGET_NOOP_RATIO=10       # buildah / lading, at least
TARGET_CHANGE_MS=300       # small rebuild, product goal, at most
TARGET_CHANGE_STEP_MS=1500 # small rebuild, the step-graph issue's target, at most
TARGET_RSS_MIB=50          # lading peak RSS, at most

TREE=$W/tree
log "generating the context: 10 parts x 20 dirs x 100 files"
"$W/gen" tree "$TREE" >"$W/logs/gen-tree" 2>&1 || die "gen tree: $(cat "$W/logs/gen-tree")"
TREE_FILES=$(find "$TREE" -type f | wc -l)
TREE_MB=$(du -s --apparent-size --block-size=1M "$TREE" | cut -f1)
log "context: $TREE_FILES files, $TREE_MB MiB"

# 30 instructions: FROM, 10 COPY (one part of the context each, 15 MB), 10 RUN
# reading a copied file, 4 RUN echo, 1 RUN ls, 2 ENV, 2 WORKDIR. Instruction 2 copies
# part00, instruction 3 copies part01: CHANGED is in part01.
CHANGED=part01/d000/f001
{
	echo "FROM bench-busybox:latest"
	for k in 0 1 2 3 4 5 6 7 8 9; do
		p=part0$k
		echo "COPY $p/ /app/$p/"
		[ "$k" = 0 ] || echo "RUN cat /app/$p/d00$k/f00$k | wc -c > /size$k"
		case $k in
		0) ;;
		1 | 5) echo "ENV STAGE$k=$k" ;;
		3 | 7) echo "WORKDIR /app/$p" ;;
		esac
		if [ $((k % 2)) = 0 ] && [ "$k" != 0 ]; then echo "RUN echo $k > /f$k"; fi
	done
	echo "RUN cat /app/part00/d000/f000 | wc -c > /size0"
	echo "RUN ls /app | wc -l > /nparts"
} >"$W/cache-lading.recipe"
sed 's|^FROM .*|FROM localhost/bench-busybox|' "$W/cache-lading.recipe" >"$W/cache-buildah.recipe"
CACHE_N=$(grep -c . "$W/cache-lading.recipe")
CACHE_COPY=$(grep -c '^COPY' "$W/cache-lading.recipe")
CACHE_RUN=$(grep -c '^RUN' "$W/cache-lading.recipe")
[ "$(sed -n 3p "$W/cache-lading.recipe")" = "COPY part01/ /app/part01/" ] || die "cache recipe: instruction 3 is not COPY part01"
cp "$TREE/$CHANGED" "$W/changed.orig"

cache_lading() { CMD=("${L[@]}" --progress "$1" -f "$W/cache-lading.recipe" "$TREE"); }
cache_buildah() { CMD=("${B[@]}" bud --isolation chroot --layers -q -t localhost/bench-cache -f "$W/cache-buildah.recipe" "$TREE"); }

# steps_of LOG FIRST -> "DONE CACHED META OK COPY_S RUN_S": lading's --progress
# plain output, instructions 2 and on: steps that re-ran (DONE), cache hits
# (CACHED), metadata-only steps (ENV, LABEL...: never cached, always evaluated,
# reported DONE), whether exactly the non-metadata instructions FIRST.. re-ran
# (yes/no), and the seconds the re-run COPY and RUN steps took.
steps_of() {
	awk -v first="$2" '
		BEGIN { meta["ENV"] = meta["LABEL"] = meta["ARG"] = meta["EXPOSE"] = meta["USER"] = meta["CMD"] = 1
			meta["ENTRYPOINT"] = meta["VOLUME"] = meta["STOPSIGNAL"] = meta["HEALTHCHECK"] = meta["SHELL"] = 1
			meta["MAINTAINER"] = meta["ONBUILD"] = 1 }
		match($0, /^#[0-9]+ \[[^]]* [0-9]+\/[0-9]+\] /) {
			id = substr($1, 2); head = substr($0, 1, RLENGTH); rest = substr($0, RLENGTH + 1)
			sub(/\].*/, "", head); sub(/\/.*/, "", head); n = split(head, a, " ")
			idx[id] = a[n] + 0; split(rest, w, " "); kind[id] = toupper(w[1]); next }
		$2 == "DONE" || $2 == "CACHED" {
			id = substr($1, 2); i = idx[id]; k = kind[id]; if (i <= 1) next
			seen++
			if (k in meta) { nmeta++; next }
			if ($2 == "DONE") {
				done++; if (i < first) bad++
				t = $3; sub(/s$/, "", t); if (k == "COPY") cs += t; else if (k == "RUN") rs += t
			} else { cached++; if (i >= first) bad++ } }
		END { printf "%d %d %d %s %.2f %.2f\n", done, cached, nmeta, (bad == 0 && seen > 0) ? "yes" : "no", cs, rs }' "$1"
}

CACHE_LADING=$LADING_OK
lading_cache_fail() { CACHE_LADING=0; lading_failed "$1"; }

log "cold builds (fill both caches; counted once, for information)"
if [ "$CACHE_LADING" = 1 ]; then
	cache_lading quiet
	timed lading/cache-cold "${CMD[@]}" || lading_cache_fail "the cold build of the cache recipe failed"
fi
cache_buildah
timed_retry buildah/cache-cold "${CMD[@]}" || die "buildah failed (cache-cold)"

# A no-op rebuild must hit the cache on every step (checked once, untimed).
NOOP_CHECK="not checked"
if [ "$CACHE_LADING" = 1 ]; then
	cache_lading plain
	if "${CMD[@]}" >"$W/logs/cache-noop-plain" 2>&1; then
		read -r d c m ok _ < <(steps_of "$W/logs/cache-noop-plain" 999)
		NOOP_CHECK="$c cached, $d re-ran, $m metadata-only (ENV; always evaluated, shown DONE)"
		[ "$ok" = yes ] || NOOP_CHECK="$NOOP_CHECK (UNEXPECTED: every step should be cached)"
		log "no-op rebuild, lading: $NOOP_CHECK"
	else
		show_failure "$W/logs/cache-noop-plain" "lading no-op rebuild"
		lading_cache_fail "the no-op rebuild failed"
	fi
fi

# lading's no-op rebuild is fast: FAST_REPS runs; buildah's is not: REPS runs.
for rep in $(seq 1 "$(( FAST_REPS > REPS ? FAST_REPS : REPS ))"); do
	log "no-op rebuild $rep"
	if [ "$CACHE_LADING" = 1 ] && [ "$rep" -le "$FAST_REPS" ]; then
		cache_lading quiet
		timed lading/noop "${CMD[@]}" || lading_cache_fail "a no-op rebuild failed"
	fi
	if [ "$rep" -le "$REPS" ]; then
		cache_buildah
		timed_retry buildah/noop "${CMD[@]}" || die "buildah failed (no-op rebuild)"
	fi
done

CHANGE_STEPS=()
for rep in $(seq 1 "$REPS"); do
	log "one small file changed $rep/$REPS"
	printf 'changed in run %s at %s\n' "$rep" "$(now_ns)" >"$TREE/$CHANGED"
	if [ "$CACHE_LADING" = 1 ]; then
		cache_lading plain
		if timed lading/change "${CMD[@]}"; then
			read -r d c m ok cs rs < <(steps_of "$LAST_LOG" 3)
			CHANGE_STEPS+=("$d re-ran (COPY ${cs}s, RUN ${rs}s), $c cached, $m ENV; as expected: $ok")
			log "  lading: $d steps re-ran (COPY ${cs}s, RUN ${rs}s), $c cached, $m ENV; only instructions 3-$CACHE_N re-ran: $ok"
		else
			lading_cache_fail "a rebuild after a change failed"
		fi
	fi
	cache_buildah
	timed_retry buildah/change "${CMD[@]}" || die "buildah failed (rebuild after a change)"
done
cp "$W/changed.orig" "$TREE/$CHANGED"

L_NOOP=$(med lading/noop)
B_NOOP=$(med buildah/noop)
R_NOOP=$(ratio "$B_NOOP" "$L_NOOP")
L_CHANGE=$(med lading/change)
B_CHANGE=$(med buildah/change)
v_noop=$(verdict "$L_NOOP" lt "$TARGET_NOOP_MS")
v_noop_stretch=$(verdict "$L_NOOP" lt "$TARGET_NOOP_STRETCH_MS")
v_noop_ratio=$(verdict "$R_NOOP" ge "$TARGET_NOOP_RATIO")
v_change=$(verdict "$L_CHANGE" le "$TARGET_CHANGE_MS")
v_change_step=$(verdict "$L_CHANGE" le "$TARGET_CHANGE_STEP_MS")
v_rss=$(verdict "$(medrss lading/noop)" le "$TARGET_RSS_MIB")
change_note=""
if [ "${#CHANGE_STEPS[@]}" -gt 0 ]; then
	change_note=" ($d steps + $m ENV re-ran, $c cached, as expected)"
	for s in "${CHANGE_STEPS[@]}"; do
		[[ $s == *yes ]] || change_note=" (UNEXPECTED steps re-ran or cached, see the cache section)"
	done
fi

summary "no-op rebuild, $TREE_FILES files / $TREE_MB MiB, $CACHE_N instructions (ms)" \
	"$(or_na "$L_NOOP")" "$(or_na "$B_NOOP")" "lading < $TARGET_NOOP_MS (stretch < $TARGET_NOOP_STRETCH_MS)" \
	"$v_noop (stretch: $v_noop_stretch)"
summary "no-op rebuild, buildah / lading" "" "$R_NOOP" "≥ $TARGET_NOOP_RATIO" "$v_noop_ratio"
summary "rebuild after one small file changed, instruction 3 (ms)" "$(or_na "$L_CHANGE")" "$(or_na "$B_CHANGE")" \
	"lading ≤ $TARGET_CHANGE_STEP_MS (step graph); ≤ $TARGET_CHANGE_MS (product goal)" "$v_change_step; product goal: $v_change$change_note"
summary "peak RSS, no-op rebuild (MiB)" "$(or_na "$(medrss lading/noop)")" "$(or_na "$(medrss buildah/noop)")" \
	"lading ≤ $TARGET_RSS_MIB" "$v_rss"

{
	echo "## Build cache"
	echo
	echo "Context: $TREE_FILES files, $TREE_MB MiB (10 parts x 20 dirs x 100 files, 64 B-8 KiB, one 1.3 MiB"
	echo "file in every 4th dir). Recipe: $CACHE_N instructions, FROM busybox + $CACHE_COPY COPY (one part each)"
	echo "+ $CACHE_RUN RUN + ENV + WORKDIR. lading with its cache (default); buildah \`bud --layers\` with its"
	echo "layer cache. Both caches filled by a cold build first."
	echo
	echo "| figure | lading | buildah | buildah / lading |"
	echo "|---|---:|---:|---:|"
	echo "| cold build, fills the cache (ms, 1 run) | $(or_na "$(med lading/cache-cold)") | $(or_na "$(med buildah/cache-cold)") | $(ratio "$(med buildah/cache-cold)" "$(med lading/cache-cold)") |"
	echo "| no-op rebuild (ms, median of $FAST_REPS for lading, $REPS for buildah) | $(or_na "$L_NOOP") | $(or_na "$B_NOOP") | $R_NOOP |"
	echo "| rebuild, one small file changed in the 3rd instruction's COPY (ms, median of $REPS) | $(or_na "$L_CHANGE") | $(or_na "$B_CHANGE") | $(ratio "$B_CHANGE" "$L_CHANGE") |"
	echo "| peak RSS, no-op rebuild (MiB) | $(or_na "$(medrss lading/noop)") | $(or_na "$(medrss buildah/noop)") | $(ratio "$(medrss buildah/noop)" "$(medrss lading/noop)") |"
	echo "| peak RSS, rebuild after a change (MiB) | $(or_na "$(medrss lading/change)") | $(or_na "$(medrss buildah/change)") | $(ratio "$(medrss buildah/change)" "$(medrss lading/change)") |"
	echo
	echo "- targets: no-op rebuild lading < $TARGET_NOOP_MS ms: $v_noop, < $TARGET_NOOP_STRETCH_MS ms (stretch): $v_noop_stretch;" \
		"buildah / lading ≥ $TARGET_NOOP_RATIO: $v_noop_ratio; small rebuild ≤ $TARGET_CHANGE_STEP_MS ms: $v_change_step," \
		"≤ $TARGET_CHANGE_MS ms (product goal): $v_change;" \
		"peak RSS ≤ $TARGET_RSS_MIB MiB: $v_rss"
	echo "- lading's steps (\`--progress plain\`, instructions 2-$CACHE_N): no-op rebuild: $NOOP_CHECK;" \
		"(expected: all cached but the ENVs)"
	echo "- after the change, each run (expected: instruction 2 cached, the $((CACHE_N - 2)) from the changed COPY on re-ran, 2 of them ENV):"
	for s in "${CHANGE_STEPS[@]}"; do echo "  - $s"; done
	echo
	busy_note lading/noop buildah/noop lading/change buildah/change
	echo "Raw run times (ms), peak RSS (MiB), and the CPUs other processes kept busy:"
	echo
	for s in lading/noop buildah/noop lading/change buildah/change; do
		echo "- $s: $(raw "$s"); RSS $(rawrss "$s"); other load $(rawother "$s")"
	done
	echo
} >"$W/section-cache.md"
