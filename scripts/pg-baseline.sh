#!/bin/bash
# pg-baseline.sh: Indelible's batched ingest and queries beside a PostgreSQL
# 15 audit table on the same workload, rounds alternating (issue 21).
#
#   scripts/pg-baseline.sh [rounds] [seconds]      (defaults: 3, 20)
#
# Workload (cmd/indelible/internal/loadgen): the events generator's events (~300 B of
# JSON each, 5,000 actors, 40 actions, ...), 1,000 per request, 4 writers,
# closed loop, once with an id on every event and once without.
#
# PostgreSQL: a throwaway cluster (initdb and pg_ctl as the postgres user,
# a private temporary directory, a random loopback port, fsync and
# synchronous_commit on, trust authentication on loopback only), the events
# COPYed by 4 psql sessions (one COPY, one transaction, per request) into a
# table with a unique index on (writer, id) and an index per query
# GET /v1/events answers (TestPGBench). Server CPU: the cluster's processes.
#
# Indelible: the real ledger, events layer and HTTP API on a loopback port in
# the test process (TestEventsBench). Its CPU is the whole process's, so it
# also counts the load generator's HTTP client (a few us per event): an
# overestimate of the server's.
#
# Each round prints both sides; the summary gives the medians and the
# ratios. Output and stores go to $OUT (default: a new temporary directory).
set -euo pipefail
rounds=${1:-3}
secs=${2:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
chmod 755 "$OUT"

if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/15/bin/initdb >/dev/null 2>&1; then
	apt-get install -y postgresql-15 >/dev/null
fi
pgbin=/usr/lib/postgresql/15/bin
[ -x "$pgbin/initdb" ] || pgbin=$(dirname "$(command -v initdb)")
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }

pgdata=$OUT/pgdata
port=$((20000 + RANDOM % 20000))
mkdir -p "$pgdata"
[ "$(id -u)" = 0 ] && chown postgres "$pgdata" "$OUT"
as_pg "'$pgbin/initdb' -D '$pgdata' -U postgres --auth=trust -E UTF8 >'$OUT/initdb.log' 2>&1"
cat >>"$pgdata/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$OUT'
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 256MB
max_wal_size = 4GB
EOF
as_pg "'$pgbin/pg_ctl' -D '$pgdata' -l '$OUT/pg.log' -w start >/dev/null"
stop_pg() { as_pg "'$pgbin/pg_ctl' -D '$pgdata' -m fast -w stop >/dev/null" || true; }
trap stop_pg EXIT
pgpid=$(head -1 "$pgdata/postmaster.pid")
echo "PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (pid $pgpid), data in $pgdata"

(cd "$root" && go test -c -o "$OUT/loadgen.test" ./cmd/indelible/internal/loadgen)
for r in $(seq "$rounds"); do
	echo "== round $r, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	INDELIBLE_PG_BENCH=1 PGBENCH_PORT=$port PGBENCH_PID=$pgpid EVBENCH_DUR=${secs}s \
		"$OUT/loadgen.test" -test.run '^TestPGBench$' -test.v -test.timeout 0 2>&1 |
		grep -E 'PostgreSQL|FAIL|Error' | tee -a "$OUT/pg.txt"
	echo "   load average $(cut -d' ' -f1-3 /proc/loadavg)"
	INDELIBLE_EVENTS_BENCH=1 EVBENCH_DIR="$OUT/ind$r" EVBENCH_DUR=${secs}s EVBENCH_PHASES=batch,batchnoid,query \
		"$OUT/loadgen.test" -test.run '^TestEventsBench$' -test.v -test.timeout 0 2>&1 |
		grep -E 'batched|query|store|FAIL|Error' | tee -a "$OUT/ind.txt"
done

# Medians of the rounds: events/s and CPU per event, with ids and without.
med() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rate() { grep "$2" "$1" | grep -oE '[0-9]+ events/s' | awk '{print $1}' | med; }
cpuper() { grep "$2" "$1" | grep -oE 'CPU [0-9.]+' | grep -oE '[0-9.]+' | med; }
echo
echo "== medians of $rounds rounds ($secs s each)"
for ids in "with ids" "without ids"; do
	pr=$(rate "$OUT/pg.txt" "COPY $ids"); pc=$(cpuper "$OUT/pg.txt" "COPY $ids")
	ir=$(rate "$OUT/ind.txt" "NDJSON $ids"); ic=$(cpuper "$OUT/ind.txt" "NDJSON $ids")
	awk -v w="$ids" -v pr="$pr" -v pc="$pc" -v ir="$ir" -v ic="$ic" 'BEGIN {
		printf "%-12s PostgreSQL %7.0f events/s, %5.1f us CPU/event | Indelible %7.0f events/s, %5.1f us CPU/event | rate ratio %.2fx, CPU ratio %.2fx\n",
			w, pr, pc, ir, ic, ir / pr, ic / pc }'
done
echo "Output in $OUT"
