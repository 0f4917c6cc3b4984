#!/usr/bin/env bash
# Prints EXPLAIN (ANALYZE, BUFFERS) of the resources list query for every
# sort (created_at, -created_at, name, -name, updated_at, -updated_at): the
# first page and a later page (the keyset condition), each also with a
# status filter, and the first page with a q search (a common and a rare
# term). Each runs as the application role under Row Level Security, in a
# transaction with app.org_id set to the benchmarked tenant, as the API's
# store does; each is run once before it is explained, so the plans show a
# warm cache, as under load. A summary line per case says which index
# answered and whether a Sort was needed. Then, for every sort's first and
# later page, the generic plan: the api runs the list as a statement
# prepared on its connection, and PostgreSQL switches to its generic plan
# (parameters unknown) after five executions when it costs no more.
#
# Against a seeded database (what bench/wrk-resources.sh passes):
#   DATABASE_URL=app-role-url BENCH_ORG_ID=uuid bench/explain-resources.sh
# Alone, it builds its own: scratch database, migrations, keelctl seed-demo
# and bench/seedresources (1,000,000 rows; about half a minute on two cores),
# removed afterwards:
#   bench/explain-resources.sh
#   SEED_ROWS=50000 bench/explain-resources.sh   # a quick trial on a small table
set -euo pipefail
cd "$(dirname "$0")/.."
export PGOPTIONS="-c client_min_messages=warning"
ADMIN_URL=${KEEL_BENCH_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}

if [ -z "${BENCH_ORG_ID:-}" ]; then
  BENCH_DB=keel_bench_explain BENCH_ROLE=keel_bench_explain_app
  API_PORT=0 REDIS_PORT=${REDIS_PORT:-18199} METRICS_PORT=0
  # shellcheck source=bench/lib.sh
  . bench/lib.sh
  trap bench_cleanup EXIT
  bench_stack ./bench/seedresources
  ENV=staging "$work/keelctl" seed-demo >/dev/null
  org=$(psql "$DATABASE_OWNER_URL" -Atqc "SELECT id FROM organizations WHERE name = 'Acme Demo'")
  "$work/seedresources" -org "$org" -rows "${SEED_ROWS:-1000000}" | grep -v '^BENCH_ORG_ID='
  BENCH_ORG_ID=$org
fi
ORG=$BENCH_ORG_ID
# A later page: the cursor is the row this far into the tenant's list.
LATER=${LATER:-5000}
STATUS=${STATUS:-draft}
Q_COMMON=${Q_COMMON:-invoice}
Q_RARE=${Q_RARE:-4821}

app() { psql "$DATABASE_URL" -X -v ON_ERROR_STOP=1 -Atq "$@"; }

# ---------------------------------------------------------------------------
# MUST MATCH internal/resource/resourcedb (its List query). Written before
# that store reached this branch, as a keyset list is expected to be:
#   WHERE org_id = $1 AND deleted_at IS NULL [AND status = $2]
#     [AND lower(name) LIKE '%' || $q || '%'] [AND (key, id) </> ($k, $id)]
#   ORDER BY key DESC|ASC, id DESC|ASC LIMIT limit+1
# and, with q, that query selecting only id, inside
#   SELECT columns FROM resources WHERE org_id = $1 AND deleted_at IS NULL
#     AND id IN (...) ORDER BY key DESC|ASC, id DESC|ASC
# with name compared and ordered as name COLLATE "C", the collation of the
# index resources_name. When the store's SQL differs, change columns(),
# key_expr() and query() below to match it.
columns='id, name, description, status, attributes, version, created_by_user_id, created_by_api_key_id, created_at, updated_at'
key_expr() { # sort field -> SQL expression of its key
  case $1 in
    name) echo 'name COLLATE "C"' ;;
    *) echo "$1" ;;
  esac
}
key_type() {
  case $1 in
    name) echo 'text COLLATE "C"' ;;
    *) echo timestamptz ;;
  esac
}
# query SORT [status] [q] [key id]: the list statement for that page.
query() {
  local sort=$1 status=$2 q=$3 k=$4 id=$5 field dir cmp key where
  field=${sort#-}
  if [ "$sort" = "$field" ]; then dir=ASC cmp='>'; else dir=DESC cmp='<'; fi
  key=$(key_expr "$field")
  where="org_id = '$ORG' AND deleted_at IS NULL"
  [ -n "$status" ] && where+=" AND status = '$status'"
  [ -n "$k" ] && where+=" AND ($key, id) $cmp ('$k'::$(key_type "$field"), '$id'::uuid)"
  if [ -n "$q" ]; then
    # A search picks the page's IDs by walking the sort's index (index
    # tuples only), then reads those rows.
    where+=" AND lower(name) LIKE '%' || lower('$q') || '%'"
    echo "SELECT $columns FROM resources WHERE org_id = '$ORG' AND deleted_at IS NULL AND id IN (SELECT id FROM resources WHERE $where ORDER BY $key $dir, id $dir LIMIT 21) ORDER BY $key $dir, id $dir"
    return
  fi
  echo "SELECT $columns FROM resources WHERE $where ORDER BY $key $dir, id $dir LIMIT 21"
}
# generic SORT [key id]: the same list with its values as parameters, as
# the api prepares it.
generic() {
  local sort=$1 k=${2:-} id=${3:-} field dir cmp key where args
  field=${sort#-}
  if [ "$sort" = "$field" ]; then dir=ASC cmp='>'; else dir=DESC cmp='<'; fi
  key=$(key_expr "$field")
  where='org_id = $1 AND deleted_at IS NULL'
  args="'$ORG'"
  if [ -n "$k" ]; then
    where+=" AND ($key, id) $cmp (\$2, \$3)"
    args+=", '$k', '$id'"
  fi
  echo "PREPARE list AS SELECT $columns FROM resources WHERE $where ORDER BY $key $dir, id $dir LIMIT 21|$args"
}
# ---------------------------------------------------------------------------

summary=()
# summarize SORT LABEL PLAN: adds PLAN's summary line (execution time, scan
# nodes, whether it sorts, the top node's buffers).
summarize() {
  local scan sorted ms buf
  scan=$(echo "$3" | { grep -oE '(Index Only Scan|Index Scan|Bitmap Index Scan)( Backward)? (using|on) [a-z_]+|Seq Scan on [a-z_]+' || true; } | sed -E 's/ (using|on) / /' | sort -u | paste -sd, -)
  sorted=$(echo "$3" | grep -qE '^\s*(->\s*)?(Incremental )?Sort ' && echo "sort" || echo "no sort")
  ms=$(echo "$3" | awk '/Execution Time/ {print $3}')
  buf=$(echo "$3" | awk '/Buffers:/ {print $0; exit}' | sed 's/.*Buffers: //')
  summary+=("$(printf '%-12s %-34s %-7s ms %-42s %-8s buffers: %s' "$1" "$2" "$ms" "$scan" "$sorted" "$buf")")
}

# in_tenant SQL: runs SQL as the app role with the tenant set, as InTx does.
in_tenant() {
  app <<SQL
BEGIN;
SELECT set_config('app.org_id', '$ORG', true) \\g /dev/null
$1
ROLLBACK;
SQL
}

echo "== EXPLAIN of the resources list: tenant $ORG, as the application role under RLS"
in_tenant "SELECT 'live resources of the tenant: ' || count(*) FROM resources WHERE deleted_at IS NULL;
SELECT 'rows in the table (seen by the owner): ' || reltuples::bigint FROM pg_class WHERE relname = 'resources';"
for sort in created_at -created_at name -name updated_at -updated_at; do
  field=${sort#-}
  if [ "$sort" = "$field" ]; then dir=ASC; else dir=DESC; fi
  key=$(key_expr "$field")
  # The cursor of a later page: (key, id) of the LATER-th row in this order.
  cursor=$(in_tenant "SELECT $field || '|' || id FROM resources WHERE org_id = '$ORG' AND deleted_at IS NULL ORDER BY $key $dir, id $dir OFFSET $((LATER - 1)) LIMIT 1;")
  k=${cursor%|*} id=${cursor##*|}
  while IFS='|' read -r label status q useCursor; do
    if [ "$useCursor" = y ]; then sql=$(query "$sort" "$status" "$q" "$k" "$id"); else sql=$(query "$sort" "$status" "$q" "" ""); fi
    echo
    echo "-- sort=$sort, $label"
    echo "$sql;"
    plan=$(in_tenant "SELECT count(*) FROM ($sql) warm \\g /dev/null
EXPLAIN (ANALYZE, BUFFERS) $sql;")
    echo "$plan"
    summarize "$sort" "$label" "$plan"
  done <<CASES
first page||| 
later page (row $LATER)|||y
first page, status=$STATUS|$STATUS||
later page (row $LATER), status=$STATUS|$STATUS||y
first page, q=$Q_COMMON||$Q_COMMON|
first page, q=$Q_RARE||$Q_RARE|
CASES
  for useCursor in n y; do
    if [ "$useCursor" = y ]; then g=$(generic "$sort" "$k" "$id"); label="generic plan, later page (row $LATER)"; else g=$(generic "$sort"); label="generic plan, first page"; fi
    echo
    echo "-- sort=$sort, $label"
    echo "${g%|*}; EXECUTE list(${g##*|});"
    plan=$(in_tenant "SET LOCAL plan_cache_mode = force_generic_plan;
${g%|*};
EXECUTE list(${g##*|}) \\g /dev/null
EXPLAIN (ANALYZE, BUFFERS) EXECUTE list(${g##*|});")
    echo "$plan"
    summarize "$sort" "$label" "$plan"
  done
done
echo
echo "== summary (execution time; plan nodes; buffers of the top node)"
printf '%s\n' "${summary[@]}"
