#!/usr/bin/env bash
# The figures behind the resource requests and limits in deploy/k8s: each
# binary's memory and CPU, idle and under a small load, read from /proc.
# Starts the real api, worker and scheduler (its own Redis, Mailpit and
# scratch database, loopback only), then:
#
#   idle  IDLE seconds with no traffic (the scheduler's per-minute entries
#         and the relay's polling still run);
#   load  N registrations at once through the api (argon2id, the api's most
#         expensive request; each enqueues a verification email that the
#         worker renders and sends to Mailpit) together with CANARIES
#         ops:canary tasks through outbox, relay, Redis and the worker.
#
# First it times `keelctl migrate up` on the empty scratch database (the
# migration Job's work): peak RSS and CPU seconds, from /usr/bin/time.
# Per binary and phase it then prints RSS (VmRSS at the end of the phase, and the
# peak VmHWM), average CPU over the phase and the busiest second, in
# millicores (utime+stime from /proc/PID/stat, 1000 = one core busy).
#
#   bench/k8s-resources.sh
#   IDLE=60 N=200 CANARIES=5000 WORKER_CONCURRENCY=20 bench/k8s-resources.sh
#
# Needs PostgreSQL (superuser URL in KEEL_BENCH_ADMIN_URL, default the local
# trust-auth server) and redis-server on PATH; installs the pinned Mailpit.
set -euo pipefail
cd "$(dirname "$0")/.."

IDLE=${IDLE:-30}
N=${N:-100}
CANARIES=${CANARIES:-2000}
export PGOPTIONS="-c client_min_messages=warning"
ADMIN_URL=${KEEL_BENCH_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}
DB=keel_bench_k8s
ROLE=keel_bench_k8s_app
API_PORT=${API_PORT:-18290}
REDIS_PORT=${REDIS_PORT:-18289}
METRICS_PORT=${METRICS_PORT:-18291}
WORKER_METRICS_PORT=${WORKER_METRICS_PORT:-18292}
SCHEDULER_METRICS_PORT=${SCHEDULER_METRICS_PORT:-18293}
SMTP_PORT=${SMTP_PORT:-18294}
MAILPIT_PORT=${MAILPIT_PORT:-18295}

scripts/tools.sh mailpit >&2
BENCH_DB=$DB BENCH_ROLE=$ROLE
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT
bench_stack ./cmd/worker ./cmd/scheduler ./bench/registerload
"$work/keelctl" migrate reset >/dev/null
migrate=$( { /usr/bin/time -f '%M %e %U %S' "$work/keelctl" migrate up >/dev/null; } 2>&1 | tail -1)
read -r kb wall user sys <<<"$migrate"
echo "keelctl migrate up (all migrations, empty database): peak RSS $((kb / 1024)) MiB, ${wall}s wall, $(python3 -c "print(round($user + $sys, 2))")s CPU"
.tools/bin/mailpit --smtp "127.0.0.1:$SMTP_PORT" --listen "127.0.0.1:$MAILPIT_PORT" \
  --database "$work/mailpit.db" --smtp-auth-accept-any --smtp-auth-allow-insecure --quiet &
pids+=($!)
export LOG_LEVEL=warn LOG_FORMAT=json TRUSTED_PROXIES=127.0.0.1 SMTP_URL="smtp://127.0.0.1:$SMTP_PORT?tls=none"

"$work/api" 2>"$work/api.log" &
api=$!
pids+=("$api")
METRICS_ADDR=127.0.0.1:$WORKER_METRICS_PORT "$work/worker" 2>"$work/worker.log" &
worker=$!
pids+=("$worker")
METRICS_ADDR=127.0.0.1:$SCHEDULER_METRICS_PORT "$work/scheduler" 2>"$work/scheduler.log" &
scheduler=$!
pids+=("$scheduler")
for port in "$METRICS_PORT" "$WORKER_METRICS_PORT" "$SCHEDULER_METRICS_PORT"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "k8s-resources: a binary on :$port never became ready" >&2; tail -5 "$work"/*.log >&2; exit 1; }
done

# About one line per second and binary: phase, name, time, CPU ticks,
# VmRSS kB, VmHWM kB.
samples=$work/samples
sample() {
  local p b pid
  while :; do
    p=$(cat "$work/phase")
    for b in api:$api worker:$worker scheduler:$scheduler; do
      pid=${b#*:}
      [ -r "/proc/$pid/stat" ] || continue
      echo "$p ${b%%:*} $(date +%s.%N) $(awk '{print $14 + $15}' "/proc/$pid/stat") $(awk '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} END {print r, h}' "/proc/$pid/status")"
    done >>"$samples"
    sleep 1
  done
}
echo idle >"$work/phase"
sample &
sampler=$!
pids+=("$sampler")
sleep "$IDLE"

echo load >"$work/phase"
load_start=$(date +%s.%N)
"$work/keelctl" tasks canary -n "$CANARIES" -wait 5m >"$work/canary.out" &
canary=$!
"$work/registerload" -url "http://127.0.0.1:$API_PORT" -n "$N" -pid "$api" -run "k8s$$" >"$work/register.out"
wait "$canary"
# The verification emails the registrations enqueued: wait for Mailpit to
# hold one per created account, so the worker's sending is in the phase.
created=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["created"])' "$work/register.out")
for _ in $(seq 120); do
  got=$(curl -sf "http://127.0.0.1:$MAILPIT_PORT/api/v1/messages?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
  [ "$got" -ge "$created" ] && break
  sleep 1
done
sleep 2
load_s=$(python3 -c "import time; print(round(time.time() - $load_start, 1))")
echo done >"$work/phase"
sleep 1.5
kill "$sampler"

echo "registrations: $(cat "$work/register.out")"
echo "canaries: $(cat "$work/canary.out"); verification emails in Mailpit: $got of $created; load phase ${load_s}s"
python3 - "$samples" "$(getconf CLK_TCK)" <<'EOF'
import collections, sys
path, hz = sys.argv[1], int(sys.argv[2])
rows = collections.defaultdict(list)
for line in open(path):
    f = line.split()
    if len(f) == 6:
        rows[(f[0], f[1])].append((float(f[2]), int(f[3]), int(f[4]), int(f[5])))
print("%-10s %-5s %9s %9s %11s %12s" % ("binary", "phase", "rss_mib", "peak_mib", "cpu_avg_m", "cpu_max1s_m"))
for b in ("api", "worker", "scheduler"):
    for ph in ("idle", "load"):
        s = rows.get((ph, b), [])
        if len(s) < 2:
            continue
        avg = (s[-1][1] - s[0][1]) / hz / (s[-1][0] - s[0][0]) * 1000
        mx = max((y[1] - x[1]) / hz / (y[0] - x[0]) for x, y in zip(s, s[1:])) * 1000
        print("%-10s %-5s %9.1f %9.1f %11.0f %12.0f" % (b, ph, s[-1][2] / 1024, max(x[3] for x in s) / 1024, avg, mx))
EOF
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
