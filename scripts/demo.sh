#!/usr/bin/env bash
# `make run`: the ficus demo on this machine, from a fresh Debian 12.
#
#   scripts/deps.sh build → Release build in $BUILD_DIR (default build/) → certs-dev/make-certs.sh →
#   redis-server (127.0.0.1:6379, or reuse one that answers there) → echo upstreams "monolith" (:9000) and
#   "orders" (:9100, the new service) → ficus -t → ficus, with its logs on this terminal.
#
# Ctrl-C stops everything this script started (and nothing else). Working files: .work/demo/.
# Env: BUILD_DIR (build), FICUS_CONF (conf/ficus.yaml), JOBS (nproc).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${BUILD_DIR:-build}
CONF=${FICUS_CONF:-conf/ficus.yaml}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
RUN=.work/demo
PY=/usr/bin/python3 # Debian's python3, whatever else is first in PATH
ADMIN=127.0.0.1:9901

say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }
die() { printf '\033[1;31mdemo: %s\033[0m\n' "$*" >&2; exit 1; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- cleanup: stop only what we started, ficus first (SIGTERM = graceful drain) ------------------------------
PIDS=() # "name:pid", stopped in reverse order
FICUS_PID=
cleaned=0
cleanup() {
    [ $cleaned = 1 ] && return
    cleaned=1
    trap - INT TERM
    echo
    if [ -n "$FICUS_PID" ] && kill -0 "$FICUS_PID" 2>/dev/null; then
        say "stopping ficus (pid $FICUS_PID, SIGTERM: drains in-flight requests)"
        kill -TERM "$FICUS_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$FICUS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$FICUS_PID" 2>/dev/null || true
    fi
    local i entry
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        entry=${PIDS[$i]}
        say "stopping ${entry%%:*} (pid ${entry##*:})"
        kill -TERM "${entry##*:}" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    say "stopped"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$RUN"

# --- 1. packages, build, certificates -------------------------------------------------------------------------
say "checking packages (scripts/deps.sh build)"
scripts/deps.sh build
say "building ficus (Release) in $BUILD_DIR/"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >"$RUN/cmake-configure.log" 2>&1 ||
    { cat "$RUN/cmake-configure.log"; die "cmake configure failed (log above)"; }
cmake --build "$BUILD_DIR" -j"$JOBS" || die "build failed"
FICUS="$BUILD_DIR/ficus"
[ -x "$FICUS" ] || die "$FICUS was not built"
say "dev certificates (certs-dev/make-certs.sh)"
certs-dev/make-certs.sh

# --- 2. redis (not used by conf/ficus.yaml yet; ready for rate limiting) ----------------------------------------
REDIS_PORT=6379
if [ "$(redis-cli -h 127.0.0.1 -p $REDIS_PORT ping 2>/dev/null || true)" = PONG ]; then
    say "redis already answering on 127.0.0.1:$REDIS_PORT; using it (not started, will not be stopped)"
else
    if port_busy $REDIS_PORT; then
        REDIS_PORT=$(free_port)
        say "127.0.0.1:6379 is taken by something that is not redis; using port $REDIS_PORT"
    fi
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$ROOT/$RUN" \
        --logfile "$ROOT/$RUN/redis.log" --daemonize no &
    PIDS+=("redis-server:$!")
    for _ in $(seq 1 50); do
        [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)" = PONG ] && break
        kill -0 "$!" 2>/dev/null || die "redis-server exited; see $RUN/redis.log"
        sleep 0.1
    done
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)" = PONG ] || die "redis did not answer"
    say "redis-server on 127.0.0.1:$REDIS_PORT (no persistence; log $RUN/redis.log)"
fi

# --- 3. echo upstreams: the monolith and the new "orders" service --------------------------------------------------
[ -f tests/upstreams/echo.py ] || die "tests/upstreams/echo.py is missing"
start_echo() { # name port
    local name=$1 port=$2 log="$RUN/echo-$1.log"
    port_busy "$port" && die "port $port (upstream $name) is already in use; stop what listens there"
    : >"$log"
    "$PY" tests/upstreams/echo.py --port "$port" --name "$name" --host 127.0.0.1 >"$log" 2>&1 &
    local pid=$!
    PIDS+=("echo-$name:$pid")
    for _ in $(seq 1 100); do
        grep -q '^ready' "$log" && { say "upstream $name on 127.0.0.1:$port (pid $pid, log $log)"; return; }
        kill -0 $pid 2>/dev/null || { cat "$log"; die "echo upstream $name exited"; }
        sleep 0.1
    done
    die "echo upstream $name did not print 'ready' within 10 s (log $log)"
}
start_echo monolith 9000
start_echo orders 9100

# --- 4. ficus -----------------------------------------------------------------------------------------------------
if [ "$REDIS_PORT" != 6379 ]; then
    # the demo config names 127.0.0.1:6379: run a copy that points at the redis we started
    sed "s/127.0.0.1:6379/127.0.0.1:$REDIS_PORT/" "$CONF" >"$RUN/ficus.yaml"
    CONF="$RUN/ficus.yaml"
fi
say "checking $CONF"
"$FICUS" -t -c "$CONF" || die "$CONF is not valid (see above)"
for p in 8443 8080 9901; do port_busy $p && die "port $p (used by $CONF) is already in use"; done
say "starting ficus; error log (stderr) and JSON access log (stdout) follow on this terminal"
"$FICUS" -c "$CONF" &
FICUS_PID=$!
for _ in $(seq 1 100); do
    curl -fsS "http://$ADMIN/healthz" >/dev/null 2>&1 && break
    kill -0 $FICUS_PID 2>/dev/null || { FICUS_PID=; die "ficus exited during start-up (see its log above)"; }
    sleep 0.1
done
curl -fsS "http://$ADMIN/healthz" >/dev/null 2>&1 || die "ficus admin http://$ADMIN/healthz did not answer within 10 s"

CA=certs-dev/dev-ca.crt
cat <<HELP

$(printf '\033[1m')ficus is running (pid $FICUS_PID).$(printf '\033[0m') Try, from another terminal in $ROOT:

  curl --cacert $CA https://localhost:8443/                 # monolith (catch-all route)
  TOKEN=\$($FICUS token --sub alice --scope orders)       # a dev JWT signed with certs-dev/dev-jwt.key
  curl --cacert $CA -H "Authorization: Bearer \$TOKEN" https://localhost:8443/api/orders?id=7
                                                            # the new "orders" service (JWT + per-user rate limit): the echo shows
                                                            # x-user-id: alice and the X-Forwarded-* headers ficus set
  curl --cacert $CA -i https://localhost:8443/api/orders    # 401 + WWW-Authenticate: no token
  for i in \$(seq 12); do curl -s -o /dev/null -w '%{http_code} ' --cacert $CA -H "Authorization: Bearer \$TOKEN" https://localhost:8443/api/orders; done
                                                            # 10/s per user, burst 5: then 429 with Retry-After and RateLimit-* headers
  redis-cli -p $REDIS_PORT SET '{ficus:shed}:level' 2                     # fleet-wide shedding: normal and low routes answer 503 within 1 s
  redis-cli -p $REDIS_PORT SET '{ficus:shed}:level' 0
                                                            #   x-served-by, x-forwarded-for/-proto/-host, x-request-id
  curl --cacert $CA -i -H "Authorization: Bearer \$TOKEN" https://localhost:8443/api/orders
                                                            # response headers: x-route, x-request-id, ratelimit-*, strict-transport-security
  curl --cacert $CA -i https://localhost:8443/checkout/cart?step=2   # 308 to https://shop.example.com/checkout/cart?step=2
  curl --cacert $CA https://localhost:8443/ping             # answered by ficus itself: pong
  curl --cacert $CA --http2 -sI https://localhost:8443/     # HTTP/2 (ALPN)
  curl -i http://localhost:8080/some/page                   # 308 redirect to https://localhost:8443/some/page
  curl http://$ADMIN/metrics                         # Prometheus metrics (also /healthz, /readyz)

  Reload: edit $CONF, then   kill -HUP $FICUS_PID   (a bad file is refused; the running config stays)
  JWT dev token: (not yet: JWT validation is on the roadmap; its demo token will be printed here)
  Redis: 127.0.0.1:$REDIS_PORT (not used by $CONF yet)

  Ctrl-C stops ficus, the upstreams and the redis this script started.

HELP

# Wait for ficus; if it exits by itself, say so.
set +e
wait $FICUS_PID
rc=$?
set -e
FICUS_PID=
say "ficus exited with status $rc"
exit $rc
