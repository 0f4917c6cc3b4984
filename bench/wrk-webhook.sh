#!/usr/bin/env bash
# Measures Stripe webhook intake, POST /api/v1/stripe/webhook (signature
# verified, event stored in stripe_events, stripe:event outbox row, one
# transaction), under a burst of distinct signed events from CONNS
# concurrent senders (bench/webhookload), beside the honest baseline in the
# same run: a bare Gin handler that only reads the body (bench/baregin
# POST /webhook). Prints events/s and p99 of both and their ratio per round,
# then checks that every accepted event is stored once with one outbox row.
#
# Needs PostgreSQL (superuser URL in KEEL_BENCH_ADMIN_URL, default the local
# trust-auth server) and redis-server on PATH; starts its own Redis, scratch
# database, API and Gin baseline on loopback ports and removes them after.
# No worker runs: the outbox rows wait, as they would behind a slow fleet.
#
#   bench/wrk-webhook.sh                  # 5 rounds of 10 s per server
#   ROUNDS=3 DURATION=30s CONNS=64 bench/wrk-webhook.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-32}
export PGOPTIONS="-c client_min_messages=warning"
ADMIN_URL=${KEEL_BENCH_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}
API_PORT=${API_PORT:-18280}
GIN_PORT=${GIN_PORT:-18281}
REDIS_PORT=${REDIS_PORT:-18279}
BENCH_DB=keel_bench_webhook BENCH_ROLE=keel_bench_webhook_app METRICS_PORT=${METRICS_PORT:-18282}
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT
bench_stack ./bench/baregin ./bench/webhookload
export LOG_LEVEL=error
export STRIPE_WEBHOOK_SECRET=whsec_keel_bench_secret

"$work/api" 2>"$work/api.log" &
pids+=($!)
"$work/baregin" "127.0.0.1:$GIN_PORT" "$DATABASE_URL" "$(cat /proc/sys/kernel/random/uuid)" &
pids+=($!)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$API_PORT/healthz" >/dev/null && curl -sf -X POST "http://127.0.0.1:$GIN_PORT/webhook" >/dev/null && break
  sleep 0.1
done

load() { "$work/webhookload" -url "$1" -secret "$STRIPE_WEBHOOK_SECRET" -c "$CONNS" -d "$DURATION" -run "r$2"; }
field() { python3 -c "import sys, json; print(json.load(open('$1'))['$2'])"; }
ratios=()
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round: bare Gin: POST /webhook (reads the body, answers 200)"
  load "http://127.0.0.1:$GIN_PORT/webhook" "g$round" | tee "$work/gin.json"
  echo "== round $round: Keel API: POST /api/v1/stripe/webhook (verify, store, outbox row)"
  load "http://127.0.0.1:$API_PORT/api/v1/stripe/webhook" "k$round" | tee "$work/keel.json"
  for f in gin keel; do
    if [ "$(field "$work/$f.json" other)" != 0 ]; then echo "wrk-webhook: $f had non-2xx answers or errors" >&2; exit 1; fi
  done
  g=$(field "$work/gin.json" events_per_s); k=$(field "$work/keel.json" events_per_s)
  r=$(echo "$k / $g" | bc -l)
  ratios+=("$r")
  printf 'round %d: bare Gin %.0f/s (p99 %s ms), webhook %.0f/s (p99 %s ms), ratio %.2f\n' "$round" "$g" \
    "$(field "$work/gin.json" p99_ms)" "$k" "$(field "$work/keel.json" p99_ms)" "$r" | tee -a "$work/rounds.txt"
  echo "$(field "$work/keel.json" accepted_2xx)" >>"$work/accepted.txt"
done
echo
cat "$work/rounds.txt"
median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
printf 'median ratio of webhook intake to the bare body read: %.2f over %d rounds (%d senders, %s each, %d cores)\n' \
  "$median" "$ROUNDS" "$CONNS" "$DURATION" "$(nproc)"
accepted=$(paste -sd+ "$work/accepted.txt" | bc)
stored=$(psql "$DATABASE_OWNER_URL" -Atqc "SELECT count(*) FROM stripe_events")
queued=$(psql "$DATABASE_OWNER_URL" -Atqc "SELECT count(*) FROM outbox WHERE task_type = 'stripe:event'")
echo "accepted $accepted, stored $stored, outbox rows $queued"
if [ "$accepted" != "$stored" ] || [ "$stored" != "$queued" ]; then
  echo "wrk-webhook: accepted, stored and queued differ" >&2
  exit 1
fi
