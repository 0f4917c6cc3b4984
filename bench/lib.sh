# Shared by the bench scripts that run the real api (source it): a private
# redis-server, a scratch database with its own application role, the
# binaries and their environment, all removed on exit. Set ADMIN_URL,
# BENCH_DB, BENCH_ROLE, API_PORT, REDIS_PORT and METRICS_PORT, then call
# bench_stack with the extra packages to build (e.g. ./bench/baregin).

work=$(mktemp -d)
pids=()

# bench_cleanup stops what bench_stack started and drops its database.
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" -c "DROP ROLE IF EXISTS $BENCH_ROLE" >/dev/null 2>&1 || true
  rm -rf "$work"
}

bench_stack() {
  go build -o "$work/api" ./cmd/api
  go build -o "$work/keelctl" ./cmd/keelctl
  local pkg
  for pkg in "$@"; do go build -o "$work/$(basename "$pkg")" "$pkg"; done
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
  pids+=($!)
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" -c "DROP ROLE IF EXISTS $BENCH_ROLE" -c "CREATE DATABASE $BENCH_DB" >/dev/null
  local hostpart=${ADMIN_URL#*@}
  export DATABASE_OWNER_URL=${ADMIN_URL%/*}/$BENCH_DB?sslmode=disable
  export DATABASE_URL="postgres://$BENCH_ROLE:bench@${hostpart%%/*}/$BENCH_DB?sslmode=disable"
  export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
  export HTTP_ADDR=127.0.0.1:$API_PORT METRICS_ADDR=127.0.0.1:$METRICS_PORT ENV=production
  # A plan whose API rate the load never reaches, still checked in Redis.
  export PLANS_FILE=$PWD/bench/plans.yaml
  eval "$("$work/keelctl" gen-keys | sed 's/^/export /')"
  "$work/keelctl" migrate up >/dev/null
}
