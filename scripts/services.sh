#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis are available for `make dev` and `make test`.
#
#   PostgreSQL: reachable at 127.0.0.1:5432 with a superuser postgres (trust, or
#               password "postgres"); installed from Debian packages when absent,
#               or started with docker compose when a Docker engine runs.
#   Redis:      redis-server on PATH (tests start private servers, and Sentinels
#               with `redis-server --sentinel`, from it; Debian's redis-server
#               package is enough, redis-sentinel is not needed); with
#               --dev, one also answering on 127.0.0.1:6379.
# Also installs the PostgreSQL client tools (pg_dump, pg_restore, psql) that
# backup verification uses, and the CA certificates Go downloads modules with.
# Idempotent; prints what it does.
#
# With KEEL_SERVICES_STATE set to a file, it writes there one line per server:
#   started postgres VERSION | started compose SERVICE | started redis PIDFILE
#   running DESCRIPTION      (was already running; not ours to stop)
# so `make dev` can stop on exit what it started and name what it left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG_PREFIX=services
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
DEV=0
[ "${1:-}" = "--dev" ] && DEV=1

STATE=${KEEL_SERVICES_STATE:-}
note() { if [ -n "$STATE" ]; then echo "$*" >> "$STATE"; fi; }

docker_ok() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

ensure_postgres() {
  command -v pg_isready >/dev/null || apt_install postgresql-client
  if pg_up; then
    note "running PostgreSQL on 127.0.0.1:5432"
    return
  fi
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && docker_ok; then
    log "starting PostgreSQL with docker compose"
    docker compose up -d postgres
    note "started compose postgres"
  else
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || apt_install postgresql
    local ver
    ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
    if ! ls /etc/postgresql/"$ver"/main >/dev/null 2>&1; then
      as_root pg_createcluster "$ver" main >/dev/null
    fi
    # apt may have started it already (systemd does).
    if ! pg_up; then
      log "starting PostgreSQL $ver (cluster main; stop it with: pg_ctlcluster $ver main stop)"
      as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
      note "started postgres $ver"
    else
      note "running PostgreSQL $ver on 127.0.0.1:5432 (started by apt-get as a system service)"
    fi
  fi
  for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
  pg_up || { log "PostgreSQL did not come up on 127.0.0.1:5432"; exit 1; }
  # A fresh Debian cluster allows local peer login only: give the postgres
  # superuser the password the tests and dev script use over TCP.
  if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    (cd / && as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null)
  fi
}

ensure_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  [ $DEV = 1 ] || return 0
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    note "running Redis on 127.0.0.1:6379"
    return
  fi
  if docker_ok && [ ! -x /usr/bin/redis-server ]; then
    docker compose up -d redis
    note "started compose redis"
  else
    mkdir -p .dev/redis
    log "starting redis-server on 127.0.0.1:6379 (AOF on, noeviction; data in .dev/redis)"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir "$PWD/.dev/redis" \
      --appendonly yes --maxmemory-policy noeviction --logfile "$PWD/.dev/redis/redis.log" \
      --pidfile "$PWD/.dev/redis/redis.pid"
    note "started redis $PWD/.dev/redis/redis.pid"
  fi
  for _ in $(seq 1 40); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return; sleep 0.25; done
  log "Redis did not come up on 127.0.0.1:6379"; exit 1
}

ensure_ca
ensure_postgres
ensure_redis
command -v pg_dump >/dev/null || apt_install postgresql-client
