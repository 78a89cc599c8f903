#!/usr/bin/env bash
# The whole test suite, as the README gives it. Short versions of the crash,
# kill and soak tests run here; long ones are opt-in (see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race -count=1 -timeout 30m ./...
