#!/usr/bin/env bash
# `make bench`: Keel's throughput benchmarks, each beside bare Asynq in the
# same run. Raw output and a summary land in bench/results/; the numbers
# quoted in docs/benchmarks.md come from these files.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
scripts/services.sh
# The servers tests start: Mailpit, versitygw (S3) and stripe-mock.
scripts/tools.sh mailpit versitygw stripe-mock
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
N=${BENCH_N:-20000}
COUNT=${BENCH_COUNT:-3}

raw=bench/results/throughput-$stamp.txt
echo "== throughput (N=$N, $COUNT rounds) -> $raw"
: > "$raw"
# Each round runs Keel's path right after its bare-Asynq twin (benchmarks run
# in source order), so a change in the machine's load hits both alike.
for round in $(seq 1 "$COUNT"); do
  echo "-- round $round" | tee -a "$raw"
  go test -run '^$' -bench 'EnqueueBare|OutboxRelayDrain|OutboxRelay$|ProcessBare|ProcessWorker' \
    -benchtime "${N}x" ./bench/ | tee -a "$raw"
done

go run ./bench/summarize "$raw" | tee bench/results/throughput-latest.md

echo "== worker fleet: email:send end to end (outbox -> relay -> worker -> Mailpit)"
go test -run '^$' -bench 'EmailSend' -benchtime "${BENCH_EMAIL_N:-2000}x" ./bench/fleet/ | tee "bench/results/emailsend-$stamp.txt"

if [ -d bench/startup ]; then
  echo "== startup and idle memory"
  go run ./bench/startup | tee "bench/results/startup-$stamp.json"
fi
for s in bench/*.sh; do
  [ -e "$s" ] || continue
  case $s in
    # Called by wrk-resources.sh on the data set it seeds.
    bench/explain-resources.sh) continue ;;
    # Writes its own raw output (and the plans) under this stamp, and
    # appends to bench/results/wrk-resources-summary.txt.
    bench/wrk-resources.sh)
      echo "== $s"
      stamp=$stamp bash "$s"
      continue ;;
  esac
  echo "== $s"
  bash "$s" | tee "bench/results/$(basename "$s" .sh)-$stamp.txt"
done
echo "results in bench/results/"
