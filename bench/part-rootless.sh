# bench/part-rootless.sh — sourced by bench/run.sh (BENCH_ONLY=rootless).
# lading rootless (an unprivileged user with /etc/subuid and /etc/subgid
# ranges, made here when missing: the tests' user "ladingrootless") beside
# lading as root, on the same recipes:
#   - RUN per-step overhead, no cache: (T(N steps) - T(0 steps)) / N, with
#     --network none in both modes (the same isolation; rootless pasta needs
#     /dev/net/tun mode 0666, root's does not) and in the default network;
#   - no-op rebuild of the N-step recipe over a 2,000-file context.
# Target: rootless within 1.5x of root. Writes $W/section-rootless.md and
# summary rows.

RL_USER=ladingrootless
RL_TARGET=1.5
STEPS=${BENCH_STEPS:-50}

if ! id "$RL_USER" >/dev/null 2>&1; then
	useradd --system --no-create-home --shell /usr/sbin/nologin "$RL_USER" || die "useradd $RL_USER"
fi
grep -q "^$RL_USER:" /etc/subuid || usermod --add-subuids 524288-589823 "$RL_USER" || die "usermod --add-subuids"
grep -q "^$RL_USER:" /etc/subgid || usermod --add-subgids 524288-589823 "$RL_USER" || die "usermod --add-subgids"
command -v newuidmap >/dev/null || die "newuidmap missing (make deps installs uidmap)"

# The user's own directory: home, store, runtime dir, a copy of lading, the
# base archive and the context. $W stays closed to it except for traversal.
RL=$W/rootless
mkdir -p "$RL/home" "$RL/data" "$RL/run" "$RL/ctx"
cp "$LADING" "$RL/lading"
cp "$W/busybox.tar" "$RL/busybox.tar"
for d in $(seq -w 0 19); do
	mkdir -p "$RL/ctx/d$d"
	for f in $(seq -w 0 99); do echo "$d/$f" >"$RL/ctx/d$d/f$f"; done
done
chown -R "$RL_USER:" "$RL"
chmod o+x "$W"

{
	echo "FROM bench-busybox:latest"
	echo "COPY . /ctx/"
	for i in $(seq 1 "$STEPS"); do echo "RUN echo $i > /f$i"; done
} >"$RL/N.recipe"
printf 'FROM bench-busybox:latest\nCOPY . /ctx/\n' >"$RL/0.recipe"
printf 'FROM oci-archive:%s:latest\n' "$RL/busybox.tar" >"$RL/import.recipe"
chmod a+r "$RL"/*.recipe

# rl_cmd MODE ARGS...: sets CMD to lading build as root (its own store) or
# as the rootless user (its XDG directories).
rl_cmd() {
	local mode=$1; shift
	if [ "$mode" = root ]; then
		CMD=("$LADING" build --root "$RL/root-store" "$@")
	else
		CMD=(setpriv --reuid "$RL_USER" --regid "$RL_USER" --clear-groups
			env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$RL/home" XDG_DATA_HOME="$RL/data" XDG_RUNTIME_DIR="$RL/run"
			"$RL/lading" build "$@")
	fi
}

RL_OK=$LADING_OK
for mode in root rootless; do
	[ "$RL_OK" = 1 ] || break
	rl_cmd "$mode" --progress quiet -t bench-busybox:latest -f "$RL/import.recipe" "$RL/ctx"
	if ! "${CMD[@]}" >"$W/logs/rootless-import-$mode" 2>&1; then
		show_failure "$W/logs/rootless-import-$mode" "lading ($mode) import of the base"
		RL_OK=0
		lading_failed "rootless part: importing the base ($mode) failed"
	fi
done

rl_timed() { # SERIES MODE ARGS...
	local series=$1 mode=$2; shift 2
	[ "$RL_OK" = 1 ] || return 0
	rl_cmd "$mode" "$@"
	timed "$series" "${CMD[@]}" || { RL_OK=0; lading_failed "rootless part: $series failed"; }
}

for rep in $(seq 1 "$REPS"); do
	log "rootless run $rep/$REPS"
	for mode in root rootless; do
		for net in none default; do
			rl_timed "$mode-$net/0" "$mode" --no-cache --network "$net" --progress quiet -f "$RL/0.recipe" "$RL/ctx"
			rl_timed "$mode-$net/N" "$mode" --no-cache --network "$net" --progress quiet -f "$RL/N.recipe" "$RL/ctx"
		done
	done
done
for mode in root rootless; do
	rl_cmd "$mode" --progress quiet -f "$RL/N.recipe" "$RL/ctx"
	[ "$RL_OK" = 1 ] && { "${CMD[@]}" >/dev/null 2>&1 || true; } # fills the cache
done
for rep in $(seq 1 "$FAST_REPS"); do
	for mode in root rootless; do
		rl_timed "$mode/noop" "$mode" --progress quiet -f "$RL/N.recipe" "$RL/ctx"
	done
done

rl_step() { # SERIES-PREFIX -> per-step ms (one decimal), or empty
	local t0 tn
	t0=$(med "$1/0"); tn=$(med "$1/N")
	[ -n "$t0" ] && [ -n "$tn" ] || return 0
	awk -v a="$t0" -v b="$tn" -v n="$STEPS" 'BEGIN { printf "%.1f", (b - a) / n }'
}
RL_NONE=$(ratio2 "$(rl_step rootless-none)" "$(rl_step root-none)")
RL_DEF=$(ratio2 "$(rl_step rootless-default)" "$(rl_step root-default)")
RL_NOOP=$(ratio2 "$(med rootless/noop)" "$(med root/noop)")
summary "rootless / root, RUN per-step overhead, --network none" "$RL_NONE" "" "≤ $RL_TARGET" "$(verdict "$RL_NONE" le "$RL_TARGET")"
summary "rootless / root, no-op rebuild" "$RL_NOOP" "" "≤ $RL_TARGET" "$(verdict "$RL_NOOP" le "$RL_TARGET")"

TUN_MODE=$(stat -c %a /dev/net/tun 2>/dev/null || echo missing)
{
	echo "## Rootless beside root"
	echo
	echo "lading as root and as an unprivileged user ($RL_USER, subordinate ids from /etc/subuid) on the same"
	echo "recipes: FROM busybox + COPY of a 2,000-file context + $STEPS x \`RUN echo \$i > /f\$i\` against the same"
	echo "without the RUN steps, \`--no-cache\`; medians of $REPS runs ($FAST_REPS for the no-op rebuild)."
	echo "/dev/net/tun has mode $TUN_MODE: rootless, the default network has pasta only when others may open it"
	echo "(0666), else loopback only."
	echo
	echo "| mode | network | T0 (ms) | T$STEPS (ms) | per step (ms) | no-op rebuild (ms) |"
	echo "|---|---|---:|---:|---:|---:|"
	for mode in root rootless; do
		for net in none default; do
			printf '| %s | %s | %s | %s | %s | %s |\n' "$mode" "$net" "$(or_na "$(med "$mode-$net/0")")" \
				"$(or_na "$(med "$mode-$net/N")")" "$(or_na "$(rl_step "$mode-$net")")" \
				"$([ "$net" = default ] && or_na "$(med "$mode/noop")" || echo -)"
		done
	done
	echo
	echo "- rootless / root, per-step overhead: **$RL_NONE** with --network none, $RL_DEF in the default network (target ≤ $RL_TARGET)"
	echo "- rootless / root, no-op rebuild: **$RL_NOOP** (target ≤ $RL_TARGET)"
	echo
	busy_note root-none/0 root-none/N rootless-none/0 rootless-none/N root/noop rootless/noop
} >"$W/section-rootless.md"
