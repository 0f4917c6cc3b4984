#!/usr/bin/env bash
# Re-checks the README's promise, "two commands on a fresh machine": builds a
# minimal Debian bookworm root with debootstrap (only git and make added),
# copies this machine's Go toolchain in, clones this repository's committed
# HEAD, and runs inside it, as a new user would, `make test` and then
# `make dev`; it checks every URL `make dev` prints, logs in as the demo
# owner, sends Ctrl-C (SIGINT) and checks that every process `make dev`
# started is gone. Prints each step with its time, and a summary.
#
# The root runs in a network namespace of its own, so its PostgreSQL, Redis
# and Keel ports never meet the host's (which are left alone). From there it
# reaches only the package registries, by a firewall rule: the Debian mirror,
# the Go module proxy and the npm registry (web/), their addresses resolved on the host and written
# into the root's /etc/hosts. As in a container, apt starts no services in the
# root (policy-rc.d), so the scripts start PostgreSQL and Redis themselves.
# On exit, failure or Ctrl-C alike, it stops every process in the namespace,
# removes the namespace, the veth pair and the firewall table, restores
# ip_forward, unmounts what it mounted and deletes the root and its logs
# (unless --keep; the logs also stay after a failure).
#
# Run on demand (not in CI), as root, on a Debian or Ubuntu host:
#   scripts/fresh-machine.sh [--keep] [--reuse] [--no-test] [--root DIR]
#     --keep      leave the root in place afterwards (to look around, or --reuse)
#     --reuse     run in the root a --keep run left (no debootstrap; the
#                 machine is then not fresh, so its timings are not first-run ones)
#     --no-test   skip `make test` (make dev alone on a fresh machine; quicker)
#     --root DIR  where the root is built (default /var/tmp/keel-fresh)
# It installs debootstrap, nftables and curl on the host when missing, and
# leaves them installed. A run takes 20 to 30 minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

ROOT=/var/tmp/keel-fresh
KEEP=0 REUSE=0 TEST=1
while [ $# -gt 0 ]; do
  case $1 in
    --keep) KEEP=1 ;;
    --reuse) REUSE=1 KEEP=1 ;;
    --no-test) TEST=0 ;;
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
ROOT=$(realpath -m "$ROOT")
case $ROOT in /|/usr*|/etc*|/bin*|/lib*|/home|/root|/var|/tmp|/work) echo "fresh: refusing --root $ROOT" >&2; exit 2 ;; esac

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
REGISTRIES=(deb.debian.org proxy.golang.org registry.npmjs.org)
NS=keel-fresh
VETH_HOST=kfresh0 VETH_NS=kfresh1
NET=${KEEL_FRESH_NET:-10.213.7}        # a /30: .1 the host's end, .2 the root's
NFT_TABLE=keel_fresh
MARK=.keel-fresh-root                  # marks a directory this script built
IN_PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LOGS=$ROOT.logs

START=$(date +%s)
clock() { local s=$(( $(date +%s) - START )); printf '%02d:%02d' $((s / 60)) $((s % 60)); }
say() { echo "fresh: [$(clock)] $*"; }
die() { say "FAILED: $*"; exit 1; }
SUMMARY=()
STEP="" STEP_START=0
step() { STEP=$1 STEP_START=$(date +%s); say "== $STEP"; }
ok() {
  local d=$(( $(date +%s) - STEP_START ))
  say "   ok ($d s)${1:+: $1}"
  SUMMARY+=("$(printf '%5d s  %s' "$d" "$STEP")")
  STEP=""
}
# Prefixes lines with the clock, without colours, and counts module downloads
# instead of listing them (the logs keep everything).
stamped() {
  local line n=0
  sed -u 's/\x1b\[[0-9;]*m//g' | while IFS= read -r line; do
    if [[ $line == "go: downloading "* ]]; then
      n=$((n + 1))
      continue
    fi
    if [ $n -gt 0 ]; then printf 'fresh: [%s]    go: downloaded %d modules\n' "$(clock)" $n; n=0; fi
    printf 'fresh: [%s]    %s\n' "$(clock)" "$line"
  done
}

[ "$(id -u)" = 0 ] || { echo "fresh: run as root (it uses debootstrap, chroot, ip netns, nft)" >&2; exit 1; }
command -v apt-get >/dev/null || { echo "fresh: needs a Debian or Ubuntu host" >&2; exit 1; }

# ---- cleanup, on every exit ------------------------------------------------
FWD_BEFORE=$(cat /proc/sys/net/ipv4/ip_forward)
in_root() { [ "$(readlink "/proc/$1/root" 2>/dev/null)" = "$ROOT" ]; }
ns_pids() { ip netns pids "$NS" 2>/dev/null || true; }
stop_root_processes() {
  local p left
  # Only processes inside this namespace and this root: nothing else is ours.
  for p in $(ns_pids); do in_root "$p" && kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 40); do
    left=$(for p in $(ns_pids); do in_root "$p" && echo "$p"; done)
    [ -z "$left" ] && return 0
    sleep 0.25
  done
  for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
  sleep 0.5
}
unmount_root() {
  local m
  # Deepest first.
  awk -v r="$ROOT" '$5 == r || index($5, r "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
}
net_down() {
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$VETH_HOST" 2>/dev/null || true
  nft delete table ip "$NFT_TABLE" 2>/dev/null || true
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  [ -n "$STEP" ] && say "   step failed: $STEP"
  [ -z "${follow:-}" ] || kill "$follow" 2>/dev/null
  say "== cleanup: restoring the host"
  stop_root_processes
  net_down
  echo "$FWD_BEFORE" > /proc/sys/net/ipv4/ip_forward
  unmount_root
  if [ $KEEP = 0 ] && [ -f "$ROOT/$MARK" ] && ! grep -q " ${ROOT}[/ ]" /proc/self/mountinfo; then
    rm -rf --one-file-system "$ROOT"
    say "   removed $ROOT"
  elif [ -d "$ROOT" ]; then
    say "   kept $ROOT (--keep; rerun with --reuse, or rm -rf it)"
  fi
  # What is left of this run on the host: nothing, or it is named here.
  local bad=0
  ip netns list | grep -qw "$NS" && { say "   still there: network namespace $NS"; bad=1; }
  ip link show "$VETH_HOST" >/dev/null 2>&1 && { say "   still there: link $VETH_HOST"; bad=1; }
  nft list table ip "$NFT_TABLE" >/dev/null 2>&1 && { say "   still there: nft table $NFT_TABLE"; bad=1; }
  grep -q " ${ROOT}[/ ]" /proc/self/mountinfo && { say "   still mounted under $ROOT"; bad=1; }
  [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$FWD_BEFORE" ] || { say "   ip_forward not restored"; bad=1; }
  local ports
  ports=$(listening)
  if [ "$ports" != "$PORTS_BEFORE" ]; then
    say "   host ports listening now: ${ports:-none} (before: ${PORTS_BEFORE:-none})"
  else
    say "   host listeners on those ports: as before"
  fi
  [ $bad = 0 ] && say "   host restored: no namespace, link, firewall table or mount left; ip_forward=$FWD_BEFORE as before"
  [ $bad = 0 ] || [ $status != 0 ] || status=1
  # The logs stay when something failed or the root is kept.
  local logs="logs in $LOGS"
  if [ "$status" = 0 ] && [ $KEEP = 0 ]; then
    rm -rf "$LOGS"
    logs="logs removed: --keep keeps them"
  fi
  if [ ${#SUMMARY[@]} -gt 0 ]; then
    echo
    echo "fresh: summary ($logs)"
    printf '  %s\n' "${SUMMARY[@]}"
    printf '  %5d s  %s\n' $(( $(date +%s) - START )) "total"
  fi
  echo
  if [ "$status" = 0 ]; then say "PASS"; else say "FAIL (exit $status)"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ---- 1. host tools ---------------------------------------------------------
step "host tools (debootstrap, nftables, curl, git)"
missing=()
for t in debootstrap:debootstrap nft:nftables curl:curl git:git; do
  command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  ok "installed ${missing[*]} (left installed)"
else
  ok "present"
fi
# What a killed earlier run may have left: these names are this script's.
stop_root_processes
net_down
# The host's listeners on the ports the root's servers use, compared at the end.
listening() {
  ss -Hltn 2>/dev/null | awk '{print $4}' | grep -E ':(5432|6379|8080|1025|8025|9091|9092)$' | sort -u | paste -sd' ' -
}
PORTS_BEFORE=$(listening)
say "   host listeners on the ports make dev uses: ${PORTS_BEFORE:-none} (the root will not touch them)"

mkdir -p "$LOGS"
say "   logs in $LOGS"
HEAD=$(git -C "$REPO" rev-parse --short HEAD)
[ -z "$(git -C "$REPO" status --porcelain)" ] || say "   note: uncommitted changes in $REPO are not in the clone (HEAD $HEAD)"

# ---- 2. the root -----------------------------------------------------------
if [ $REUSE = 1 ]; then
  [ -f "$ROOT/$MARK" ] || die "--reuse: no root left by --keep at $ROOT"
  unmount_root
  step "reuse the root at $ROOT (not a fresh machine: timings are not first-run ones)"
  ok
else
  if [ -e "$ROOT" ]; then
    [ -f "$ROOT/$MARK" ] || die "$ROOT exists and is not a root this script built; pick another --root"
    step "remove the root an earlier --keep run left"
    unmount_root
    rm -rf --one-file-system "$ROOT"
    ok
  fi
  step "debootstrap $SUITE (minbase, plus git and make) into $ROOT"
  mkdir -p "$ROOT"
  touch "$ROOT/$MARK"
  debootstrap --variant=minbase --include=git,make "$SUITE" "$ROOT" "$MIRROR" > "$LOGS/debootstrap.log" 2>&1 ||
    { tail -20 "$LOGS/debootstrap.log"; die "debootstrap"; }
  # What a fresh install's apt reads: the release, its updates and security.
  cat > "$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
EOF
  # The host's own CA certificates (a TLS-inspecting proxy's, say): the
  # root trusts them too once the scripts install ca-certificates, as a
  # fresh machine on the same network would be set up to.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    mkdir -p "$ROOT/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  fi
  # As in a container: packages install, their services do not start.
  printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
  chmod 755 "$ROOT/usr/sbin/policy-rc.d"
  ok "$(chroot "$ROOT" dpkg-query -W -f '${binary:Package}\n' | wc -l) packages"

  step "copy the local Go toolchain ($(go version | cut -d' ' -f3)) to /usr/local/go"
  cp -a "$(go env GOROOT)" "$ROOT/usr/local/go"
  ok
fi
if [ $REUSE = 0 ]; then
  for t in gcc cc curl psql redis-server; do
    ! chroot "$ROOT" sh -c "command -v $t" >/dev/null || die "$t is in the fresh root"
  done
  [ ! -e "$ROOT/etc/ssl/certs/ca-certificates.crt" ] || die "ca-certificates is in the fresh root"
  say "   the root has no C compiler, curl, CA certificates, PostgreSQL or Redis"
fi

step "clone the repository (HEAD $HEAD) to /root/keel"
rm -rf "$ROOT/root/keel"
git clone -q "$REPO" "$ROOT/root/keel"
ok

# ---- 3. network ------------------------------------------------------------
step "network namespace $NS: $NET.2/30, NAT to the package registries only"
if ip -4 route | grep -q "^$NET\."; then die "$NET.0/30 is routed on this host already; set KEEL_FRESH_NET"; fi
hosts=""
allow=()
for h in "${REGISTRIES[@]}"; do
  a=$(getent ahostsv4 "$h" | awk '{print $1; exit}')
  [ -n "$a" ] || die "cannot resolve $h on the host"
  hosts+="$a $h"$'\n'
  allow+=("$a")
done
printf '127.0.0.1 localhost\n%s' "$hosts" > "$ROOT/etc/hosts"
echo "# no DNS inside: the registries' addresses are in /etc/hosts (scripts/fresh-machine.sh)" > "$ROOT/etc/resolv.conf"
ip netns add "$NS"
ip link add "$VETH_HOST" type veth peer name "$VETH_NS"
ip link set "$VETH_NS" netns "$NS"
ip addr add "$NET.1/30" dev "$VETH_HOST"
ip link set "$VETH_HOST" up
ip -n "$NS" addr add "$NET.2/30" dev "$VETH_NS"
ip -n "$NS" link set "$VETH_NS" up
ip -n "$NS" link set lo up
ip -n "$NS" route add default via "$NET.1"
uplink=$(ip -4 route show default | awk '{print $5; exit}')
allowed=$(printf '%s\n' "${allow[@]}" | sort -u | paste -sd, -)
nft -f - <<EOF
table ip $NFT_TABLE {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr $NET.0/30 oifname "$uplink" masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "$VETH_HOST" ip daddr { $allowed } tcp dport { 80, 443 } accept
    iifname "$VETH_HOST" drop
  }
}
EOF
echo 1 > /proc/sys/net/ipv4/ip_forward
ok "$(tr '\n' ' ' <<<"$hosts")via $uplink"

step "mount /proc, /sys, /dev (and a private /dev/shm) in the root"
mount -t proc proc "$ROOT/proc"
mount -t sysfs -o ro sysfs "$ROOT/sys"
mount --rbind /dev "$ROOT/dev"
mount --make-rslave "$ROOT/dev"
mount -t tmpfs -o mode=1777,size=512m shm "$ROOT/dev/shm"
ok

# inside CMD: runs CMD with bash in the root, in the namespace, with a login's
# clean environment (root's, UTF-8 locale as an installer leaves it).
inside() {
  ip netns exec "$NS" chroot "$ROOT" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
    TERM=dumb LANG=C.UTF-8 PATH="$IN_PATH" bash -c "$1"
}

# ---- 4. make test ----------------------------------------------------------
if [ $TEST = 1 ]; then
  step "make test (in /root/keel, as the README says)"
  set +e
  inside 'cd /root/keel && make test' > >(tee "$LOGS/make-test.log" | stamped) 2>&1 &
  wait $!
  rc=$?
  set -e
  sleep 0.2
  [ $rc = 0 ] || die "make test exited $rc (log: $LOGS/make-test.log)"
  ok
fi

# ---- 5. make dev -----------------------------------------------------------
step "make dev: start, wait for its URLs"
before=$(ns_pids | LC_ALL=C sort)
# As from a terminal: a process group of its own (the foreground group Ctrl-C
# reaches), SIGINT at its default (a background job of a script ignores it).
( exec setsid perl -e '$SIG{INT} = $SIG{QUIT} = "DEFAULT"; exec @ARGV or die "exec: $!"' \
    ip netns exec "$NS" chroot "$ROOT" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
    TERM=dumb LANG=C.UTF-8 PATH="$IN_PATH" bash -c 'cd /root/keel && exec make dev' ) > "$LOGS/make-dev.log" 2>&1 &
dev=$!
tail -n +1 -F "$LOGS/make-dev.log" 2>/dev/null > >(stamped) &
follow=$!
until grep -q 'Keel is running' "$LOGS/make-dev.log"; do
  kill -0 $dev 2>/dev/null || { sleep 1; die "make dev exited before it was running"; }
  [ $(( $(date +%s) - STEP_START )) -lt 900 ] || die "make dev not running after 15 min"
  sleep 1
done
sleep 1
ok

step "make dev: every printed URL answers, the demo owner logs in"
block=$(sed -n '/Keel is running/,$p' "$LOGS/make-dev.log")
n=0
for u in $(grep -o 'http://[^ )]*' <<<"$block" | sort -u); do
  code=$(ip netns exec "$NS" curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$u") || true
  say "   $code  $u"
  [[ $code == [23]?? ]] || die "$u answered $code"
  n=$((n + 1))
done
db=$(awk '$1 == "Database" {print $2}' <<<"$block")
inside "psql '$db' -Atqc 'SELECT 1'" >/dev/null || die "cannot connect to $db"
say "   ok   $db"
pw=$(sed -nE 's/.*log in (as [^ ]+ )?with password ([^ ]*[^ .:]).*/\2/ip' "$LOGS/make-dev.log" | head -1)
email=$(sed -nE 's/^ +owner +([^ ]+)$/\1/p; s/.*already exists; log in as ([^ ]+) with.*/\1/p' "$LOGS/make-dev.log" | head -1)
[ -n "$pw" ] && [ -n "$email" ] || die "no demo login printed by make dev"
api=$(grep -o 'http://[^ /]*/readyz' <<<"$block" | head -1)
api=${api%/readyz}
resp=$(ip netns exec "$NS" curl -s --max-time 10 -w '\n%{http_code}' -H 'Content-Type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"$pw\"}" "$api/api/v1/auth/login") || true
code=${resp##*$'\n'}
[ "$code" = 200 ] && grep -q '"access_token"' <<<"$resp" || die "demo login as $email: $code ${resp%$'\n'*}"
say "   200  POST $api/api/v1/auth/login as $email: access token issued"
ok "$n URLs, the database URL, the demo login"

step "make dev: Ctrl-C (SIGINT to its process group), everything it started stops"
[ "$(ps -o pgid= -p $dev | tr -d ' ')" = "$dev" ] || die "make dev is not the leader of its process group"
kill -INT -- "-$dev"
for _ in $(seq 1 120); do kill -0 $dev 2>/dev/null || break; sleep 0.5; done
kill -0 $dev 2>/dev/null && die "make dev still running 60 s after SIGINT"
wait $dev 2>/dev/null || true
sleep 1
kill $follow 2>/dev/null || true
# New processes in the root that are not children of a server that was
# running before (PostgreSQL's autovacuum workers come and go).
new_processes() {
  local p pp
  for p in $(LC_ALL=C comm -13 <(echo "$before") <(ns_pids | LC_ALL=C sort)); do
    pp=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) || continue
    grep -qx "$pp" <<<"$before" || echo "$p"
  done
}
for _ in $(seq 1 30); do left=$(new_processes); [ -z "$left" ] && break; sleep 0.5; done
if [ -n "$left" ]; then
  for p in $left; do say "   still running: $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null)"; done
  die "processes make dev started outlived Ctrl-C"
fi
still=$(for p in $before; do cat "/proc/$p/comm" 2>/dev/null; done | sort | uniq -c | awk '{printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1}')
ok "none left; running before make dev and still: ${still:-nothing}"
