#!/usr/bin/env bash
# Login (argon2id) and refresh-token rotation rates through the real router,
# PostgreSQL and Redis: the Go benchmarks in internal/httpapi. `make bench`
# runs this with the other bench/*.sh scripts.
#
#   bench/identity-rates.sh              # 3 s per benchmark
#   BENCHTIME=10s bench/identity-rates.sh
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench '^Benchmark(Login|Refresh)$' -benchtime "${BENCHTIME:-3s}" ./internal/httpapi |
  grep -E '^(Benchmark|goos|goarch|cpu|ok|FAIL)'
