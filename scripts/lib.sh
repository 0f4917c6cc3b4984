# shellcheck shell=bash
# Sourced by the scripts: installing what a fresh Debian or Ubuntu machine
# lacks, with apt-get as root or through sudo.
# The caller sets LOG_PREFIX (e.g. "services").

log() { echo "${LOG_PREFIX:-keel}: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    log "need root to run: $* (run as root, or install sudo)"
    exit 1
  fi
}

apt_updated=0
# apt_install PACKAGE...: installs the packages with apt-get, saying so.
apt_install() {
  if ! command -v apt-get >/dev/null; then
    log "cannot install $* : no apt-get. Install them yourself (PostgreSQL 15+, Redis 7, a C compiler), or run a Docker engine."
    exit 1
  fi
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  log "installing $* with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
    2> >(grep -v 'since apt-utils is not installed' >&2)
}

# ensure_ca: the CA bundle Go needs to download modules over HTTPS.
ensure_ca() {
  [ -s /etc/ssl/certs/ca-certificates.crt ] || apt_install ca-certificates
}

# ensure_cc: a C compiler for cgo, which `go test -race` needs; exports
# CGO_ENABLED=1 (Go turns cgo off by itself when it finds no compiler).
ensure_cc() {
  local cc
  cc=$(go env CC)
  if ! command -v "${cc%% *}" >/dev/null || [ ! -e /usr/include/stdlib.h ]; then
    apt_install gcc libc6-dev
  fi
  export CGO_ENABLED=1
  if [ "$(go env CGO_ENABLED)" != 1 ]; then
    log "cgo stays off (go env CGO_ENABLED = $(go env CGO_ENABLED)); go test -race needs it"
    exit 1
  fi
}

# ensure_web: Node.js with npm (web/ builds with them) and Debian's
# Chromium, which the browser tests drive through playwright-core (browser
# downloads are not possible here, and the system browser gets security
# updates with the rest of the machine). Debian 12's nodejs is 18, which
# every pinned web/ dependency supports.
ensure_web() {
  local missing=()
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  # CHROMIUM names another Chromium or Chrome (e.g. a CI image's own) to use.
  [ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
  [ ${#missing[@]} = 0 ] || apt_install "${missing[@]}"
}
