#!/usr/bin/env bash
# `make dev`: runs the whole system locally. Starts what is missing
# (PostgreSQL, Redis, Mailpit), creates and migrates the keel_dev database,
# seeds a demo organization on an empty database, then runs api, worker and
# scheduler in the foreground. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

scripts/services.sh --dev
scripts/tools.sh mailpit

mkdir -p .dev
# Development secrets are generated once and kept in .dev (git-ignored).
if [ ! -f .dev/secrets.env ]; then
  {
    echo "JWT_SIGNING_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
    echo "TOTP_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
    echo "ADMIN_QUEUES_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  } > .dev/secrets.env
  chmod 600 .dev/secrets.env
fi
set -a
# shellcheck disable=SC1091
. .dev/secrets.env
[ -f .env ] && . ./.env
set +a

ADMIN_URL=${KEEL_DEV_ADMIN_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable}
DB=${KEEL_DEV_DB:-keel_dev}
export DATABASE_OWNER_URL=${DATABASE_OWNER_URL:-postgres://postgres:postgres@127.0.0.1:5432/$DB?sslmode=disable}
export BACKUP_DATABASE_URL=${BACKUP_DATABASE_URL:-$DATABASE_OWNER_URL}
export DATABASE_URL=${DATABASE_URL:-postgres://keel_app:keel_app_dev@127.0.0.1:5432/$DB?sslmode=disable}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export SMTP_URL=${SMTP_URL:-smtp://127.0.0.1:1025?tls=none}
export APP_BASE_URL=${APP_BASE_URL:-http://localhost:8080}
export HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
export ENV=${ENV:-development}
export LOG_FORMAT=${LOG_FORMAT:-console}

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "dev: stopping ${#pids[@]} processes"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

if ! (exec 3<>/dev/tcp/127.0.0.1/1025) 2>/dev/null; then
  .tools/bin/mailpit --smtp 127.0.0.1:1025 --listen 127.0.0.1:8025 --database .dev/mailpit.db \
    --smtp-auth-accept-any --smtp-auth-allow-insecure --quiet &
  pids+=($!)
fi

if ! psql "$ADMIN_URL" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  echo "dev: creating database $DB"
  psql "$ADMIN_URL" -qc "CREATE DATABASE \"$DB\""
fi

echo "dev: building binaries"
go build -o bin/ ./cmd/...
bin/keelctl migrate up
# Idempotent: on an existing demo it says so and changes nothing.
bin/keelctl seed-demo || echo "dev: seed-demo failed (see above); continuing without demo data"

METRICS_ADDR=127.0.0.1:9091 bin/worker & pids+=($!)
METRICS_ADDR=127.0.0.1:9092 bin/scheduler & pids+=($!)
METRICS_ADDR=127.0.0.1:9090 bin/api & pids+=($!)

for _ in $(seq 1 50); do curl -fsS "http://$HTTP_ADDR/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
cat <<MSG

  Keel is running (Ctrl-C stops it):
    API            http://$HTTP_ADDR/api/v1   (docs: http://$HTTP_ADDR/api/docs)
    Health         http://$HTTP_ADDR/readyz   metrics: http://127.0.0.1:9090/metrics
    Queues UI      http://$HTTP_ADDR/admin/queues?token=$ADMIN_QUEUES_TOKEN
    Worker         http://127.0.0.1:9091/readyz   scheduler: http://127.0.0.1:9092/readyz
    Mail (API)     http://127.0.0.1:8025/api/v1/messages
    Database       $DATABASE_URL

MSG
wait -n "${pids[@]}" || true
