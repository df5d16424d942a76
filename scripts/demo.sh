#!/usr/bin/env bash
# `make run`: the ficus demo on this machine, from a fresh Debian 12.
#
#   scripts/deps.sh build → Release build in $BUILD_DIR (default build/) → certs-dev/make-certs.sh →
#   redis-server (127.0.0.1:6379, or reuse one that answers there) → echo upstreams "monolith" (:9000) and
#   "orders" (:9100, the new service) → ficus -t → ficus, with its logs on this terminal.
#
# Ctrl-C stops everything this script started (and nothing else). Working files: .work/demo/.
# Env: BUILD_DIR (build), FICUS_CONF (conf/ficus.yaml), JOBS (nproc).
# For tests (tests/integration/test_demo.py runs this script and every command it prints):
#   FICUS_BIN       use this binary: no package check, no build
#   DEMO_RUN_DIR    working files (.work/demo)
#   DEMO_TLS_PORT DEMO_HTTP_PORT DEMO_ADMIN_PORT DEMO_MONOLITH_PORT DEMO_ORDERS_PORT DEMO_REDIS_PORT
#                   ports instead of 8443 8080 9901 9000 9100 6379 (ficus then runs a copy of the config that names them)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${BUILD_DIR:-build}
CONF=${FICUS_CONF:-conf/ficus.yaml}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
RUN=${DEMO_RUN_DIR:-.work/demo}
PY=/usr/bin/python3 # Debian's python3, whatever else is first in PATH
TLS_PORT=${DEMO_TLS_PORT:-8443}
HTTP_PORT=${DEMO_HTTP_PORT:-8080}
ADMIN_PORT=${DEMO_ADMIN_PORT:-9901}
MONOLITH_PORT=${DEMO_MONOLITH_PORT:-9000}
ORDERS_PORT=${DEMO_ORDERS_PORT:-9100}
REDIS_PORT=${DEMO_REDIS_PORT:-6379}
ADMIN=127.0.0.1:$ADMIN_PORT

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
RUN_ABS=$(cd "$RUN" && pwd)

# --- 1. packages, build, certificates -------------------------------------------------------------------------
if [ -n "${FICUS_BIN:-}" ]; then
    FICUS=$FICUS_BIN
    [ -x "$FICUS" ] || die "FICUS_BIN=$FICUS is not an executable"
    say "using $FICUS (FICUS_BIN: no package check, no build)"
else
    say "checking packages (scripts/deps.sh build)"
    scripts/deps.sh build
    say "building ficus (Release) in $BUILD_DIR/"
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >"$RUN/cmake-configure.log" 2>&1 ||
        { cat "$RUN/cmake-configure.log"; die "cmake configure failed (log above)"; }
    cmake --build "$BUILD_DIR" -j"$JOBS" || die "build failed"
    FICUS="$BUILD_DIR/ficus"
    [ -x "$FICUS" ] || die "$FICUS was not built"
fi
say "dev certificates (certs-dev/make-certs.sh)"
certs-dev/make-certs.sh

# --- 2. redis: the per-user rate limit and the fleet-wide shedding level of conf/ficus.yaml -----------------------
REDIS_WHO="started by this script"
if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)" = PONG ]; then
    say "redis already answering on 127.0.0.1:$REDIS_PORT; using it (not started, will not be stopped)"
    REDIS_WHO="already running before this script; not stopped by it"
else
    if port_busy "$REDIS_PORT"; then
        busy=$REDIS_PORT
        REDIS_PORT=$(free_port)
        say "127.0.0.1:$busy is taken by something that is not redis; using port $REDIS_PORT"
    fi
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$RUN_ABS" \
        --logfile "$RUN_ABS/redis.log" --daemonize no &
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
start_echo monolith "$MONOLITH_PORT"
start_echo orders "$ORDERS_PORT"

# --- 4. ficus -----------------------------------------------------------------------------------------------------
if [ "$TLS_PORT:$HTTP_PORT:$ADMIN_PORT:$MONOLITH_PORT:$ORDERS_PORT:$REDIS_PORT" != 8443:8080:9901:9000:9100:6379 ]; then
    # the demo config names the default ports: run a copy that names the ones used here
    sed -e "s/127\.0\.0\.1:8443\b/127.0.0.1:$TLS_PORT/" -e "s/redirect_https: 8443\b/redirect_https: $TLS_PORT/" \
        -e "s/127\.0\.0\.1:8080\b/127.0.0.1:$HTTP_PORT/" -e "s/127\.0\.0\.1:9901\b/127.0.0.1:$ADMIN_PORT/" \
        -e "s/127\.0\.0\.1:9000\b/127.0.0.1:$MONOLITH_PORT/" -e "s/127\.0\.0\.1:9100\b/127.0.0.1:$ORDERS_PORT/" \
        -e "s/127\.0\.0\.1:6379\b/127.0.0.1:$REDIS_PORT/" "$CONF" >"$RUN/ficus.yaml"
    CONF="$RUN/ficus.yaml"
fi
say "checking $CONF"
"$FICUS" -t -c "$CONF" || die "$CONF is not valid (see above)"
for p in "$TLS_PORT" "$HTTP_PORT" "$ADMIN_PORT"; do port_busy "$p" && die "port $p (used by $CONF) is already in use"; done
say "starting ficus; error log (stderr) and JSON access log (stdout) follow on this terminal"
"$FICUS" -c "$CONF" &
FICUS_PID=$!
for _ in $(seq 1 100); do
    curl -fsS "http://$ADMIN/healthz" >/dev/null 2>&1 && break
    kill -0 $FICUS_PID 2>/dev/null || { FICUS_PID=; die "ficus exited during start-up (see its log above)"; }
    sleep 0.1
done
curl -fsS "http://$ADMIN/healthz" >/dev/null 2>&1 || die "ficus admin http://$ADMIN/healthz did not answer within 10 s"

# What to try. Every command below is run, as printed, by tests/integration/test_demo.py against this script's demo:
# a command added here needs its check there.
CA=certs-dev/dev-ca.crt
H=https://localhost:$TLS_PORT
AUTH='-H "Authorization: Bearer $TOKEN"'
try() { # command [comment]: the comment aligned on column 62 (on a line of its own under a longer command)
    if [ $# -lt 2 ]; then
        printf '  %s\n' "$1"
    elif [ ${#1} -le 58 ]; then
        printf '  %-58s  # %s\n' "$1" "$2"
    else
        printf '  %s\n  %-58s  # %s\n' "$1" "" "$2"
    fi
}
more() { printf '  %-58s  # %s\n' "" "$1"; } # a comment's next line
echo
printf '\033[1mficus is running (pid %s).\033[0m Try, from another terminal in %s:\n\n' "$FICUS_PID" "$ROOT"
try "curl --cacert $CA $H/" "the monolith (catch-all route): the echo's JSON"
try "curl --cacert $CA $H/ping" "answered by ficus itself: pong"
try "TOKEN=\$($FICUS token --sub alice --scope orders)" "a dev JWT (RS256, certs-dev/dev-jwt.key)"
try "curl --cacert $CA -i $AUTH '$H/api/orders?id=7'" \
    "200 from the new \"orders\" service: JWT checked, per-user rate limit;"
more "the echo shows x-user-id: alice, x-served-by: ficus,"
more "x-forwarded-for/-proto/-host and x-request-id; the response"
more "has x-route, x-request-id, ratelimit-*, strict-transport-security"
try "curl --cacert $CA -i $H/api/orders" "401 + WWW-Authenticate: no token"
try "curl --cacert $CA -i -H \"Authorization: Bearer \$($FICUS token --sub bob)\" $H/api/orders" \
    "403 insufficient_scope: bob's token has no \"orders\" scope"
try "curl --cacert $CA -s -o /dev/null -w '%{http_code} ' $AUTH '$H/api/orders?n=[1-12]'; echo" \
    "12 requests at once: 200 while alice's bucket lasts (burst 5,"
more "refilled at 10/s), then 429 with Retry-After and RateLimit-*"
try "for u in alice bob carol dave erin; do curl --cacert $CA -s -o /dev/null -w '%header{x-ficus-upstream} ' -H \"X-Customer-Id: \$u\" $H/api/catalog; done; echo" \
    "split: 20 % of users on orders, the rest on the monolith;"
more "each user keeps its side (x-ficus-upstream: who answered)"
try "curl --cacert $CA -s -H 'X-Ficus-Upstream: orders' $H/api/catalog" "override: a tester pinned to the new service"
try "curl --cacert $CA -s $H/reports/daily" "the monolith answers; orders gets a shadow copy, compared:"
more "ficus_mirror_compare_total{route=\"reports\"} in /metrics"
try "redis-cli -p $REDIS_PORT SET '{ficus:shed}:level' 2" "fleet-wide shedding: within 1 s normal and low routes"
more "answer 503 (/ above), high ones (/api/orders) are served"
try "redis-cli -p $REDIS_PORT SET '{ficus:shed}:level' 0" "back to normal within 1 s"
try "curl --cacert $CA -i '$H/checkout/cart?step=2'" "308 to https://shop.example.com/checkout/cart?step=2"
try "curl --cacert $CA --http2 -sI $H/" "HTTP/2 (ALPN)"
try "curl -i http://localhost:$HTTP_PORT/some/page" "308 to $H/some/page"
try "curl http://$ADMIN/metrics" "Prometheus metrics (also /healthz, /readyz)"
cat <<HELP

  Reload: edit $CONF, then   kill -HUP $FICUS_PID   (a bad file is refused; the running config stays)
  JWT: provider "dev" of $CONF: issuer https://idp.ficus.dev/, audience api://ficus-demo, keys
       certs-dev/dev-jwks.json; \`$FICUS --help\` shows the options of \`ficus token\` (claims, lifetime, key)
  Redis: 127.0.0.1:$REDIS_PORT ($REDIS_WHO): the per-user rate limit and the shedding level

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
