#!/usr/bin/env bash
# Drops databases and roles that killed test runs left behind on the test
# server: only names the test helpers make, only when idle and over two hours
# old, so a run going on beside this one is never touched.
set -uo pipefail
ADMIN_URL=${KEEL_TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}
q() { psql "$ADMIN_URL" -Atqc "$1" 2>/dev/null; }
stale=$(q "SELECT d.datname FROM pg_database d
  WHERE d.datname ~ '^keel_(t|tpl|e|verify|t_definer)_[0-9a-f_]+$'
    AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)
    AND (pg_stat_file('base/' || d.oid || '/PG_VERSION')).modification < now() - interval '2 hours'")
for db in $stale; do
  echo "sweep: dropping stale test database $db"
  q "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
done
for role in $(q "SELECT rolname FROM pg_roles WHERE rolname ~ '^keel_(app|padmin|e_app|e_padmin|t_app|t_owner)_[0-9a-f]+$'"); do
  # Fails, harmlessly, while a database still grants to the role.
  q "DROP ROLE \"$role\"" >/dev/null && echo "sweep: dropped stale test role $role"
done
exit 0
