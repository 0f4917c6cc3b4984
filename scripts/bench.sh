#!/usr/bin/env bash
# `make bench`: Keel's throughput benchmarks, each beside bare Asynq in the
# same run. Raw output and a summary land in bench/results/; the numbers
# quoted in docs/benchmarks.md come from these files.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
scripts/services.sh
# Only the servers tests start today; stripe-mock and the S3 server join
# when billing and files have tests.
scripts/tools.sh mailpit
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
N=${BENCH_N:-20000}
COUNT=${BENCH_COUNT:-3}

raw=bench/results/throughput-$stamp.txt
echo "== throughput (N=$N, count=$COUNT) -> $raw"
# Keel's path and its bare-Asynq twin alternate within one run (-count), so
# both see the same machine load.
go test -run '^$' -bench 'EnqueueBare|OutboxRelayDrain|OutboxRelay$|ProcessBare|ProcessWorker' \
  -benchtime "${N}x" -count "$COUNT" ./bench/ | tee "$raw"

go run ./bench/summarize "$raw" | tee bench/results/throughput-latest.md

echo "== worker fleet: email:send end to end (outbox -> relay -> worker -> Mailpit)"
go test -run '^$' -bench 'EmailSend' -benchtime "${BENCH_EMAIL_N:-2000}x" ./bench/fleet/ | tee "bench/results/emailsend-$stamp.txt"

if [ -d bench/startup ]; then
  echo "== startup and idle memory"
  go run ./bench/startup | tee "bench/results/startup-$stamp.json"
fi
for s in bench/*.sh; do
  [ -e "$s" ] || continue
  echo "== $s"
  bash "$s" | tee "bench/results/$(basename "$s" .sh)-$stamp.txt"
done
echo "results in bench/results/"
