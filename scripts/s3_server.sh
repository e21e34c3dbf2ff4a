#!/usr/bin/env bash
# A one-node OpenStack Swift with the S3 API (s3api middleware) on 127.0.0.1, for tests.
#
#   bash scripts/s3_server.sh start    # install if needed, start, wait until ready, print settings
#   bash scripts/s3_server.sh status   # print settings and exit 0 when ready, else exit 1
#   bash scripts/s3_server.sh stop     # stop every process this script started
#   bash scripts/s3_server.sh env      # print settings only
#
# Settings go to stdout as KEY=VALUE lines (progress goes to stderr), so a shell can load them:
#   set -a; eval "$(bash scripts/s3_server.sh start)"; set +a
#
# Environment: S3_PORT (proxy port, default 18080; the object, container, account and memcached
# servers use S3_PORT+1 .. S3_PORT+4), SWIFT_STATE_DIR (default <repo>/.cache/swift).
# Credentials are tempauth's test user: access key "test:tester", secret "testing".
set -euo pipefail

PACKAGES=(swift-proxy swift-object swift-container swift-account memcached)
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${SWIFT_STATE_DIR:-$REPO_ROOT/.cache/swift}"
PORT="${S3_PORT:-18080}"
OBJECT_PORT=$((PORT + 1))
CONTAINER_PORT=$((PORT + 2))
ACCOUNT_PORT=$((PORT + 3))
MEMCACHED_PORT=$((PORT + 4))
SERVICES=(memcached object container account proxy)
READY_TIMEOUT_S=60
PY=/usr/bin/python3

log() { echo "s3_server: $*" >&2; }

print_env() {
  echo "AWS_ENDPOINT_URL=http://127.0.0.1:$PORT"
  echo "AWS_REGION=us-east-1"
  echo "AWS_ACCESS_KEY_ID=test:tester"
  echo "AWS_SECRET_ACCESS_KEY=testing"
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
  local missing=0
  for bin in swift-proxy-server swift-object-server swift-container-server \
    swift-account-server swift-ring-builder memcached; do
    command -v "$bin" >/dev/null 2>&1 || missing=1
  done
  [ "$missing" -eq 0 ] && return 0
  log "installing ${PACKAGES[*]} (about 1.5 min)"
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y --no-install-recommends "${PACKAGES[@]}" >&2; then
    log "install failed; refreshing the package lists and retrying"
    as_root apt-get update >&2
    as_root apt-get install -y --no-install-recommends "${PACKAGES[@]}" >&2
  fi
}

# Swift servers read /etc/swift/swift.conf whatever their swift_dir; the package ships one.
ensure_swift_conf() {
  [ -f /etc/swift/swift.conf ] && grep -q '^swift_hash_path_suffix' /etc/swift/swift.conf && return 0
  log "writing /etc/swift/swift.conf"
  as_root mkdir -p /etc/swift
  printf '%s\n' '[swift-hash]' 'swift_hash_path_suffix = mediator-test' \
    'swift_hash_path_prefix = mediator-test' '' '[storage-policy:0]' 'name = Policy-0' \
    'default = yes' | as_root tee /etc/swift/swift.conf >/dev/null
}

write_configs() {
  local user
  user="$(id -un)"
  mkdir -p "$STATE/devices/d1" "$STATE/run" "$STATE/log"
  local common="[DEFAULT]
bind_ip = 127.0.0.1
workers = 0
user = $user
swift_dir = $STATE
devices = $STATE/devices
mount_check = false
disable_fallocate = true
log_level = WARNING"
  local kind port
  for kind in object container account; do
    case "$kind" in
      object) port=$OBJECT_PORT ;;
      container) port=$CONTAINER_PORT ;;
      account) port=$ACCOUNT_PORT ;;
    esac
    cat >"$STATE/$kind-server.conf" <<EOF
$common
bind_port = $port

[pipeline:main]
pipeline = $kind-server

[app:$kind-server]
use = egg:swift#$kind
EOF
  done
  cat >"$STATE/proxy-server.conf" <<EOF
$common
bind_port = $PORT

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MEMCACHED_PORT

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes
EOF
}

# Rings with one partition power 6, one replica, one device; rebuilt when the ports change.
build_rings() {
  local stamp="$OBJECT_PORT $CONTAINER_PORT $ACCOUNT_PORT"
  if [ -f "$STATE/rings.stamp" ] && [ "$(cat "$STATE/rings.stamp")" = "$stamp" ] &&
    [ -f "$STATE/object.ring.gz" ] && [ -f "$STATE/container.ring.gz" ] &&
    [ -f "$STATE/account.ring.gz" ]; then
    return 0
  fi
  log "building rings"
  local kind port
  for kind in object container account; do
    case "$kind" in
      object) port=$OBJECT_PORT ;;
      container) port=$CONTAINER_PORT ;;
      account) port=$ACCOUNT_PORT ;;
    esac
    rm -f "$STATE/$kind.builder" "$STATE/$kind.ring.gz"
    swift-ring-builder "$STATE/$kind.builder" create 6 1 1 >/dev/null
    swift-ring-builder "$STATE/$kind.builder" add "r1z1-127.0.0.1:$port/d1" 1 >/dev/null
    swift-ring-builder "$STATE/$kind.builder" rebalance >/dev/null
  done
  echo "$stamp" >"$STATE/rings.stamp"
}

pid_of() { cat "$STATE/run/$1.pid" 2>/dev/null || true; }

is_alive() {
  local pid
  pid="$(pid_of "$1")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

launch() {
  local name="$1"
  shift
  if is_alive "$name"; then return 0; fi
  setsid "$@" </dev/null >"$STATE/log/$name.log" 2>&1 9>&- &
  echo $! >"$STATE/run/$name.pid"
}

# Ready when the proxy answers its health check and tempauth can reach the account server.
probe() {
  "$PY" - "$PORT" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
base = "http://127.0.0.1:%s" % sys.argv[1]
with urllib.request.urlopen(base + "/healthcheck", timeout=3) as r:
    assert r.read() == b"OK"
req = urllib.request.Request(base + "/auth/v1.0",
                             headers={"X-Auth-User": "test:tester", "X-Auth-Key": "testing"})
with urllib.request.urlopen(req, timeout=3) as r:
    token, url = r.headers["X-Auth-Token"], r.headers["X-Storage-Url"]
with urllib.request.urlopen(urllib.request.Request(url, headers={"X-Auth-Token": token}),
                            timeout=5) as r:
    assert r.status in (200, 204)
EOF
}

all_alive() {
  local s
  for s in "${SERVICES[@]}"; do is_alive "$s" || return 1; done
}

start() {
  install_packages
  if all_alive && probe; then
    log "already running"
    print_env
    return 0
  fi
  stop_all quiet
  ensure_swift_conf
  write_configs
  build_rings
  local as_user=()
  [ "$(id -u)" -eq 0 ] && as_user=(-u root) # memcached refuses root without -u
  launch memcached memcached -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 -m 64 "${as_user[@]}"
  local kind
  for kind in object container account proxy; do
    launch "$kind" "swift-$kind-server" "$STATE/$kind-server.conf"
  done
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until probe; do
    if ! all_alive || [ "$SECONDS" -ge "$deadline" ]; then
      log "not ready after $((SECONDS - deadline + READY_TIMEOUT_S)) s; logs in $STATE/log:"
      tail -n 20 "$STATE"/log/*.log >&2 || true
      stop_all quiet
      exit 1
    fi
    sleep 0.3
  done
  log "ready on 127.0.0.1:$PORT (state in $STATE)"
  print_env
}

stop_all() {
  local s pid i
  for s in "${SERVICES[@]}"; do
    pid="$(pid_of "$s")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
      [ "${1:-}" = quiet ] || log "stopped $s ($pid)"
    fi
    rm -f "$STATE/run/$s.pid"
  done
}

status() {
  local s
  for s in "${SERVICES[@]}"; do
    if is_alive "$s"; then log "$s: running ($(pid_of "$s"))"; else log "$s: stopped"; fi
  done
  if all_alive && probe; then
    print_env
    return 0
  fi
  log "not ready"
  return 1
}

# One start or stop at a time (test files may run in parallel).
lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w 300 9 || {
    log "another start/stop holds $STATE/lock"
    exit 1
  }
}

case "${1:-}" in
  start)
    lock
    start
    ;;
  stop)
    lock
    stop_all
    ;;
  status) status ;;
  env) print_env ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
