#!/usr/bin/env bash
# Issue 9's benchmark: the resources API against a table of a million rows,
# beside the bare Gin + sqlx baselines (bench/baregin), in one run on one
# machine.
#
#   1. GET /api/v1/resources?sort=-created_at&limit=20 (the 20 newest;
#      authenticated with an access token, the whole middleware chain, the
#      tenant transaction under Row Level Security) for a tenant with 10,000
#      live resources in a table of 1,000,000 rows over 100 organizations,
#      against baregin's GET /me (one row by primary key, no auth).
#      Targets: at least 0.6 of the baseline's requests/s, p99 under 50 ms.
#      Each round also measures baregin's GET /resources, the same read (the
#      21 newest live rows under the same RLS policy, as JSON) done by the
#      simplest code, and GET /resources/prepared, the same through a
#      prepared statement, and prints more ratios: each bare list against
#      the one-row read (what the read itself costs on this machine) and
#      Keel against the faster of the two (what Keel adds to it).
#   2. POST /api/v1/resources (a JSON body; plan limit check and usage
#      counter, audit record, in one transaction) against baregin's POST
#      /resources (bind the body, one INSERT … RETURNING under the same RLS
#      policy). Target: at least 0.5 of the bare INSERT's requests/s.
#
# Both under wrk at 64 connections with latency percentiles; rounds
# alternate the baseline and Keel so both see the same machine load, and the
# result is the median of the per-round ratios. Between the two phases it
# prints the list query's plans (bench/explain-resources.sh), on the data the
# list was measured on. The POST phase runs last because it adds rows to the
# tenant.
#
# The data set is made by bench/seedresources (about half a minute on two
# cores) in a scratch database; the tenant is the demo's "Acme Demo", whose
# owner logs in. Every organization is on a bench plan (PLANS_FILE) with no
# limit on resources, storage or seats and a rate limit of RATE_LIMIT
# requests per minute: a big customer's configuration, whose limit paths
# still run (the usage counter is incremented on every create, the rate
# limit is counted in Redis) but never refuse. RATE_LIMIT=unlimited measures
# an org with no rate limit at all.
#
# Needs PostgreSQL (superuser URL in KEEL_BENCH_ADMIN_URL, default the local
# trust-auth server) and redis-server on PATH; starts its own Redis, scratch
# database, API and baseline on loopback ports and removes them after.
# Installs wrk (Debian package) when missing. Writes everything it prints to
# bench/results/wrk-resources-<UTC stamp>.txt (OUT overrides), the plans to
# explain-resources-<stamp>.txt beside it, and appends one summary line to
# bench/results/wrk-resources-summary.txt.
#
#   bench/wrk-resources.sh                       # 5 rounds of 10 s per server and phase
#   ROUNDS=3 DURATION=30s bench/wrk-resources.sh
#   IDEMPOTENCY=1 bench/wrk-resources.sh         # every POST with its own Idempotency-Key
#   POST_TENANTS=16 bench/wrk-resources.sh       # the creates spread over 16 tenants (default: all in one)
#   SEED_ROWS=50000 ROUNDS=1 DURATION=3s bench/wrk-resources.sh   # a quick trial, not the benchmark
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
RATE_LIMIT=${RATE_LIMIT:-1000000000}
IDEMPOTENCY=${IDEMPOTENCY:-0}
EXPLAIN=${EXPLAIN:-1}
SEED_ROWS=${SEED_ROWS:-1000000}
POST_TENANTS=${POST_TENANTS:-1}
export PGOPTIONS="-c client_min_messages=warning"
ADMIN_URL=${KEEL_BENCH_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}
API_PORT=${API_PORT:-18190}
GIN_PORT=${GIN_PORT:-18191}
REDIS_PORT=${REDIS_PORT:-18189}
# Each phase runs on access tokens taken at its start, which live 15 minutes.
secs() { case $1 in *ms) echo 0 ;; *s) echo "${1%s}" ;; *m) echo $((${1%m} * 60)) ;; *h) echo $((${1%h} * 3600)) ;; *) echo "$1" ;; esac; }
if [ $((ROUNDS * 4 * $(secs "$DURATION"))) -gt 840 ]; then
  echo "wrk-resources: ROUNDS x 4 x DURATION must stay under 14 minutes (access tokens live 15)" >&2
  exit 2
fi
stamp=${stamp:-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p bench/results
OUT=${OUT:-bench/results/wrk-resources-$stamp.txt}
# Everything printed also goes to OUT: the script runs itself under tee
# (not exec > >(tee), whose process the cleanup's wait would wait for).
if [ -z "${WRK_RESOURCES_TEED:-}" ]; then
  export WRK_RESOURCES_TEED=1 stamp OUT
  set +e
  bash "$0" "$@" 2>&1 | tee "$OUT"
  exit "${PIPESTATUS[0]}"
fi

if ! command -v wrk >/dev/null; then
  echo "wrk-resources: installing wrk" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  else sudo apt-get install -y wrk >/dev/null; fi
fi

BENCH_DB=keel_bench_resources BENCH_ROLE=keel_bench_resources_app METRICS_PORT=${METRICS_PORT:-18192}
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap bench_cleanup EXIT
bench_stack ./bench/baregin ./bench/seedresources
export LOG_LEVEL=error
ENV=staging "$work/keelctl" seed-demo >/dev/null
org_id=$(psql "$DATABASE_OWNER_URL" -Atqc "SELECT id FROM organizations WHERE name = 'Acme Demo'")
owner_id=$(psql "$DATABASE_OWNER_URL" -Atqc "SELECT id FROM users WHERE email = 'owner@demo.keel.localhost'")
echo "== seeding (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
"$work/seedresources" -org "$org_id" -user "$owner_id" -rows "$SEED_ROWS" | grep -v '^BENCH_ORG_ID='

cat >"$work/plans.yaml" <<YAML
default: bench
fallback: bench
plans:
  - id: bench
    name: Bench
    limits:
      seats: unlimited
      resources: unlimited
      storage_bytes: unlimited
      api_requests_per_minute: $RATE_LIMIT
YAML
export PLANS_FILE=$work/plans.yaml

"$work/api" 2>"$work/api.log" &
pids+=($!)
"$work/baregin" "127.0.0.1:$GIN_PORT" "$DATABASE_URL" "$owner_id" "$org_id" &
pids+=($!)
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$API_PORT/healthz" >/dev/null && curl -sf "http://127.0.0.1:$GIN_PORT/me" >/dev/null && break
  sleep 0.1
done

api=http://127.0.0.1:$API_PORT
login() {
  curl -sf -X POST "$api/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"keel-demo-password-2026\"}" |
    python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])'
}
token=$(login owner@demo.keel.localhost)
current=$(curl -sf "$api/api/v1/organizations/current" -H "Authorization: Bearer $token" |
  python3 -c 'import sys, json; print(json.load(sys.stdin)["id"])')
if [ "$current" != "$org_id" ]; then
  echo "wrk-resources: the token's organization is $current, not the seeded tenant $org_id" >&2
  exit 1
fi

list_url="$api/api/v1/resources?sort=-created_at&limit=${LIST_LIMIT:-20}"
body='{"name":"Quarterly invoice 4821","description":"Created by wrk","status":"active","attributes":{"priority":"high","tags":["bench","wrk"]}}'
# The list must answer as measured: 20 items.
code=$(curl -s -o "$work/list.json" -w '%{http_code}' "$list_url" -H "Authorization: Bearer $token")
if [ "$code" != 200 ]; then
  echo "wrk-resources: GET /api/v1/resources answered $code (are the resources endpoints in this build?):" >&2
  cat "$work/list.json" >&2
  exit 1
fi
curl -sf -o "$work/bare-list.json" "http://127.0.0.1:$GIN_PORT/resources"
curl -sf -o "$work/bare-prepared.json" "http://127.0.0.1:$GIN_PORT/resources/prepared"
python3 - "$work/list.json" "$work/bare-list.json" "$work/bare-prepared.json" "${LIST_LIMIT:-20}" <<'PY'
import json, sys
doc, bare, prepared = (json.load(open(f)) for f in sys.argv[1:4])
want = int(sys.argv[4])
lists = [v for v in doc.values() if isinstance(v, list)] if isinstance(doc, dict) else [doc]
if not lists or len(lists[0]) != want:
    sys.exit("wrk-resources: GET /api/v1/resources did not return %d items: %s" % (want, json.dumps(doc)[:300]))
# The bare list must be the same page: the same rows, the same fields.
for b in (bare, prepared):
    if want == 20 and b != doc:
        sys.exit("wrk-resources: baregin's GET /resources is not the API's page:\n%s\n%s" % (json.dumps(b)[:300], json.dumps(doc)[:300]))
PY

# Checked only now: a create adds to the tenant the list was measured on.
probe_post() {
  local code
  code=$(curl -s -o "$work/post.json" -w '%{http_code}' -X POST "$api/api/v1/resources" -H "Authorization: Bearer ${tokens[0]}" \
    -H 'Content-Type: application/json' -d "$body")
  if [ "$code" != 201 ]; then
    echo "wrk-resources: POST /api/v1/resources answered $code:" >&2
    cat "$work/post.json" >&2
    exit 1
  fi
  curl -sf -X POST "http://127.0.0.1:$GIN_PORT/resources" -H 'Content-Type: application/json' -d "$body" >/dev/null
}

# POST_TENANTS > 1 spreads the creates over that many tenants: the demo's
# owner's and, for each other, a user made owner of one of the seeded
# organizations (the demo password's hash copied, so they log in the same
# way), each with its own token.
if [ "$POST_TENANTS" -gt 1 ]; then
  psql "$DATABASE_OWNER_URL" -v ON_ERROR_STOP=1 -q <<SQL
INSERT INTO users (id, email, name, password_hash, email_verified_at)
SELECT gen_random_uuid(), 'bench' || k || '@bench.keel.localhost', 'Bench User ' || k, u.password_hash, now()
FROM generate_series(1, $POST_TENANTS - 1) k, users u WHERE u.email = 'owner@demo.keel.localhost';
INSERT INTO memberships (org_id, user_id, role)
SELECT o.id, u.id, 'owner'
FROM (SELECT id, row_number() OVER (ORDER BY name) n FROM organizations WHERE name LIKE 'Bench Org %') o
JOIN (SELECT id, row_number() OVER (ORDER BY email) n FROM users WHERE email LIKE 'bench%@bench.keel.localhost') u USING (n);
SQL
fi

# The POST request: the body, the token (the baseline ignores it, but reads
# the same bytes), and a request() that picks each request's token and, with
# IDEMPOTENCY=1, its own Idempotency-Key (unique per thread and request, so
# none is a replay). It logs in afresh: access tokens live 15 minutes.
post_lua() {
  tokens=("$(login owner@demo.keel.localhost)")
  for k in $(seq 1 $((POST_TENANTS - 1))); do tokens+=("$(login "bench$k@bench.keel.localhost")"); done
  for t in "${tokens[@]}"; do [ -n "$t" ] || { echo "wrk-resources: a login failed" >&2; exit 1; }; done
  {
    echo 'wrk.method = "POST"'
    echo "wrk.body = '$body'"
    echo 'wrk.headers["Content-Type"] = "application/json"'
    printf 'tokens = {'; printf '"%s", ' "${tokens[@]}"; echo '}'
    echo 'wrk.headers["Authorization"] = "Bearer " .. tokens[1]'
    echo "idempotency = $([ "$IDEMPOTENCY" = 1 ] && echo true || echo false)"
  } >"$work/post.lua"
  if [ "$IDEMPOTENCY" = 1 ] || [ "$POST_TENANTS" -gt 1 ]; then
    cat >>"$work/post.lua" <<'LUA'
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  prefix = "wrk-" .. tid .. "-" .. os.time() .. "-"
  counter = 0
end
function request()
  counter = counter + 1
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  h["Authorization"] = "Bearer " .. tokens[(counter + tid) % #tokens + 1]
  if idempotency then h["Idempotency-Key"] = prefix .. counter end
  return wrk.format(nil, nil, h)
end
LUA
  fi
}

run() { wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@"; }
rps() { awk '/^Requests\/sec/ {print $2}' "$1"; }
# p99 in milliseconds, whatever unit wrk printed it in.
p99() { awk '$1 == "99%" {v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
  print (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : (u == "m") ? v * 60000 : v}' "$1"; }
non2xx() { awk '/Non-2xx/ {print}' "$1"; }
check() {
  if [ -n "$(non2xx "$2")" ]; then echo "wrk-resources: $1 had errors: $(non2xx "$2")" >&2; exit 1; fi
}
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# What was measured: the commit, and whether the tree had changes on top.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit with uncommitted changes"; fi

echo
echo "== setup: $ROUNDS rounds, wrk $THREADS threads, $CONNS connections, $DURATION per server per round; $(nproc) cores;" \
  "api_requests_per_minute $RATE_LIMIT; Idempotency-Key on POST: $([ "$IDEMPOTENCY" = 1 ] && echo yes || echo no); POST tenants: $POST_TENANTS; commit $commit"
echo "== load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"

list_ratios=() list_p99=() post_ratios=() bare_ratios=() prepared_ratios=() over_bare=()
for round in $(seq 1 "$ROUNDS"); do
  echo "== list round $round: bare Gin + sqlx: GET /me (one row by primary key, app role, no middleware, no auth)"
  run "http://127.0.0.1:$GIN_PORT/me" | tee "$work/gin.txt"
  echo "== list round $round: bare Gin + sqlx: GET /resources (the same 21 rows under RLS as JSON, no middleware, no auth, no caller check)"
  run "http://127.0.0.1:$GIN_PORT/resources" | tee "$work/bare-list.txt"
  echo "== list round $round: bare Gin + sqlx: GET /resources/prepared (the same through a statement prepared once per connection)"
  run "http://127.0.0.1:$GIN_PORT/resources/prepared" | tee "$work/bare-prepared.txt"
  echo "== list round $round: Keel API: GET /api/v1/resources?sort=-created_at&limit=20 (authenticated, RLS, 10,000 of 1,000,000 rows)"
  run -H "Authorization: Bearer $token" "$list_url" | tee "$work/list.txt"
  check "the read baseline" "$work/gin.txt"
  check "the bare list" "$work/bare-list.txt"
  check "the prepared bare list" "$work/bare-prepared.txt"
  check "GET /api/v1/resources" "$work/list.txt"
  g=$(rps "$work/gin.txt") b=$(rps "$work/bare-list.txt") bp=$(rps "$work/bare-prepared.txt") l=$(rps "$work/list.txt")
  lp=$(p99 "$work/list.txt") gp=$(p99 "$work/gin.txt")
  best=$(printf '%s\n%s\n' "$b" "$bp" | sort -g | tail -1)
  r=$(echo "$l / $g" | bc -l) br=$(echo "$b / $g" | bc -l) bpr=$(echo "$bp / $g" | bc -l) ob=$(echo "$l / $best" | bc -l)
  list_ratios+=("$r") list_p99+=("$lp") bare_ratios+=("$br") prepared_ratios+=("$bpr") over_bare+=("$ob")
  printf 'list round %d: bare Gin + sqlx %s req/s (p99 %.1f ms), GET /api/v1/resources %s req/s (p99 %.1f ms), ratio %.2f; bare list %s req/s (p99 %.1f ms), prepared %s req/s (p99 %.1f ms): bare list / one row %.2f, prepared %.2f; Keel / the faster bare list %.2f\n' \
    "$round" "$g" "$gp" "$l" "$lp" "$r" "$b" "$(p99 "$work/bare-list.txt")" "$bp" "$(p99 "$work/bare-prepared.txt")" "$br" "$bpr" "$ob" |
    tee -a "$work/rounds.txt"
done

if [ "$EXPLAIN" = 1 ]; then
  echo
  echo "== plans of the list query -> bench/results/explain-resources-$stamp.txt"
  BENCH_ORG_ID=$org_id bench/explain-resources.sh > "bench/results/explain-resources-$stamp.txt"
  sed -n '/^== summary/,$p' "bench/results/explain-resources-$stamp.txt"
fi

post_lua
probe_post
for round in $(seq 1 "$ROUNDS"); do
  echo "== POST round $round: bare Gin + sqlx: POST /resources (bind JSON, one INSERT … RETURNING under RLS, no auth)"
  run -s "$work/post.lua" "http://127.0.0.1:$GIN_PORT/resources" | tee "$work/gin-post.txt"
  echo "== POST round $round: Keel API: POST /api/v1/resources (authenticated, limit check and counter, audit, one transaction; $POST_TENANTS tenant(s))"
  run -s "$work/post.lua" "$api/api/v1/resources" | tee "$work/post.txt"
  check "the INSERT baseline" "$work/gin-post.txt"
  check "POST /api/v1/resources" "$work/post.txt"
  g=$(rps "$work/gin-post.txt") p=$(rps "$work/post.txt")
  r=$(echo "$p / $g" | bc -l)
  post_ratios+=("$r")
  printf 'POST round %d: bare INSERT %s req/s (p99 %.1f ms), POST /api/v1/resources %s req/s (p99 %.1f ms), ratio %.2f\n' \
    "$round" "$g" "$(p99 "$work/gin-post.txt")" "$p" "$(p99 "$work/post.txt")" "$r" | tee -a "$work/rounds.txt"
done

echo
cat "$work/rounds.txt"
lr=$(printf '%s\n' "${list_ratios[@]}" | median)
lp=$(printf '%s\n' "${list_p99[@]}" | median)
lpmax=$(printf '%s\n' "${list_p99[@]}" | sort -g | tail -1)
pr=$(printf '%s\n' "${post_ratios[@]}" | median)
br=$(printf '%s\n' "${bare_ratios[@]}" | median)
bpr=$(printf '%s\n' "${prepared_ratios[@]}" | median)
ob=$(printf '%s\n' "${over_bare[@]}" | median)
verdict() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo met; else echo MISSED; fi; }
summary=$(printf '%s list ratio %.2f (target >= 0.60: %s), list p99 median %.1f ms, worst %.1f ms (target < 50: %s); bare list / one row %.2f, prepared %.2f, Keel / the faster bare list %.2f; POST ratio %.2f (target >= 0.50: %s); %d rounds x %s, %d connections, %d cores, rate limit %s/min, idempotency key %s, POST tenants %d, commit %s' \
  "$stamp" "$lr" "$(verdict "$lr >= 0.6")" "$lp" "$lpmax" "$(verdict "$lp < 50")" "$br" "$bpr" "$ob" "$pr" "$(verdict "$pr >= 0.5")" \
  "$ROUNDS" "$DURATION" "$CONNS" "$(nproc)" "$RATE_LIMIT" "$([ "$IDEMPOTENCY" = 1 ] && echo yes || echo no)" "$POST_TENANTS" \
  "$commit")
echo "$summary"
echo "$summary" >> bench/results/wrk-resources-summary.txt
echo "raw output: $OUT"
