#!/bin/bash
# rss-hammer.sh: RSS of `indelible serve --mode raw` under tessera's hammer.
#
#   scripts/rss-hammer.sh [minutes] [writes/s]     (defaults: 30, 5000)
#
# Builds indelible and tessera v1.0.4's hammer into $TMPDIR, starts a fresh
# raw-mode store, runs the hammer (256 writers, 128-byte leaves) for the
# given time, and samples the server's VmRSS, tree size and load average
# every 10 s into $OUT/rss.tsv (OUT defaults to a new temp directory).
set -euo pipefail
minutes=${1:-30}
rate=${2:-5000}
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d)}
port=${PORT:-18800}
go build -o "$OUT/indelible" "$root/cmd/indelible"
mkdir -p "$OUT/hm"
(cd "$OUT/hm" && printf 'module hm\ngo 1.26.0\nrequire github.com/transparency-dev/tessera v1.0.4\n' > go.mod &&
	GOFLAGS=-mod=mod go build -o "$OUT/hammer" github.com/transparency-dev/tessera/internal/hammer)
"$OUT/indelible" serve --mode raw --data "$OUT/store" --listen "127.0.0.1:$port" > "$OUT/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -f "$OUT/store/log.pub" ] && break; sleep 0.1; done
echo "start $(date -u +%FT%TZ) commit $(git -C "$root" rev-parse --short HEAD) $(uptime)" > "$OUT/rss.tsv"
(while rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status 2>/dev/null) && [ -n "$rss" ]; do
	printf '%s\t%s\t%s\t%s\n' "$(date -u +%T)" "$rss" \
		"$(curl -s "http://127.0.0.1:$port/checkpoint" | sed -n 2p)" "$(cut -d' ' -f1 /proc/loadavg)" >> "$OUT/rss.tsv"
	sleep 10
done) &
"$OUT/hammer" --log_public_key="$(cat "$OUT/store/log.pub")" --log_url="http://127.0.0.1:$port/" \
	--num_writers=256 --max_write_ops="$rate" --leaf_min_size=128 --dup_chance=0 \
	--show_ui=false --max_runtime="${minutes}m" > "$OUT/hammer.log" 2>&1 || true
sleep 11
echo "samples (time, VmRSS KiB, tree size, load) in $OUT/rss.tsv"
