#!/usr/bin/env bash
# Memory under a burst of registrations: each one runs argon2id at 19 MiB,
# and without a bound a burst is that many times 19 MiB at once. Starts the
# real api binary (its own Redis and scratch database, loopback only), sends
# N registrations at the same moment (bench/registerload; each from its own
# X-Forwarded-For address through TRUSTED_PROXIES=127.0.0.1, so the per-IP
# budget is not what refuses them), and reports the api's peak RSS (VmHWM)
# and the share answered 503 server_busy. Each scenario gets a fresh api.
#
#   bench/register-memory.sh                  # N=200, the three scenarios below
#   N=500 SCENARIOS="bounded patient" bench/register-memory.sh
#
# Scenarios: "bounded" runs with the defaults (AUTH_HASH_CONCURRENCY derived
# from memory and cores, AUTH_HASH_WAIT=2s); "patient" is the same bound with
# AUTH_HASH_WAIT=60s, so every registration waits its turn (the bound's cost
# in latency instead of 503s); "unbounded" sets AUTH_HASH_CONCURRENCY=N, as
# Keel behaved before the bound (it takes about N x 18 MiB for a moment).
# The two bounded scenarios must keep the api's peak RSS under the ceiling,
# 96 MiB + 48 MiB per hashing slot (192 MiB with the 2 slots of a 2-core
# machine; CEILING_MIB overrides it), or the script exits 1: the idle api is
# about 40 MiB, N requests in flight add some more, and each slot is one
# 19 MiB argon2id run that the garbage collector (GOGC=100) may let the heap
# hold twice, plus slack.
# Needs PostgreSQL (superuser URL in KEEL_BENCH_ADMIN_URL, default the local
# trust-auth server) and redis-server on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200}
SCENARIOS=${SCENARIOS:-bounded patient unbounded}
export PGOPTIONS="-c client_min_messages=warning"
ADMIN_URL=${KEEL_BENCH_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}
DB=keel_bench_regmem
ROLE=keel_bench_regmem_app
API_PORT=${API_PORT:-18190}
REDIS_PORT=${REDIS_PORT:-18189}
METRICS_PORT=${METRICS_PORT:-18191}

BENCH_DB=$DB BENCH_ROLE=$ROLE
# shellcheck source=bench/lib.sh
. bench/lib.sh
api_pid=
cleanup() {
  [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null || true
  bench_cleanup
}
trap cleanup EXIT
bench_stack ./bench/registerload
export LOG_LEVEL=info TRUSTED_PROXIES=127.0.0.1

status=0
for scenario in $SCENARIOS; do
  case $scenario in
    bounded) extra=() ;;
    patient) extra=(AUTH_HASH_WAIT=60s) ;;
    unbounded) extra=(AUTH_HASH_CONCURRENCY="$N") ;;
    *) echo "register-memory: unknown scenario $scenario" >&2; exit 2 ;;
  esac
  redis-cli -p "$REDIS_PORT" flushall >/dev/null
  env "${extra[@]}" "$work/api" 2>"$work/api-$scenario.log" &
  api_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$API_PORT/readyz" >/dev/null && break; sleep 0.1; done
  conc=$(grep -o '"hash_concurrency":[0-9]*' "$work/api-$scenario.log" | cut -d: -f2 || true)
  out=$("$work/registerload" -url "http://127.0.0.1:$API_PORT" -n "$N" -pid "$api_pid" -run "$scenario")
  kill "$api_pid"; wait "$api_pid" 2>/dev/null || true; api_pid=
  echo "$scenario (${extra[*]:-defaults}; hash concurrency $conc): $out"
  peak=$(echo "$out" | python3 -c 'import sys, json; print(round(json.load(sys.stdin)["peak_rss_mib"]))')
  if [ "$scenario" != unbounded ]; then
    ceiling=${CEILING_MIB:-$((96 + 48 * conc))}
    if [ "$peak" -le "$ceiling" ]; then
      echo "$scenario: peak RSS $peak MiB, under the ceiling of $ceiling MiB"
    else
      echo "register-memory: $scenario: peak RSS $peak MiB, over the ceiling of $ceiling MiB" >&2
      status=1
    fi
  fi
done
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
