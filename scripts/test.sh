#!/usr/bin/env bash
# The whole test suite, as the README gives it. Short versions of the crash,
# kill and soak tests run here; long ones are opt-in (see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race -count=1 -timeout 30m ./...
# The PostgreSQL pass: the ledger, events, audited-read, alert and export suites again, every
# log in PostgreSQL (internal/pgtest starts a private cluster). Pebble-only
# tests skip there with their reason.
if [ "${CI:-}" = true ] || command -v /usr/lib/postgresql/15/bin/initdb >/dev/null || command -v initdb >/dev/null; then
	# Without -race: the race detector covers the PostgreSQL code in the run
	# above (ledger/kv/pgkv, the fence and serve --store tests); this pass is
	# for parity, and -race more than doubles it (measured at load 20: 368 s
	# with it).
	INDELIBLE_TEST_STORE=postgres go test -count=1 -timeout 30m ./ledger ./eventstore ./audited ./alert ./export
else
	echo "PostgreSQL 15 is not installed: the PostgreSQL pass is skipped (apt-get install postgresql-15)"
fi
