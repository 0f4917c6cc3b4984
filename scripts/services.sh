#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis are available for `make dev` and `make test`.
#
#   PostgreSQL: reachable at 127.0.0.1:5432 with a superuser postgres (trust, or
#               password "postgres"); installed from Debian packages when absent,
#               or started with docker compose when a Docker engine runs.
#   Redis:      redis-server on PATH (tests start private servers from it); with
#               --dev, one also answering on 127.0.0.1:6379.
# Also installs the PostgreSQL client tools (pg_dump, pg_restore, psql) that
# backup verification uses. Idempotent; prints what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
[ "${1:-}" = "--dev" ] && DEV=1

log() { echo "services: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null; then
    log "cannot install $* : no apt-get. Install PostgreSQL 15+ and Redis 7 yourself, or run a Docker engine."
    exit 1
  fi
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  log "installing $* with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

docker_ok() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

ensure_postgres() {
  command -v pg_isready >/dev/null || apt_install postgresql-client
  if pg_up; then return; fi
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && docker_ok; then
    log "starting PostgreSQL with docker compose"
    docker compose up -d postgres
  else
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || apt_install postgresql
    local ver
    ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
    if ! ls /etc/postgresql/"$ver"/main >/dev/null 2>&1; then
      as_root pg_createcluster "$ver" main >/dev/null
    fi
    log "starting PostgreSQL $ver"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
  for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
  pg_up || { log "PostgreSQL did not come up on 127.0.0.1:5432"; exit 1; }
  # A fresh Debian cluster allows local peer login only: give the postgres
  # superuser the password the tests and dev script use over TCP.
  if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
  fi
}

ensure_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  [ $DEV = 1 ] || return 0
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  if docker_ok && [ ! -x /usr/bin/redis-server ]; then
    docker compose up -d redis
  else
    mkdir -p .dev/redis
    log "starting redis-server on 127.0.0.1:6379 (AOF on, noeviction; data in .dev/redis)"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir "$PWD/.dev/redis" \
      --appendonly yes --maxmemory-policy noeviction --logfile "$PWD/.dev/redis/redis.log"
  fi
  for _ in $(seq 1 40); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return; sleep 0.25; done
  log "Redis did not come up on 127.0.0.1:6379"; exit 1
}

ensure_postgres
ensure_redis
command -v pg_dump >/dev/null || apt_install postgresql-client
