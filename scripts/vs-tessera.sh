#!/bin/bash
# vs-tessera.sh: Indelible (serve --mode raw) and Tessera v1.0.4's POSIX
# conformance server side by side under Tessera's hammer, alternating.
#
#   scripts/vs-tessera.sh [rounds] [seconds]      (defaults: 3, 30)
#
# Each round starts each server on a fresh store, runs the hammer (256
# writers, 128-byte leaves, no duplicates, its default readers) for the given
# time, and prints the entries appended per second (tree size growth over
# the run, read from the checkpoint) and the server's CPU time per entry
# (utime+stime from /proc, before and after). Everything goes to $OUT.
set -euo pipefail
rounds=${1:-3}
secs=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d)}
go build -o "$OUT/indelible" "$root/cmd/indelible"
mkdir -p "$OUT/hm"
(cd "$OUT/hm" && printf 'module hm\ngo 1.26.0\nrequire github.com/transparency-dev/tessera v1.0.4\n' > go.mod &&
	GOFLAGS=-mod=mod go build -o "$OUT/hammer" github.com/transparency-dev/tessera/internal/hammer &&
	GOFLAGS=-mod=mod go build -o "$OUT/tessera-posix" github.com/transparency-dev/tessera/cmd/conformance/posix)
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
size() { curl -s "$1/checkpoint" | sed -n 2p; }

run() { # name pid url pubkey
	local name=$1 pid=$2 url=$3 pub=$4
	for _ in $(seq 100); do [ -n "$(size "$url")" ] && break; sleep 0.1; done
	local c0 n0 c1 n1 load
	load=$(cut -d' ' -f1 /proc/loadavg)
	c0=$(cpu "$pid"); n0=$(size "$url"); n0=${n0:-0}
	"$OUT/hammer" --log_public_key="$pub" --log_url="$url/" --num_writers=256 --max_write_ops=1000000 \
		--leaf_min_size=128 --dup_chance=0 --show_ui=false --max_runtime="${secs}s" > "$OUT/hammer-$name.log" 2>&1 || true
	sleep 2 # the last checkpoint (Tessera publishes one a second)
	c1=$(cpu "$pid"); n1=$(size "$url")
	awk -v n="$name" -v l="$load" -v d=$((n1 - n0)) -v c=$((c1 - c0)) -v s="$secs" -v t="$tck" \
		'BEGIN { printf "%-9s load %s: %d entries, %.0f entries/s, server CPU %.1f us/entry\n", n, l, d, d / s, (c / t) * 1e6 / d }'
	kill "$pid"; wait "$pid" 2>/dev/null || true
}

for r in $(seq "$rounds"); do
	d=$OUT/round$r; mkdir -p "$d"
	"$OUT/indelible" serve --mode raw --data "$d/ind" --listen 127.0.0.1:18900 > "$d/ind.log" 2>&1 &
	pid=$!
	for _ in $(seq 50); do [ -f "$d/ind/log.pub" ] && break; sleep 0.1; done
	run indelible $pid http://127.0.0.1:18900 "$(cat "$d/ind/log.pub")"

	"$OUT/indelible" keygen example.com/tessera --out "$d/tessera.key" --pub "$d/tessera.pub" > /dev/null 2>&1
	"$OUT/tessera-posix" --storage_dir="$d/tes" --listen=127.0.0.1:18901 --private_key="$d/tessera.key" > "$d/tes.log" 2>&1 &
	pid=$!
	run tessera $pid http://127.0.0.1:18901 "$(cat "$d/tessera.pub")"
done
