#!/usr/bin/env bash
# `make dev`: runs the whole system locally. Starts what is missing
# (PostgreSQL, Redis, Mailpit, versitygw with the files bucket, stripe-mock),
# creates and migrates the keel_dev database, seeds a demo organization on
# an empty database (with a demo file and a trial), then runs api, worker
# and scheduler in the foreground and prints their URLs once they all answer.
# Ctrl-C stops everything this script started, the servers included, and
# names the ones that were running before and are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
LOG_PREFIX=dev
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

mkdir -p .dev
# What scripts/services.sh started for this run, one line each (see there).
state=$PWD/.dev/services.state
: > "$state"

pids=()
cleanup() {
  local status=$?
  trap - INT TERM EXIT
  echo
  log "stopping ${#pids[@]} processes"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  local word what arg
  # Servers, last started first.
  while read -r word what arg; do
    [ "$word" = started ] || continue
    case $what in
      redis)
        local pid
        pid=$(cat "$arg" 2>/dev/null) || continue
        log "stopping the redis-server it started (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        ;;
      postgres)
        log "stopping the PostgreSQL $arg cluster it started"
        as_root pg_ctlcluster --skip-systemctl-redirect "$arg" main stop || true
        ;;
      compose)
        log "stopping the $arg container it started"
        docker compose stop "$arg" || true
        ;;
    esac
  done < <(tac "$state" 2>/dev/null)
  while read -r word what; do
    if [ "$word" = running ]; then log "left running, as it was before: $what"; fi
  done < "$state"
  exit "$status"
}
trap cleanup INT TERM EXIT

KEEL_SERVICES_STATE=$state scripts/services.sh --dev
scripts/tools.sh mailpit versitygw stripe-mock
ensure_web
# The web app's dependencies, again whenever the lockfile changed.
if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  log "installing web/ dependencies (npm ci)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi

# Development secrets are generated once and kept in .dev (git-ignored).
if [ ! -f .dev/secrets.env ]; then
  {
    echo "JWT_SIGNING_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
    echo "TOTP_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
  } > .dev/secrets.env
  chmod 600 .dev/secrets.env
fi
# Older checkouts generated ADMIN_QUEUES_TOKEN here; the api now refuses
# it (the queue UI opens to a platform admin's 2FA login instead).
if grep -q '^ADMIN_QUEUES_TOKEN=' .dev/secrets.env; then
  sed -i '/^ADMIN_QUEUES_TOKEN=/d' .dev/secrets.env
  log "removed ADMIN_QUEUES_TOKEN from .dev/secrets.env: the queue UI now needs a platform admin (docs/admin.md)"
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
# The platform admin's role (BYPASSRLS): keelctl migrate up creates it,
# the api hands its pool to /api/v1/admin alone, keelctl admin grant uses it.
export ADMIN_DATABASE_URL=${ADMIN_DATABASE_URL:-postgres://keel_admin:keel_admin_dev@127.0.0.1:5432/$DB?sslmode=disable}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
export SMTP_URL=${SMTP_URL:-smtp://127.0.0.1:1025?tls=none}
# The web app runs on Vite's dev server (hot reload), which proxies /api to
# the api: the browser sees one origin, as in production where the api
# serves web/dist (WEB_DIR). So the SameSite=Strict refresh cookie flows and
# the CSRF check's Origin is the dev server's own host. Email links open the
# app. Chromium and Firefox accept the Secure cookie on http://127.0.0.1.
WEB_PORT=${KEEL_DEV_WEB_PORT:-5173}
WEB_URL=http://127.0.0.1:$WEB_PORT
export APP_BASE_URL=${APP_BASE_URL:-$WEB_URL}
export AUTH_REFRESH_COOKIE=${AUTH_REFRESH_COOKIE:-true}
# Only for an app served from elsewhere than the proxy (the proxy needs none).
export CORS_ALLOWED_ORIGINS=${CORS_ALLOWED_ORIGINS:-$WEB_URL}
export HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
export ENV=${ENV:-development}
export LOG_FORMAT=${LOG_FORMAT:-console}
# Files: a local versitygw (the S3 server the tests use) on a folder in
# .dev, unless S3_ENDPOINT points elsewhere.
S3_PORT=${KEEL_DEV_S3_PORT:-7070}
export S3_ENDPOINT=${S3_ENDPOINT:-http://127.0.0.1:$S3_PORT}
export S3_REGION=${S3_REGION:-us-east-1}
export S3_ACCESS_KEY_ID=${S3_ACCESS_KEY_ID:-keel}
export S3_SECRET_ACCESS_KEY=${S3_SECRET_ACCESS_KEY:-keel-dev-secret}
export S3_BUCKET=${S3_BUCKET:-keel-files}
# Backups: backup:take stores dumps under this prefix and backup:verify
# restores the newest (docs/operations.md, "Backup and restore runbook").
export BACKUP_S3_BUCKET=${BACKUP_S3_BUCKET:-keel-backups}
export BACKUP_S3_PREFIX=${BACKUP_S3_PREFIX:-keel/}
# Billing: a local stripe-mock (Stripe's official mock, which the tests use
# too), unless STRIPE_API_BASE is set (set it empty, in .env, for Stripe
# itself with your own test key: docs/billing.md). stripe-mock accepts a
# key of sk_test_ and letters or digits (it answers 401 to sk_test_keel_dev,
# underscore and all). The webhook secret is a fixed development one, so
# `keelctl stripe trigger` (which reads it from the same variable) signs
# events the api accepts.
STRIPE_PORT=${KEEL_DEV_STRIPE_PORT:-12111}
STRIPE_MOCK=0
if [ -z "${STRIPE_API_BASE+set}" ]; then
  STRIPE_MOCK=1
  export STRIPE_API_BASE=http://127.0.0.1:$STRIPE_PORT
fi
export STRIPE_SECRET_KEY=${STRIPE_SECRET_KEY:-sk_test_keeldev}
export STRIPE_WEBHOOK_SECRET=${STRIPE_WEBHOOK_SECRET:-whsec_keel_dev_webhook_secret}

# status URL [HEADER]: the HTTP status of a GET of a plain-http URL (000 when
# nothing answers within 2 s), with one extra request header if given. Bash
# alone, so nothing needs installing for it.
status() {
  local rest=${1#http://} hostport path code=000 extra=
  hostport=${rest%%/*}
  path=${rest#"$hostport"}
  [ -n "${2:-}" ] && extra="$2"$'\r\n'
  if exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"; then
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n%s\r\n' "${path:-/}" "$hostport" "$extra" >&3
    read -r -t 2 _ code _ <&3 || code=000
    exec 3<&- 3>&-
  fi 2>/dev/null
  echo "${code:-000}"
}

if ! (exec 3<>/dev/tcp/127.0.0.1/1025) 2>/dev/null; then
  .tools/bin/mailpit --smtp 127.0.0.1:1025 --listen 127.0.0.1:8025 --database .dev/mailpit.db \
    --smtp-auth-accept-any --smtp-auth-allow-insecure --quiet &
  pids+=($!)
fi

if [ "$S3_ENDPOINT" = "http://127.0.0.1:$S3_PORT" ] && ! (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null; then
  mkdir -p .dev/s3
  # The keys go through the environment, out of the process list.
  ROOT_ACCESS_KEY=$S3_ACCESS_KEY_ID ROOT_SECRET_KEY=$S3_SECRET_ACCESS_KEY \
    .tools/bin/versitygw --port "127.0.0.1:$S3_PORT" --health /health --quiet posix .dev/s3 &
  pids+=($!)
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null && break; sleep 0.1; done
fi

# The settings above, for keelctl in another terminal against this stack
# (`set -a; . .dev/env; set +a; bin/keelctl stripe trigger ...`). The
# development secrets stay in .dev/secrets.env.
( umask 077
  for v in ENV AUTH_REFRESH_COOKIE DATABASE_URL DATABASE_OWNER_URL BACKUP_DATABASE_URL ADMIN_DATABASE_URL REDIS_URL SMTP_URL APP_BASE_URL \
    S3_ENDPOINT S3_REGION S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY S3_BUCKET BACKUP_S3_BUCKET BACKUP_S3_PREFIX \
    STRIPE_API_BASE STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET PLANS_FILE; do
    if [ -n "${!v+set}" ]; then printf '%s=%q\n' "$v" "${!v}"; fi
  done > .dev/env )

# -https-addr too: without it stripe-mock also listens for HTTPS on every
# interface.
if [ $STRIPE_MOCK = 1 ] && ! (exec 3<>"/dev/tcp/127.0.0.1/$STRIPE_PORT") 2>/dev/null; then
  .tools/bin/stripe-mock -http-addr "127.0.0.1:$STRIPE_PORT" -https-addr 127.0.0.1:0 > .dev/stripe-mock.log 2>&1 &
  pids+=($!)
fi

if ! psql "$ADMIN_URL" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  log "creating database $DB"
  psql "$ADMIN_URL" -qc "CREATE DATABASE \"$DB\""
fi

log "building binaries"
go build -o bin/ ./cmd/...
bin/keelctl migrate up
bin/keelctl files create-bucket
# The app's pages upload straight to the bucket (another origin): let them.
bin/keelctl files cors "$WEB_URL" || log "bucket CORS not set (see above): uploads from the app at $WEB_URL will fail"
S3_BUCKET=$BACKUP_S3_BUCKET bin/keelctl files create-bucket
# A first dump, so backup:verify has one to restore; none when a dump under
# a day old is there already.
bin/keelctl backup take -if-older-than 20h || log "backup take failed (see above); backup:verify will fail until a dump is stored"
# Idempotent: on an existing demo it says so and changes nothing.
bin/keelctl seed-demo || log "seed-demo failed (see above); continuing without demo data"

METRICS_ADDR=127.0.0.1:9091 bin/worker & pids+=($!)
METRICS_ADDR=127.0.0.1:9092 bin/scheduler & pids+=($!)
METRICS_ADDR=127.0.0.1:9090 bin/api & pids+=($!)
(cd web && KEEL_API_URL=http://$HTTP_ADDR KEEL_WEB_PORT=$WEB_PORT exec node_modules/.bin/vite --clearScreen false --logLevel warn) & pids+=($!)

checks=("http://$HTTP_ADDR/readyz" http://127.0.0.1:9091/readyz http://127.0.0.1:9092/readyz "$WEB_URL/"
  http://127.0.0.1:8025/api/v1/messages)
# stripe-mock answers only a request with a test key.
stripe_check=$STRIPE_API_BASE/v1/customers
[ $STRIPE_MOCK = 1 ] && checks+=("$stripe_check")
header() { if [ "$1" = "$stripe_check" ]; then echo "Authorization: Bearer $STRIPE_SECRET_KEY"; fi; }
waiting=("${checks[@]}")
for _ in $(seq 1 150); do
  left=()
  for u in "${waiting[@]}"; do [ "$(status "$u" "$(header "$u")")" = 200 ] || left+=("$u"); done
  waiting=("${left[@]}")
  [ ${#waiting[@]} = 0 ] && break
  sleep 0.2
done
if [ ${#waiting[@]} != 0 ]; then
  for u in "${waiting[@]}"; do log "not ready after 30 s: $u answers $(status "$u" "$(header "$u")")"; done
  exit 1
fi
# The local S3 server answers anonymous requests with 403 (as S3 does), so
# the line shows its health URL; another server is shown as configured.
S3_SHOWN=$S3_ENDPOINT
if [ "$S3_ENDPOINT" = "http://127.0.0.1:$S3_PORT" ]; then
  S3_SHOWN="$S3_ENDPOINT/health (the S3 endpoint is its host)"
fi
# Printed without http:// on purpose: stripe-mock answers 401 to a request
# without a key, and the webhook only takes a signed POST, so neither is a
# URL to open (scripts/fresh-machine.sh opens every http:// URL printed).
if [ $STRIPE_MOCK = 1 ]; then
  STRIPE_SHOWN="stripe-mock at 127.0.0.1:$STRIPE_PORT (STRIPE_API_BASE; key $STRIPE_SECRET_KEY)"
else
  STRIPE_SHOWN="STRIPE_API_BASE=${STRIPE_API_BASE:-(Stripe itself)}"
fi
cat <<MSG

  Keel is running (Ctrl-C stops it):
    Web app        $WEB_URL/   (Vite, hot reload; /api proxied to the api; log in as a demo user)
    API            http://$HTTP_ADDR/api/docs   (base path /api/v1; http://$HTTP_ADDR/api/v1/openapi.json)
    Health         http://$HTTP_ADDR/readyz   metrics: http://127.0.0.1:9090/metrics
    Platform admin platform@demo.keel.localhost (seed-demo printed its TOTP secret), or
                   bin/keelctl admin grant EMAIL (with .dev/env) and that user enables 2FA;
                   /api/v1/admin/* needs a login with a TOTP code (docs/admin.md)
    Queues UI      POST /api/v1/admin/queues/session with that admin's access token sets the cookie,
                   then open $HTTP_ADDR/admin/queues in the same browser
    Worker         http://127.0.0.1:9091/readyz   scheduler: http://127.0.0.1:9092/readyz
    Mail (API)     http://127.0.0.1:8025/api/v1/messages
    S3 (files)     $S3_SHOWN   bucket $S3_BUCKET (key $S3_ACCESS_KEY_ID)
    Backups        s3://$BACKUP_S3_BUCKET/$BACKUP_S3_PREFIX   (bin/keelctl backup take | verify)
    Stripe         $STRIPE_SHOWN
    Webhook        POST /api/v1/stripe/webhook, STRIPE_WEBHOOK_SECRET=$STRIPE_WEBHOOK_SECRET
                   (keelctl stripe trigger EVENT_TYPE --org ORG_ID signs with it; docs/billing.md)
    keelctl        set -a; . .dev/env; set +a; bin/keelctl ...   (this stack's settings)
    Database       $DATABASE_URL

MSG
wait -n "${pids[@]}" || true
