#!/usr/bin/env bash
# `make test`: every test, against real PostgreSQL, Redis, Mailpit (and the
# other dev servers), after making sure they are installed. Tests start their
# own Redis and Mailpit on free ports and clone their own databases, so this
# never touches the developer's data.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
scripts/services.sh
# Only the servers tests start today: Mailpit, and versitygw (the S3 server
# backup:verify's stored-dump tests use); stripe-mock joins when billing has
# tests.
scripts/tools.sh mailpit versitygw
scripts/sweep-test-db.sh

echo "== go vet"
go vet ./...
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
