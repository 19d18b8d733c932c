# bench/part-pull.sh — sourced by bench/run.sh (BENCH_ONLY=pull).
# Pulling a ~300 MB image of 6 layers from a local registry (Debian's
# docker-registry on a free 127.0.0.1 port), each run into a new, empty store:
#   - lading pull (download into the store)        vs skopeo copy docker:// oci:DIR
#   - lading build FROM the image + RUN true       vs buildah pull (overlay storage)
#     (pull + unpack of every layer + one RUN)        (pull + unpack of every layer)
# Medians of REPS; peak RSS. Writes $W/section-pull.md and summary rows.

PULL_LAYERS=6
PULL_LAYER_MB=${BENCH_PULL_LAYER_MB:-50}
PULL_MB=$((PULL_LAYERS * PULL_LAYER_MB))
PW=$W/pull
mkdir -p "$PW"

# ---- the registry: a generated config, filesystem storage under $PW, a free port.
command -v docker-registry >/dev/null || die "docker-registry not found (make deps installs it)"
command -v skopeo >/dev/null || die "skopeo not found (make deps installs it)"
REG_PORT=""
for _ in $(seq 1 50); do
	p=$((20000 + RANDOM % 40000))
	if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then REG_PORT=$p; break; fi
done
[ -n "$REG_PORT" ] || die "no free port for the registry"
REG=127.0.0.1:$REG_PORT
IMG=$REG/bench/big:1
cat >"$PW/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $PW/registry
  delete:
    enabled: true
http:
  addr: $REG
EOF
log "starting docker-registry on $REG"
docker-registry serve "$PW/registry.yml" >"$W/logs/registry" 2>&1 &
REG_PID=$! # run.sh's cleanup stops it

reg_up() { # -> 0 when GET /v2/ answers 200
	(
		exec 9<>"/dev/tcp/127.0.0.1/$REG_PORT" || exit 1
		printf 'GET /v2/ HTTP/1.0\r\nHost: %s\r\n\r\n' "$REG" >&9
		read -r -t 2 line <&9 || exit 1
		[[ $line == "HTTP/1."?" 200"* ]]
	) 2>/dev/null
}
for _ in $(seq 1 100); do
	reg_up && break
	kill -0 "$REG_PID" 2>/dev/null || { show_failure "$W/logs/registry" "docker-registry"; die "the registry did not start"; }
	sleep 0.1
done
reg_up || die "the registry on $REG does not answer /v2/ after 10 s"

# ---- the image: FROM scratch + 6 COPY of 50 MiB of incompressible data each.
# The first layer also carries the busybox root filesystem: the pull + unpack
# build needs a shell for its RUN true.
log "generating $PULL_MB MiB of incompressible data in $PULL_LAYERS directories"
PCTX=$PW/ctx
"$W/gen" big "$PCTX/all" "$PULL_MB" >"$W/logs/gen-pull" 2>&1 || die "gen big: $(cat "$W/logs/gen-pull")"
files_per_layer=$(( (PULL_LAYER_MB + 9) / 10 ))
rec="FROM scratch"$'\n'
for i in $(seq 0 $((PULL_LAYERS - 1))); do
	mkdir -p "$PCTX/l$i/data/l$i"
	for j in $(seq $((i * files_per_layer)) $((i * files_per_layer + files_per_layer - 1))); do
		f=$(printf '%s/all/big%03d' "$PCTX" "$j")
		[ -f "$f" ] && mv "$f" "$PCTX/l$i/data/l$i/"
	done
	rec+="COPY l$i/ /"$'\n'
done
rmdir "$PCTX/all" 2>/dev/null || true
cp -a "$CTX/rootfs/." "$PCTX/l0/"
printf '%s' "$rec" >"$W/pull-image.recipe"

PULL_BUILT_BY=""
if [ "$LADING_OK" = 1 ]; then
	log "building the $PULL_MB MiB image with lading and pushing it with skopeo"
	if "$LADING" build --root "$PW/build-root" --progress quiet -t bench/big:1 \
		--output "type=oci,dest=$PW/big.tar" -f "$W/pull-image.recipe" "$PCTX" >"$W/logs/pull-image-build" 2>&1; then
		skopeo copy -q --dest-tls-verify=false "oci-archive:$PW/big.tar" "docker://$IMG" >"$W/logs/pull-image-push" 2>&1 ||
			{ show_failure "$W/logs/pull-image-push" "skopeo copy to the registry"; die "cannot push the image to the registry"; }
		PULL_BUILT_BY="lading build --output type=oci, pushed with skopeo copy"
	else
		show_failure "$W/logs/pull-image-build" "lading build of the $PULL_MB MiB image"
		lading_failed "cannot build the $PULL_MB MiB image of the pull part"
	fi
	rm -rf "$PW/build-root" "$PW/big.tar"
fi
if [ -z "$PULL_BUILT_BY" ]; then
	log "building the $PULL_MB MiB image with buildah and pushing it"
	"${B[@]}" bud --isolation chroot --layers -q -t localhost/bench-pull-big -f "$W/pull-image.recipe" "$PCTX" \
		>"$W/logs/pull-image-build-buildah" 2>&1 ||
		{ show_failure "$W/logs/pull-image-build-buildah" "buildah build of the pull image"; die "buildah failed (pull image)"; }
	"${B[@]}" push --tls-verify=false localhost/bench-pull-big "docker://$IMG" >"$W/logs/pull-image-push" 2>&1 ||
		{ show_failure "$W/logs/pull-image-push" "buildah push to the registry"; die "cannot push the image to the registry"; }
	"${B[@]}" rmi --force localhost/bench-pull-big >/dev/null 2>&1 || true
	PULL_BUILT_BY="buildah bud --layers, buildah push (lading could not build it)"
fi
rm -rf "$PCTX"
REG_DIGEST=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$IMG" 2>"$W/logs/pull-inspect") ||
	die "skopeo inspect docker://$IMG: $(tail -n 1 "$W/logs/pull-inspect")"
REG_LAYERS=$(skopeo inspect --tls-verify=false --format '{{len .Layers}}' "docker://$IMG" 2>/dev/null || echo "?")
REG_MIB=$(du -s --block-size=1M "$PW/registry" | cut -f1)
log "image $IMG: $REG_DIGEST, $REG_LAYERS layers, $REG_MIB MiB in the registry"

# ---- measurements: every run in a new, empty store, removed afterwards.
FRESH=$PW/fresh
printf 'FROM %s\nRUN true\n' "$IMG" >"$W/pull-unpack.recipe"
fresh_store() { # a new, empty $FRESH; the previous run's writes flushed
	umount_under "$FRESH"
	rm -rf "$FRESH"
	mkdir -p "$FRESH"
	sync
}
# ptimed SERIES CMD...: timed, and the registry's own CPU time during the run
# (it serves the blobs) is taken out of the other-load figure and kept in
# REGCPU[SERIES] (CPUs, over the run's wall time).
declare -A REGCPU
reg_ticks() { awk '{ print $14 + $15 }' "/proc/$REG_PID/stat" 2>/dev/null || echo 0; }
ptimed() {
	local series=$1 r0 r1 rc reg
	r0=$(reg_ticks)
	timed "$@" || return 1
	r1=$(reg_ticks)
	reg=$(awk -v t="$((r1 - r0))" -v ms="$LAST_MS" 'BEGIN { printf "%.1f", (ms > 0 ? t / 100 / (ms / 1000) : 0) }')
	REGCPU[$series]="${REGCPU[$series]:-} $reg"
	if [ "$LAST_OTHER" != "~" ]; then
		local all=${OTHER[$series]% *}
		OTHER[$series]="$all $(awk -v o="$LAST_OTHER" -v r="$reg" 'BEGIN { o -= r; printf "%.1f", (o > 0 ? o : 0) }')"
	fi
	log "    (the registry used $reg CPUs meanwhile; other load without it: ${OTHER[$series]##* })"
}
rawreg() { [ -n "${REGCPU[$1]:-}" ] && printf '%s' "${REGCPU[$1]# }" || printf '-'; }
PULL_LADING=$LADING_OK
L_PULL_DIGEST="" L_STORE_MIB="" L_PU_MIB="" S_DIR_MIB="" B_STORE_MIB=""
pull_lading() { # SERIES CMD...
	local series=$1; shift
	[ "$PULL_LADING" = 1 ] || return 0
	fresh_store
	if ! ptimed "$series" "$@"; then
		PULL_LADING=0
		lading_failed "pulling the $PULL_MB MiB image ($series) failed"
	fi
}
for rep in $(seq 1 "$REPS"); do
	log "pull $rep/$REPS"
	pull_lading lading/pull "$LADING" pull --root "$FRESH/lading" --insecure-registry "$REG" "$IMG"
	if [ "$PULL_LADING" = 1 ]; then
		L_PULL_DIGEST=$(grep -o 'sha256:[0-9a-f]\{64\}' "$LAST_LOG" | tail -n 1)
		L_STORE_MIB=$(du -s --block-size=1M "$FRESH/lading" | cut -f1)
	fi

	fresh_store
	ptimed skopeo/copy skopeo copy -q --src-tls-verify=false "docker://$IMG" "oci:$FRESH/oci:latest" ||
		die "skopeo copy failed"
	S_DIR_MIB=$(du -s --block-size=1M "$FRESH/oci" | cut -f1)

	pull_lading lading/pullunpack "$LADING" build --root "$FRESH/lading" --insecure-registry "$REG" \
		--progress plain -f "$W/pull-unpack.recipe" "$W/empty"
	[ "$PULL_LADING" = 1 ] && L_PU_MIB=$(du -s --block-size=1M "$FRESH/lading" | cut -f1)

	fresh_store
	BP=("$BUILDAH" --root "$FRESH/broot" --runroot "$FRESH/brunroot" --storage-driver overlay)
	ptimed buildah/pull "${BP[@]}" pull --tls-verify=false "$IMG" || die "buildah pull failed"
	B_STORE_MIB=$(du -s --block-size=1M "$FRESH/broot" | cut -f1)
	"${BP[@]}" rmi --all --force >/dev/null 2>&1 || true
done
fresh_store
rm -rf "$FRESH"

L_PULL=$(med lading/pull)
L_PU=$(med lading/pullunpack)
S_COPY=$(med skopeo/copy)
B_PULL=$(med buildah/pull)
v_pull=$(verdict "$(ratio2 "$S_COPY" "$L_PULL")" ge 1)
digest_note="not checked"
if [ -n "$L_PULL_DIGEST" ]; then
	if [ "$L_PULL_DIGEST" = "$REG_DIGEST" ]; then digest_note="same as the registry's"
	else digest_note="**differs** from the registry's ($L_PULL_DIGEST vs $REG_DIGEST)"; fi
fi

summary "pull of the $PULL_MB MiB, $PULL_LAYERS-layer image from a local registry (ms; skopeo copy in the buildah column)" \
	"$(or_na "$L_PULL")" "$(or_na "$S_COPY")" "lading ≤ skopeo copy" "$v_pull"
summary "pull + unpack of the $PULL_MB MiB image (ms; lading: + one RUN true)" \
	"$(or_na "$L_PU")" "$(or_na "$B_PULL")" "-" "(for information)"

{
	echo "## Pull from a registry"
	echo
	echo "A $PULL_MB MiB image: FROM scratch + $PULL_LAYERS × \`COPY\` of $PULL_LAYER_MB MiB of incompressible data"
	echo "(the first layer also holds the busybox root filesystem), $REG_LAYERS gzip layers, $REG_MIB MiB in"
	echo "the registry; built by $PULL_BUILT_BY. Registry: Debian's docker-registry on"
	echo "\`$REG\` (plain http, filesystem storage, its blobs in the page cache). Every run starts"
	echo "from a new, empty store; the previous run's writes are flushed (\`sync\`) before it. Medians of $REPS."
	echo
	echo "- lading pull: \`lading pull --root NEW --insecure-registry $REG $IMG\` (downloads the blobs into the store)"
	echo "- lading pull + unpack + one RUN: \`lading build --root NEW\` of \`FROM $IMG\` + \`RUN true\`"
	echo "- skopeo copy: \`skopeo copy docker://$IMG oci:NEW:latest\` (downloads the blobs into an OCI layout)"
	echo "- buildah pull: \`buildah --root NEW --storage-driver overlay pull $IMG\` (downloads and unpacks every layer)"
	echo
	echo "| figure | time (ms) | peak RSS (MiB) | store size after (MiB) |"
	echo "|---|---:|---:|---:|"
	echo "| lading pull | $(or_na "$L_PULL") | $(or_na "$(medrss lading/pull)") | $(or_na "$L_STORE_MIB") |"
	echo "| skopeo copy | $(or_na "$S_COPY") | $(or_na "$(medrss skopeo/copy)") | $(or_na "$S_DIR_MIB") |"
	echo "| lading pull + unpack + RUN true | $(or_na "$L_PU") | $(or_na "$(medrss lading/pullunpack)") | $(or_na "$L_PU_MIB") |"
	echo "| buildah pull (+ unpack) | $(or_na "$B_PULL") | $(or_na "$(medrss buildah/pull)") | $(or_na "$B_STORE_MIB") |"
	echo
	echo "- skopeo copy / lading pull: $(ratio2 "$S_COPY" "$L_PULL"); target lading pull ≤ skopeo copy: $v_pull"
	echo "- buildah pull / lading pull + unpack + RUN: $(ratio2 "$B_PULL" "$L_PU")"
	echo "- lading pull's manifest digest: $digest_note"
	echo "- store size: lading keeps the gzip blobs and the unpacked snapshots; buildah keeps only the"
	echo "  unpacked layers (it does not store the compressed blobs)."
	echo "- lading and skopeo fsync every blob they store; lading (its snapshots) and buildah sync"
	echo "  their metadata but not the unpacked files. The previous run's writes are flushed before each"
	echo "  run, untimed."
	echo
	busy_note lading/pull skopeo/copy lading/pullunpack buildah/pull
	echo "Raw run times (ms), peak RSS (MiB), the CPUs other processes kept busy (the registry"
	echo "left out), and the CPUs the registry used serving the blobs:"
	echo
	for s in lading/pull skopeo/copy lading/pullunpack buildah/pull; do
		echo "- $s: $(raw "$s"); RSS $(rawrss "$s"); other load $(rawother "$s"); registry $(rawreg "$s")"
	done
	echo
} >"$W/section-pull.md"

# The registry and its data are not needed any more.
stop_registry
rm -rf "$PW"
