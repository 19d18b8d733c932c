# bench/part-export.sh — sourced by bench/run.sh (BENCH_ONLY=export).
# A ~500 MB image: FROM busybox + COPY big/ /big/ (incompressible data).
#   - cold build (no cache), time and peak RSS, lading vs buildah --layers;
#   - export as an OCI archive: lading build --output type=oci (cache warm)
#     minus the same build without --output, vs buildah push oci-archive:.
# Medians of REPS. Writes $W/section-export.md and summary rows.

EXPORT_MB=${BENCH_EXPORT_MB:-500}
TARGET_EXPORT_MS=1000 # lading export, ms, at most
TARGET_RSS_MIB=50     # lading peak RSS, at most

BIGCTX=$W/bigctx
log "generating $EXPORT_MB MiB of incompressible data"
"$W/gen" big "$BIGCTX/big" "$EXPORT_MB" >"$W/logs/gen-big" 2>&1 || die "gen big: $(cat "$W/logs/gen-big")"
printf 'FROM bench-busybox:latest\nCOPY big/ /big/\n' >"$W/big-lading.recipe"
printf 'FROM localhost/bench-busybox\nCOPY big/ /big/\n' >"$W/big-buildah.recipe"
mkdir -p "$W/out"

EXP_LADING=$LADING_OK
exp_lading() { # SERIES FLAGS...
	local series=$1; shift
	[ "$EXP_LADING" = 1 ] || return 0
	if ! timed "$series" "${L[@]}" --progress quiet "$@" -f "$W/big-lading.recipe" "$BIGCTX"; then
		EXP_LADING=0
		lading_failed "the $EXPORT_MB MiB build ($series) failed"
	fi
}
exp_buildah() { # SERIES FLAGS...
	local series=$1; shift
	timed "$series" "${B[@]}" bud --isolation chroot --layers -q "$@" -f "$W/big-buildah.recipe" "$BIGCTX" ||
		die "buildah failed ($series)"
}
size_mib() { du -s --apparent-size --block-size=1M "$1" | cut -f1; }

# Cold builds. lading's first one starts from a store without the data; the
# next ones find the layer's blob already stored but still copy, diff and
# compress everything (--no-cache). buildah's image is removed after each.
for rep in $(seq 1 "$REPS"); do
	log "cold $EXPORT_MB MiB build $rep/$REPS"
	exp_lading lading/bigcold --no-cache
	exp_buildah buildah/bigcold --no-cache -t localhost/bench-big-cold
	"${B[@]}" rmi --force localhost/bench-big-cold >/dev/null 2>&1 || true
	buildah_prune
done

log "warm-up: fill both caches with the $EXPORT_MB MiB image"
if [ "$EXP_LADING" = 1 ]; then
	"${L[@]}" --progress quiet -f "$W/big-lading.recipe" "$BIGCTX" >"$W/logs/big-warm" 2>&1 ||
		{ show_failure "$W/logs/big-warm" "lading warm-up"; EXP_LADING=0; lading_failed "the warm-up of the export failed"; }
fi
"${B[@]}" bud --isolation chroot --layers -q -t localhost/bench-big -f "$W/big-buildah.recipe" "$BIGCTX" \
	>"$W/logs/big-warm-buildah" 2>&1 || { show_failure "$W/logs/big-warm-buildah" "buildah warm-up"; die "buildah failed (export warm-up)"; }

L_TAR_MIB="" B_TAR_MIB=""
for rep in $(seq 1 "$REPS"); do
	log "export $rep/$REPS"
	exp_lading lading/nooutput
	exp_lading lading/output --output "type=oci,dest=$W/out/lading.tar"
	if [ -f "$W/out/lading.tar" ]; then
		L_TAR_MIB=$(size_mib "$W/out/lading.tar")
		rm -f "$W/out/lading.tar"
	fi
	timed buildah/push "${B[@]}" push -q localhost/bench-big "oci-archive:$W/out/buildah.tar:latest" ||
		die "buildah push failed"
	B_TAR_MIB=$(size_mib "$W/out/buildah.tar")
	rm -f "$W/out/buildah.tar"
done

L_EXPORT=$(awk -v a="$(med lading/output)" -v b="$(med lading/nooutput)" \
	'BEGIN { if (a == "" || b == "") print ""; else print a - b }')
B_PUSH=$(med buildah/push)
v_export=$(verdict "$L_EXPORT" le "$TARGET_EXPORT_MS")
v_rss=$(verdict "$(medrss lading/bigcold)" le "$TARGET_RSS_MIB")

summary "export of the $EXPORT_MB MiB image as an OCI archive (ms)" "$(or_na "$L_EXPORT")" "$(or_na "$B_PUSH")" \
	"lading ≤ $TARGET_EXPORT_MS" "$v_export"
summary "peak RSS, cold $EXPORT_MB MiB build (MiB)" "$(or_na "$(medrss lading/bigcold)")" "$(or_na "$(medrss buildah/bigcold)")" \
	"lading ≤ $TARGET_RSS_MIB" "$v_rss"
summary "cold $EXPORT_MB MiB build (ms)" "$(or_na "$(med lading/bigcold)")" "$(or_na "$(med buildah/bigcold)")" "-" "(for information)"

{
	echo "## Export and a large image"
	echo
	echo "FROM busybox + \`COPY big/ /big/\`: $EXPORT_MB MiB of incompressible data in 10 MiB files."
	echo "Export: \`lading build --output type=oci,dest=FILE\` minus the same \`lading build\` without"
	echo "--output, both with the cache warm (so the difference is writing the archive), against"
	echo "\`buildah push IMAGE oci-archive:FILE\`. Cold build: lading \`--no-cache\`, buildah"
	echo "\`bud --layers --no-cache\`. Medians of $REPS. The context is in the page cache."
	echo
	echo "| figure | lading | buildah | buildah / lading |"
	echo "|---|---:|---:|---:|"
	echo "| export as an OCI archive (ms) | $(or_na "$L_EXPORT") | $(or_na "$B_PUSH") | $(ratio "$B_PUSH" "$L_EXPORT") |"
	echo "| archive size (MiB) | $(or_na "$L_TAR_MIB") | $(or_na "$B_TAR_MIB") | |"
	echo "| cached build with --output (ms) | $(or_na "$(med lading/output)") | | |"
	echo "| cached build without --output (ms) | $(or_na "$(med lading/nooutput)") | | |"
	echo "| cold build (ms) | $(or_na "$(med lading/bigcold)") | $(or_na "$(med buildah/bigcold)") | $(ratio "$(med buildah/bigcold)" "$(med lading/bigcold)") |"
	echo "| peak RSS, cold build (MiB) | $(or_na "$(medrss lading/bigcold)") | $(or_na "$(medrss buildah/bigcold)") | $(ratio "$(medrss buildah/bigcold)" "$(medrss lading/bigcold)") |"
	echo "| peak RSS, export (MiB) | $(or_na "$(medrss lading/output)") | $(or_na "$(medrss buildah/push)") | $(ratio "$(medrss buildah/push)" "$(medrss lading/output)") |"
	echo
	echo "- targets: lading export ≤ $TARGET_EXPORT_MS ms: $v_export; peak RSS of the cold build ≤ $TARGET_RSS_MIB MiB: $v_rss"
	echo "- lading stores its layers gzipped when it builds and copies them into the archive; buildah"
	echo "  stores them uncompressed and gzips them when it pushes."
	echo
	busy_note lading/bigcold buildah/bigcold lading/nooutput lading/output buildah/push
	echo "Raw run times (ms), peak RSS (MiB), and the CPUs other processes kept busy:"
	echo
	for s in lading/bigcold buildah/bigcold lading/nooutput lading/output buildah/push; do
		echo "- $s: $(raw "$s"); RSS $(rawrss "$s"); other load $(rawother "$s")"
	done
	echo
} >"$W/section-export.md"
