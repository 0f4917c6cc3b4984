#!/usr/bin/env bash
# `make test`: every test, against real PostgreSQL, Redis, Mailpit (and the
# other dev servers), after making sure they are installed. Tests start their
# own Redis and Mailpit on free ports and clone their own databases, so this
# never touches the developer's data; at the end it fails if the run left a
# database or role on the server.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
LOG_PREFIX="test"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
scripts/services.sh
ensure_cc
ensure_web
# The servers tests start: Mailpit, versitygw (S3) and stripe-mock.
scripts/tools.sh mailpit versitygw stripe-mock actionlint
scripts/sweep-test-db.sh

ADMIN_URL=${KEEL_TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}
# The random part of every database and role name the test helpers make in
# this run starts with this tag (postgrestest.EnvRun), so what this run left
# can be told from what other runs on the same server are still using.
KEEL_TEST_RUN=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
export KEEL_TEST_RUN
q() { psql "$ADMIN_URL" -Atqc "$1"; }
ours() {
  q "SELECT 'database ' || datname FROM pg_database WHERE datname ~ '^keel_(t|tpl|e|t_definer)_$KEEL_TEST_RUN'
     UNION ALL
     SELECT 'role ' || rolname FROM pg_roles WHERE rolname ~ '^keel_(app|padmin|e_app|e_padmin|t_app|t_owner)_$KEEL_TEST_RUN'
     ORDER BY 1"
}
# backup:verify's scratch databases are named by the code under test, without
# the tag: any that appeared during the run and outlive it by 30 s count.
scratch() { q "SELECT datname FROM pg_database WHERE datname ~ '^keel_verify_[0-9a-f]+$'" | LC_ALL=C sort; }
scratch_before=$(scratch)

# Runs on every exit once tests started: lists (and drops) what this run
# left, and fails a run that would otherwise have passed.
leftovers() {
  local status=$? left new
  trap - EXIT
  left=$(ours) || left=""
  new=$(LC_ALL=C comm -13 <(echo "$scratch_before") <(scratch || true))
  if [ -n "$new" ]; then
    sleep 30
    new=$(LC_ALL=C comm -12 <(echo "$new") <(scratch || true))
  fi
  if [ -z "$left$new" ]; then
    echo "== leftovers: none (run $KEEL_TEST_RUN left no database or role)"
    exit $status
  fi
  echo "== leftovers: this run left on the server:"
  [ -z "$left" ] || sed 's/^/  /' <<<"$left"
  [ -z "$new" ] || sed 's/^/  database /; s/$/ (a backup scratch database)/' <<<"$new"
  local kind name
  while read -r kind name; do
    [ -n "$name" ] || continue
    if [ "$kind" = database ]; then
      q "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null || true
    fi
  done <<<"$left"
  while read -r kind name; do
    if [ "$kind" = role ]; then q "DROP ROLE IF EXISTS \"$name\"" >/dev/null || true; fi
  done <<<"$left"
  echo "   this run's databases and roles are dropped now; scratch databases may belong to"
  echo "   another run on this server: scripts/sweep-test-db.sh drops them once two hours old"
  [ "$status" != 0 ] || status=1
  exit $status
}
trap leftovers EXIT

# vet runs first, on its own: `go test -race -vet=all` (vet inside the race
# build) was tried and was slower on a fresh machine (10:40 against 9:06 and
# 9:18 for the two steps), as vet then competes with test binaries that
# hold go's -p slots while they wait on PostgreSQL.
echo "== actionlint (.github/workflows)"
.tools/bin/actionlint
echo "== go vet"
go vet ./...
# web/ before go test: e2e/web_test.go serves web/dist and drives it with
# playwright-core from web/node_modules. gen:check fails when the committed
# API client (web/src/api/schema.d.ts) is not what the OpenAPI document
# generates; build type-checks the app against it and checks the bundle
# budget; test runs the unit tests (Vitest).
echo "== web (npm ci, client check, build, unit tests)"
(cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent gen:check && npm run --silent build && npm run --silent test)
echo "== go test -race"
go test -race -count=1 -timeout 30m ./...

# A short fuzzing pass per fuzz target; the seed corpora already ran above.
FUZZTIME=${FUZZTIME:-10s}
grep -rl --include='*_test.go' '^func Fuzz' . 2>/dev/null | xargs -r -n1 dirname | sort -u | while read -r dir; do
  for fn in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/'); do
    echo "== fuzz $dir $fn ($FUZZTIME)"
    go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$FUZZTIME" "$dir"
  done
done

# deploy/ is its own Go module: the checks of the Kubernetes manifests,
# Grafana dashboard and Prometheus alerts need Kubernetes' API types,
# kustomize and Prometheus' PromQL parser, which the binaries never link.
if compgen -G 'deploy/*_test.go' >/dev/null || compgen -G 'deploy/*/*_test.go' >/dev/null; then
  echo "== deploy (manifests, dashboard, alerts)"
  # go test runs vet's default checks; the whole of vet is in `make lint`
  # (these packages compile slowly: Kubernetes' types and kustomize).
  (cd deploy && go test -count=1 ./...)
fi
