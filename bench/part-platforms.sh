# bench/part-platforms.sh — sourced by bench/run.sh (BENCH_ONLY=platforms).
# lading only (buildah builds one platform per run the same way): a cold
# two-platform build (--platform linux/amd64,linux/arm64, one index, the
# --platform=$BUILDPLATFORM stage built once, the targets in parallel)
# against two one-platform builds run one after the other. The arm64 RUN runs
# under QEMU user emulation (make bench enables it). Medians of REPS.
# Writes $W/section-platforms.md and a summary row.

PLAT_DEB=$REPO/testdata/debs/busybox-static_arm64.deb
PLAT_OK=$LADING_OK
PLAT_WHY=$LADING_WHY
if [ "$PLAT_OK" = 1 ] && [ ! -f "$PLAT_DEB" ]; then
	PLAT_OK=0 PLAT_WHY="$PLAT_DEB is missing (make bench downloads it)"
fi
if [ "$PLAT_OK" = 1 ] && ! grep -qs '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
	PLAT_OK=0 PLAT_WHY="no binfmt_misc handler for arm64 (make bench enables qemu-user-static's)"
fi

if [ "$PLAT_OK" = 1 ]; then
	# A two-platform busybox base, from Debian's amd64 and arm64 busybox-static.
	PCTX=$W/plat-ctx
	mkdir -p "$PCTX/x"
	cp -a "$CTX/rootfs" "$PCTX/rootfs-amd64"
	cp -a "$CTX/rootfs" "$PCTX/rootfs-arm64"
	dpkg-deb -x "$PLAT_DEB" "$PCTX/x"
	cp "$PCTX/x/bin/busybox" "$PCTX/rootfs-arm64/bin/busybox"
	printf 'FROM scratch\nARG TARGETARCH\nCOPY rootfs-$TARGETARCH/ /\n' >"$PCTX/Recipe"
	if ! "${L[@]}" --progress quiet --platform linux/amd64,linux/arm64 -t bench-multi:latest "$PCTX" >"$W/logs/plat-base" 2>&1; then
		show_failure "$W/logs/plat-base" "lading two-platform base"
		PLAT_OK=0 PLAT_WHY="the two-platform base build fails: $(tail -n 1 "$W/logs/plat-base")"
	fi
fi

# The recipe: a shared stage on the build platform (a CPU loop, as a
# cross-compiler would spend), and per target a small RUN and a COPY of it.
cat >"$W/plat.recipe" <<'RECIPE'
FROM --platform=$BUILDPLATFORM bench-multi:latest AS build
RUN i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo built > /out
FROM bench-multi:latest
COPY --from=build /out /out
RUN i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; uname -m > /arch
RECIPE

plat_build() { # SERIES PLATFORMS
	[ "$PLAT_OK" = 1 ] || return 0
	if ! timed "$1" "${L[@]}" --no-cache --progress quiet --platform "$2" -f "$W/plat.recipe" "$W/empty"; then
		PLAT_OK=0 PLAT_WHY="the $2 build fails"
	fi
}
for rep in $(seq 1 "$REPS"); do
	[ "$PLAT_OK" = 1 ] || break
	log "platforms $rep/$REPS"
	plat_build lading/both linux/amd64,linux/arm64
	plat_build lading/amd64 linux/amd64
	plat_build lading/arm64 linux/arm64
done

P_BOTH=$(med lading/both)
P_SEP=""
if [ -n "$(med lading/amd64)" ] && [ -n "$(med lading/arm64)" ]; then
	P_SEP=$(( $(med lading/amd64) + $(med lading/arm64) ))
fi
P_RATIO=$(ratio2 "$P_SEP" "$P_BOTH")
summary "two platforms: two 1-platform builds / one 2-platform build" "$P_RATIO" "-" "> 1 (shared stage once, targets in parallel)" "$(verdict "$P_RATIO" ge 1)"

{
	echo "## Multi-platform build (lading only, cold, no cache)"
	echo
	echo "A shared \`FROM --platform=\$BUILDPLATFORM\` stage (a shell loop of 300,000 iterations) and per"
	echo "target a COPY of its output and a loop of 20,000 iterations (arm64 under QEMU user emulation)."
	echo "One \`--platform linux/amd64,linux/arm64\` build against \`--platform linux/amd64\` plus"
	echo "\`--platform linux/arm64\`. Median of $REPS."
	echo
	if [ "$PLAT_OK" = 0 ] && [ -z "$P_BOTH" ]; then
		echo "**not measured: $PLAT_WHY**"
	else
		echo "| build | time (ms) |"
		echo "|---|---:|"
		echo "| linux/amd64,linux/arm64 | $(or_na "$P_BOTH") |"
		echo "| linux/amd64 | $(or_na "$(med lading/amd64)") |"
		echo "| linux/arm64 | $(or_na "$(med lading/arm64)") |"
		echo "| the two one-platform builds | $(or_na "$P_SEP") |"
		echo
		echo "- two one-platform builds / one two-platform build: $P_RATIO"
		busy_note lading/both lading/amd64 lading/arm64
	fi
	echo
} >"$W/section-platforms.md"
