# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables set here are for the sourcing scripts
# Shell functions shared by the loadtest/bench*.sh scripts (sourced, not run; bash).
#
# The sourcing script sets BENCH_NAME (the prefix of its log lines), then:
#   . "$(dirname "$0")/lib.sh"
# which sets ROOT (the source tree, also made the current directory), BUILD_DIR (absolute; default build), PY,
# H2_OPTS, H1_OPTS and TCK, and defines the functions below; they expect RUN (the script's work directory) to be set
# by the time they are called, and the gateway ones GW_PID (and UP_PORT, set by start_upstream).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${BUILD_DIR:-build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
PY=/usr/bin/python3
H2_OPTS=(-c 32 -m 16)
H1_OPTS=(-t 1 -c 64)
TCK=$(getconf CLK_TCK)

log() { echo "$BENCH_NAME: $*" >&2; }
die() { echo "$BENCH_NAME: ERROR: $*" >&2; exit 1; }

# Processes started in the background (PIDS+=(...)) are stopped on exit.
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
set_traps() {
    trap cleanup EXIT
    trap 'echo "$BENCH_NAME: ERROR: command failed at line $LINENO: $BASH_COMMAND" >&2' ERR
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Dev certificates (CERT KEY CA) and an empty $RUN.
prepare_certs_and_run_dir() {
    certs-dev/make-certs.sh >&2
    CERT="$ROOT/certs-dev/localhost.crt"
    KEY="$ROOT/certs-dev/localhost.key"
    CA="$ROOT/certs-dev/dev-ca.crt"
    rm -rf "$RUN"
    mkdir -p "$RUN"
}

# The scripts that take only --duration S and --rounds N (bench-traffic.sh, bench-cluster.sh, bench-upstream.sh):
# sets DUR and ROUNDS (5 and 3 unless given); -h prints the script's header comment.
duration_rounds_args() {
    DUR=5
    ROUNDS=3
    while [ $# -gt 0 ]; do
        case "$1" in
            --duration) DUR=$2; shift ;;
            --rounds) ROUNDS=$2; shift ;;
            -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
            *) die "unknown argument $1 (see --help)" ;;
        esac
        shift
    done
}

# The common start of those scripts: RUN=.work/NAME (emptied), traps, the bench packages, the dev certificates,
# FICUS ($BUILD_DIR/ficus, a Release build), the nginx upstream (UP_PORT) and the ports of the ficus under test
# (TLS_PORT, ADMIN_PORT: see ficus_server_section).
start_ficus_bench() { # name
    RUN="$ROOT/.work/$1"
    set_traps
    scripts/deps.sh bench >&2
    prepare_certs_and_run_dir
    FICUS="$BUILD_DIR/ficus"
    [ -x "$FICUS" ] || die "no $FICUS: build it in Release first"
    start_upstream
    TLS_PORT=$(free_port)
    ADMIN_PORT=$(free_port)
}

# The `server:` section of those scripts' ficus: one worker, TLS on TLS_PORT, admin on ADMIN_PORT, no access log.
ficus_server_section() {
    cat <<CONF
server:
  workers: 1
  listen: [{ address: "127.0.0.1:$TLS_PORT", tls: { certificates: [{ cert: "$CERT", key: "$KEY" }] } }]
  admin: { address: "127.0.0.1:$ADMIN_PORT" }
  access_log: off
CONF
}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The upstream: nginx answering 200 "hello\n" itself (stub_status on /_upstream_status), 1 worker on core 1.
# Sets UP_PORT and UP_PID.
start_upstream() {
    UP_PORT=$(free_port)
    mkdir -p "$RUN/upstream-tmp"
    cat >"$RUN/upstream.conf" <<CONF
worker_processes 1;
user root;
pid $RUN/upstream.pid;
error_log $RUN/upstream.error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $RUN/upstream-tmp/body;
    proxy_temp_path $RUN/upstream-tmp/proxy;
    fastcgi_temp_path $RUN/upstream-tmp/fastcgi;
    uwsgi_temp_path $RUN/upstream-tmp/uwsgi;
    scgi_temp_path $RUN/upstream-tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$UP_PORT;
        location / { default_type text/plain; return 200 "hello\n"; }
        location = /_upstream_status { stub_status; }
    }
}
CONF
    taskset -c 1 nginx -p "$RUN" -e "$RUN/upstream.error.log" -c "$RUN/upstream.conf" &
    UP_PID=$!
    PIDS+=("$UP_PID")
    for _ in $(seq 1 50); do
        [ "$(curl -fsS "http://127.0.0.1:$UP_PORT/" 2>/dev/null || true)" = hello ] && break
        sleep 0.1
    done
    [ "$(curl -fsS "http://127.0.0.1:$UP_PORT/" 2>/dev/null || true)" = hello ] || die "upstream nginx did not start"
}

wait_hello() { # url pid name [what]: wait until the URL answers "hello" (what: how the error names it; default url)
    local i
    for i in $(seq 1 100); do
        [ "$(curl -fsS --cacert "$CA" "$1" 2>/dev/null || true)" = hello ] && return 0
        kill -0 "$2" 2>/dev/null || die "$3 exited during start-up (logs in $RUN)"
        sleep 0.1
    done
    die "$3 did not answer 'hello' on ${4:-$1} within 10 s (logs in $RUN)"
}

stop_gateway() {
    kill -TERM "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
}

# --- probes ---------------------------------------------------------------------------------------------------------
proc_ticks() { # pid...: utime+stime (all threads) of the processes and their children (e.g. nginx's worker)
    local pid total=0 rest
    for pid in "$@" $(for p in "$@"; do pgrep -P "$p" || true; done); do
        [ -r "/proc/$pid/stat" ] || continue
        rest=$(sed 's/^.*) //' "/proc/$pid/stat") # fields from 3 (state) on; comm may contain spaces
        set -- $rest
        total=$((total + ${12} + ${13}))          # fields 14 (utime) and 15 (stime)
    done
    echo $total
}

up_requests() { # requests the upstream has served so far (stub_status: "accepts handled requests")
    curl -fsS "http://127.0.0.1:$UP_PORT/_upstream_status" | awk 'NR == 3 { print $3 }'
}

core0_ticks() { # "busy total" ticks of CPU 0 (all processes) from /proc/stat
    awk '$1 == "cpu0" { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6 }' /proc/stat
}

other_on_core0() { # gateway-ticks-delta "busy0 total0" "busy1 total1": % of core 0 used by something else
    local b0 t0 b1 t1
    read -r b0 t0 <<<"$2"
    read -r b1 t1 <<<"$3"
    awk -v g="$1" -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { o = t > 0 ? 100 * (b - g) / t : 0; printf "%.0f", o < 0 ? 0 : o }'
}

us_per_req() { # ticks requests printf-format: CPU microseconds per request
    awk -v d="$1" -v n="$2" -v hz="$TCK" -v f="$3" 'BEGIN { printf f, d * 1e6 / hz / n }'
}

busy_pct() { # ticks: % of one core over the run's $DUR seconds
    awk -v d="$1" -v s="$DUR" -v hz="$TCK" 'BEGIN { printf "%.0f", 100 * d / hz / s }'
}

note_load_before() { # sets LOAD_BEFORE; warns when the machine is not idle
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    if awk -v l="${LOAD_BEFORE%% *}" 'BEGIN { exit !(l > 0.5) }'; then
        log "WARNING: load average is $LOAD_BEFORE before the run: other work on this machine will skew the figures"
    fi
}
