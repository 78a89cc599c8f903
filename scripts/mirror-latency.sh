#!/bin/bash
# A/B: POST /add?wait=checkpoint latency, raw mode, with and without --bucket
# (BENCHMARKS.md, "Bucket mirror"). Usage: scripts/mirror-latency.sh BIN S3SERVER [ROUNDS] [PER]
# with BIN from `go build ./cmd/indelible` and S3SERVER from
# `go build ./internal/s3test/s3server`.
set -e
BIN=$1; S3=$2; ROUNDS=${3:-4}; PER=${4:-50}
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
W=$(mktemp -d)
$S3 -dir $W/s3 -addr 127.0.0.1:0 -bucket log > $W/s3.out 2>/dev/null &
S3PID=$!
sleep 1
S3URL=$(head -1 $W/s3.out | sed 's/listening on //')
start() { # $1 name, rest args
  local name=$1; shift
  $BIN serve --mode raw --data $W/$name --listen 127.0.0.1:0 "$@" > $W/$name.out 2>$W/$name.err &
  echo $! > $W/$name.pid
  for i in $(seq 100); do grep -q 'listening on' $W/$name.out 2>/dev/null && break; sleep 0.2; done
  grep 'listening on' $W/$name.out | awk '{print $3}'
}
A=$(start plain)
B=$(start bucket --bucket "s3://log?endpoint=$S3URL&region=us-east-1&path_style=true")
for r in $(seq $ROUNDS); do
  for pair in "plain $A" "bucket $B"; do
    set -- $pair
    for i in $(seq $PER); do
      curl -s -o /dev/null -w "$1 %{time_total}\n" --data-binary "entry $r $i" "$2/add?wait=checkpoint" >> $W/lat.txt
    done
  done
done
kill $(cat $W/plain.pid) $(cat $W/bucket.pid) $S3PID
wait 2>/dev/null || true
for k in plain bucket; do
  grep "^$k " $W/lat.txt | awk '{print $2*1000}' | sort -n | awk -v k=$k '{a[NR]=$1} END {printf "%s n=%d p50=%.1fms p90=%.1fms p99=%.1fms\n", k, NR, a[int(NR*0.5)], a[int(NR*0.9)], a[int(NR*0.99)]}'
done
rm -rf "$W"
