#!/usr/bin/env bash
# Memory per idle TLS connection: ficus vs nginx vs haproxy in one run (issue 15, "Memory").
#
#   loadtest/bench-memory.sh [--conns N] [--rounds R] [--gateways nginx,haproxy,ficus]
#
# Each gateway is started fresh (one worker/thread, TLS h2 + http/1.1, proxying to the same nginx upstream), then
# for each of --rounds (3) rounds: N idle connections (default 19,000: half HTTP/1.1 keep-alive after one request,
# half HTTP/2 after one request; loadtest/idle_conns.py, two client processes, sources 127.0.0.2...) are opened and
# held, the gateway's RSS (VmRSS of its processes: nginx's and haproxy's worker, ficus) is read, all are closed, and
# RSS is read again 10 s later. Reports per gateway: baseline RSS, RSS with the connections held and per connection
# (first round: a fresh process, so memory freed by an earlier round is not reused), RSS after close per round
# (growth across rounds = memory kept). The machine's hard limit of open files (ulimit -Hn, 20,000 here) bounds N:
# every process of the run stays below it.
set -euo pipefail

BENCH_NAME=bench-memory
. "$(dirname "$0")/lib.sh"
GATEWAYS="nginx haproxy ficus"
CONNS=19000
ROUNDS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --conns) CONNS=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --gateways) GATEWAYS=${2//,/ }; shift ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
ulimit -n "$(ulimit -Hn)"
[ "$CONNS" -lt "$(($(ulimit -n) - 200))" ] || die "--conns $CONNS needs more than ulimit -n $(ulimit -n) open files"
RUN="$ROOT/.work/bench-memory"
set_traps
scripts/deps.sh bench >&2
prepare_certs_and_run_dir
FICUS="$BUILD_DIR/ficus"
[ -x "$FICUS" ] || die "build ficus first (make build)"
start_upstream
HALF=$((CONNS / 2))

rss_kb() { # pids...: sum of VmRSS
    local t=0 p v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        t=$((t + v))
    done
    echo "$t"
}

start() { # name: sets GW_PID (what to kill), MEM_PIDS (whose RSS counts), GW_PORT
    GW_PORT=$(free_port)
    case "$1" in
        nginx)
            mkdir -p "$RUN/ngx-tmp"
            cat >"$RUN/nginx.conf" <<CONF
worker_processes 1; user root; pid $RUN/nginx.pid; error_log $RUN/nginx.error.log warn; daemon off;
worker_rlimit_nofile $(ulimit -n);
events { worker_connections $((CONNS + 500)); }
http {
    access_log off;
    client_body_temp_path $RUN/ngx-tmp; proxy_temp_path $RUN/ngx-tmp; fastcgi_temp_path $RUN/ngx-tmp;
    uwsgi_temp_path $RUN/ngx-tmp; scgi_temp_path $RUN/ngx-tmp;
    upstream backend { server 127.0.0.1:$UP_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$GW_PORT ssl http2;
        ssl_certificate $CERT; ssl_certificate_key $KEY; ssl_protocols TLSv1.2 TLSv1.3;
        keepalive_timeout 600s; keepalive_requests 1000000;
        location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
CONF
            taskset -c 0 nginx -p "$RUN" -e "$RUN/nginx.error.log" -c "$RUN/nginx.conf" &
            GW_PID=$!
            ;;
        haproxy)
            cat "$CERT" "$KEY" >"$RUN/haproxy.pem"
            cat >"$RUN/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn $((CONNS + 500))
    fd-hard-limit $(ulimit -Hn)
    log stderr format short local0 warning
defaults
    mode http
    timeout connect 5s
    timeout client 600s
    timeout server 60s
    timeout http-keep-alive 600s
frontend gateway
    bind 127.0.0.1:$GW_PORT ssl crt $RUN/haproxy.pem alpn h2,http/1.1
    default_backend upstream
backend upstream
    http-reuse always
    server up 127.0.0.1:$UP_PORT maxconn 1000
CONF
            taskset -c 0 haproxy -db -f "$RUN/haproxy.cfg" 2>"$RUN/haproxy.log" &
            GW_PID=$!
            ;;
        ficus)
            cat >"$RUN/ficus.yaml" <<CONF
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$GW_PORT"
      tls: { certificates: [{ cert: "$CERT", key: "$KEY" }] }
  access_log: "off"
  log_level: warn
  timeouts: { idle: 600s }
upstreams:
  upstream: { endpoints: ["http://127.0.0.1:$UP_PORT"] }
routes:
  - name: all
    match: { path_prefix: / }
    to: upstream
CONF
            "$FICUS" -t -c "$RUN/ficus.yaml" >/dev/null 2>&1 || die "ficus -t rejected $RUN/ficus.yaml"
            taskset -c 0 "$FICUS" -c "$RUN/ficus.yaml" >"$RUN/ficus.out" 2>"$RUN/ficus.err" &
            GW_PID=$!
            ;;
    esac
    PIDS+=("$GW_PID")
    wait_hello "https://localhost:$GW_PORT/" "$GW_PID" "$1"
    MEM_PIDS=("$GW_PID")
    if [ "$1" = nginx ]; then MEM_PIDS=($(pgrep -P "$GW_PID")); fi
    sleep 1
}

hold_and_close() { # round: opens CONNS idle connections, records HELD and AFTER (KB)
    local p proto src pids=()
    for proto in h1 h2; do
        [ "$proto" = h1 ] && src="127.0.0.$((2 + 2 * $1))" || src="127.0.0.$((3 + 2 * $1))"
        rm -f "$RUN/$proto.in" "$RUN/$proto.out"
        mkfifo "$RUN/$proto.in"
        "$PY" loadtest/idle_conns.py --port "$GW_PORT" --n "$HALF" --proto "$proto" --source "$src" \
            <"$RUN/$proto.in" >"$RUN/$proto.out" 2>"$RUN/$proto.err" &
        pids+=($!)
        exec {fd}>"$RUN/$proto.in" # keeps the client's stdin open until we write the line that closes its connections
        eval "FD_$proto=$fd"
    done
    for proto in h1 h2; do
        local i
        for i in $(seq 1 1200); do
            grep -q ready "$RUN/$proto.out" 2>/dev/null && break
            for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || die "a client exited: $(cat "$RUN"/h?.err)"; done
            sleep 0.5
        done
        grep -q ready "$RUN/$proto.out" || die "$proto clients did not get $HALF connections open"
    done
    sleep 2
    HELD=$(rss_kb "${MEM_PIDS[@]}")
    echo >&"$FD_h1"
    echo >&"$FD_h2"
    exec {FD_h1}>&- {FD_h2}>&-
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    sleep 10
    AFTER=$(rss_kb "${MEM_PIDS[@]}")
}

log "$CONNS idle TLS connections ($HALF HTTP/1.1 + $HALF HTTP/2), $ROUNDS rounds per gateway; upstream on $UP_PORT"
declare -A RES
for g in $GATEWAYS; do
    start "$g"
    base=$(rss_kb "${MEM_PIDS[@]}")
    afters=()
    for r in $(seq 1 "$ROUNDS"); do
        hold_and_close "$r"
        [ "$r" -eq 1 ] && held1=$HELD
        afters+=("$((AFTER / 1024))")
        log "$g round $r: held $((HELD / 1024)) MB, after close $((AFTER / 1024)) MB"
    done
    per=$(awk -v h="$held1" -v b="$base" -v n="$CONNS" 'BEGIN { printf "%.1f", (h - b) / n }')
    RES[$g]="| $g | $((base / 1024)) | $((held1 / 1024)) | $per | ${afters[*]} |"
    kill -TERM "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
done
echo
echo "| gateway | RSS before (MB) | RSS with $CONNS idle (MB) | KB per connection | RSS 10 s after close, per round (MB) |"
echo "| --- | ---: | ---: | ---: | --- |"
for g in $GATEWAYS; do echo "${RES[$g]}"; done
