#!/usr/bin/env bash
# Measures authenticated GET /api/v1/me (JWT check, the middleware chain, one
# statement reading the user, their memberships and the organization's state)
# under wrk at 64 connections, beside the honest baseline in the same run: a
# bare Gin handler that reads one user row by primary key through sqlx as the
# same application role (bench/baregin), and prints both and their ratio.
#
# Needs PostgreSQL (superuser URL in KEEL_BENCH_ADMIN_URL, default the local
# trust-auth server) and redis-server on PATH; starts its own Redis, scratch
# database, API and Gin baseline on loopback ports and removes them after.
# Installs wrk (Debian package) when missing.
#
#   bench/wrk-me.sh                      # 5 rounds of 10 s per server
#   ROUNDS=3 DURATION=30s bench/wrk-me.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
export PGOPTIONS="-c client_min_messages=warning"
ADMIN_URL=${KEEL_BENCH_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}
DB=keel_bench_identity
API_PORT=${API_PORT:-18180}
GIN_PORT=${GIN_PORT:-18181}
REDIS_PORT=${REDIS_PORT:-18179}

if ! command -v wrk >/dev/null; then
  echo "wrk-me: installing wrk" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  else sudo apt-get install -y wrk >/dev/null; fi
fi

BENCH_DB=$DB BENCH_ROLE=keel_bench_app METRICS_PORT=${METRICS_PORT:-18182}
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT
bench_stack ./bench/baregin
export LOG_LEVEL=error
# seed-demo refuses ENV=production; the api still runs as production.
ENV=staging "$work/keelctl" seed-demo >/dev/null

"$work/api" 2>"$work/api.log" &
pids+=($!)
owner_id=$(psql "$DATABASE_OWNER_URL" -Atqc "SELECT id FROM users WHERE email = 'owner@demo.keel.localhost'")
"$work/baregin" "127.0.0.1:$GIN_PORT" "$DATABASE_URL" "$owner_id" &
pids+=($!)
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$API_PORT/healthz" >/dev/null && curl -sf "http://127.0.0.1:$GIN_PORT/me" >/dev/null && break
  sleep 0.1
done

token=$(curl -sf -X POST "http://127.0.0.1:$API_PORT/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d '{"email":"owner@demo.keel.localhost","password":"keel-demo-password-2026"}' |
  python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])')
curl -sf "http://127.0.0.1:$API_PORT/api/v1/me" -H "Authorization: Bearer $token" >/dev/null

run() { wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@"; }
rps() { awk '/^Requests\/sec/ {print $2}' "$1"; }
non2xx() { awk '/Non-2xx/ {print $NF}' "$1"; }
# Rounds alternate the two servers, so both see the same machine load; the
# result is the median of the per-round ratios.
ratios=()
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round: bare Gin + sqlx: GET /me (one indexed row by primary key, app role, no middleware, no auth)"
  run "http://127.0.0.1:$GIN_PORT/me" | tee "$work/gin.txt"
  echo "== round $round: Keel API: authenticated GET /api/v1/me (JWT + middleware chain + one row: user and memberships)"
  run -H "Authorization: Bearer $token" "http://127.0.0.1:$API_PORT/api/v1/me" | tee "$work/me.txt"
  if [ -n "$(non2xx "$work/gin.txt")" ]; then echo "wrk-me: the baseline had non-2xx answers: $(non2xx "$work/gin.txt")" >&2; exit 1; fi
  if [ -n "$(non2xx "$work/me.txt")" ]; then echo "wrk-me: GET /me had non-2xx answers: $(non2xx "$work/me.txt")" >&2; exit 1; fi
  g=$(rps "$work/gin.txt"); m=$(rps "$work/me.txt")
  r=$(echo "$m / $g" | bc -l)
  ratios+=("$r")
  printf 'round %d: bare Gin + sqlx %s req/s, GET /me %s req/s, ratio %.2f\n' "$round" "$g" "$m" "$r" | tee -a "$work/rounds.txt"
done
echo
cat "$work/rounds.txt"
median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
printf 'median ratio of GET /me to bare Gin + sqlx: %.2f over %d rounds (%d connections, %s each, %d cores)\n' "$median" "$ROUNDS" "$CONNS" "$DURATION" "$(nproc)"
