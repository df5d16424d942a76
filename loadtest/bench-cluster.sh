#!/usr/bin/env bash
# Cost of Redis Cluster (issue 14) for the hot-key rate-limit route, against the same route on one Redis server, on
# bench.sh's setup (nginx upstream on core 1, one ficus worker on core 0, h2load -c 32 -m 16 over TLS h2 from core 1).
#
#   loadtest/bench-cluster.sh [--duration S] [--rounds N]
#
# Redis (all on core 1, no persistence): one redis-server, and a Redis Cluster of 3 masters (redis-cli --cluster
# create, no replicas). Two ficus configurations that differ only in `redis:` (address vs cluster.addresses with one
# seed) run one after the other in each round; each serves /plain (no Redis) and /rl-hot (key ip, 1,000,000/s: one
# hot key, never denied). Figures, medians over rounds: gateway CPU µs per request (utime+stime ÷ requests) on
# /rl-hot for both, and Redis round trips per request = commands ficus sent (ficus_redis_commands_total) ÷ requests;
# also the commands the Redis servers processed (INFO stats total_commands_processed, summed over the nodes, which
# counts the calls a script makes as well as the EVALSHA itself) ÷ requests.
set -euo pipefail

BENCH_NAME=bench-cluster
. "$(dirname "$0")/lib.sh"
duration_rounds_args "$@"
start_ficus_bench bench-cluster
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || die "needs redis-server and redis-cli"

redis_start() { # port [extra redis-server options]: one redis-server on core 1
    local port=$1 i
    shift
    mkdir -p "$RUN/redis-$port"
    taskset -c 1 redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$RUN/redis-$port" \
        --logfile "$RUN/redis-$port.log" "$@" &
    PIDS+=("$!")
    for i in $(seq 1 50); do
        [ "$(redis-cli -p "$port" PING 2>/dev/null || true)" = PONG ] && return 0
        sleep 0.1
    done
    die "redis-server on $port did not start"
}
SINGLE=$(free_port)
redis_start "$SINGLE"
cluster_port() { # a free port whose cluster-bus port (+ 10000) is free as well
    "$PY" -c 'import socket
while True:
    a, b = socket.socket(), socket.socket()
    a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    if p + 10000 > 65535: continue
    try: b.bind(("127.0.0.1", p + 10000))
    except OSError: continue
    print(p); break'
}
NODES=()
for _ in 1 2 3; do
    p=$(cluster_port)
    NODES+=("$p")
    redis_start "$p" --cluster-enabled yes --cluster-config-file "$RUN/redis-$p/nodes.conf" --cluster-node-timeout 3000
done
redis-cli --cluster create "${NODES[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$RUN/cluster-create.out" 2>&1 ||
    die "redis-cli --cluster create failed: $(tail -3 "$RUN/cluster-create.out")"
for _ in $(seq 1 100); do
    ok=0
    for p in "${NODES[@]}"; do redis-cli -p "$p" CLUSTER INFO | grep -q 'cluster_state:ok' && ok=$((ok + 1)); done
    [ "$ok" = 3 ] && break
    sleep 0.1
done
[ "$ok" = 3 ] || die "the cluster did not reach cluster_state:ok"
log "redis: one server on $SINGLE; cluster of 3 masters on ${NODES[*]}"

ficus_conf() { # the redis: line
    ficus_server_section
    cat <<CONF
redis: $1
upstreams:
  upstream: { endpoints: ["http://127.0.0.1:$UP_PORT"], keepalive_timeout: 30s }
rate_limits:
  hot: { key: ip, limit: 1000000, per: 1s }
routes:
  - { name: plain, match: { path_prefix: /plain }, to: upstream }
  - { name: rl-hot, match: { path_prefix: /rl-hot }, rate_limit: [hot], to: upstream }
CONF
}
ficus_conf "{ address: \"127.0.0.1:$SINGLE\", command_timeout: 50ms }" >"$RUN/single.yaml"
ficus_conf "{ cluster: { addresses: [\"127.0.0.1:${NODES[0]}\"] }, command_timeout: 50ms }" >"$RUN/cluster.yaml"
for m in single cluster; do "$FICUS" -t -c "$RUN/$m.yaml" >/dev/null || die "ficus -t rejected $RUN/$m.yaml"; done

GW_PID=
start_ficus() { # single|cluster
    taskset -c 0 "$FICUS" -c "$RUN/$1.yaml" >>"$RUN/$1.out" 2>>"$RUN/$1.err" &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_hello "https://localhost:$TLS_PORT/rl-hot" "$GW_PID" "ficus ($1)"
}
ficus_cmds() { curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '$1 == "ficus_redis_commands_total" { print $2 }'; }
server_cmds() { # ports...: commands processed, summed (each INFO itself is counted by the next one)
    local p s=0
    for p in "$@"; do s=$((s + $(redis-cli -p "$p" INFO stats | tr -d '\r' | awk -F: '$1 == "total_commands_processed" { print $2 }'))); done
    echo $s
}
run() { # path ports...: prints "requests ticks ficus-commands server-commands"
    local path=$1 t0 t1 f0 f1 s0 s1 out n
    shift
    taskset -c 1 h2load "${H2_OPTS[@]}" -D 1 "https://127.0.0.1:$TLS_PORT$path" >/dev/null 2>&1
    f0=$(ficus_cmds); s0=$(server_cmds "$@"); t0=$(proc_ticks "$GW_PID")
    out=$(taskset -c 1 h2load "${H2_OPTS[@]}" -D "$DUR" "https://127.0.0.1:$TLS_PORT$path" 2>&1)
    t1=$(proc_ticks "$GW_PID"); s1=$(server_cmds "$@"); f1=$(ficus_cmds)
    kill -0 "$GW_PID" || die "ficus exited (logs in $RUN)"
    n=$(echo "$out" | awk '/^status codes:/ { print $3 }')
    [ -n "$n" ] && [ "$n" -gt 0 ] || die "h2load on $path answered no 2xx: $(echo "$out" | tail -5)"
    echo "$n $((t1 - t0)) $((f1 - f0)) $((s1 - s0 - $#))"
}
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
per() { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.5f", (a < 0 ? 0 : a) / n }'; }

note_load_before
declare -A CPU FRT SRT
RATIOS= # per round: cluster rl-hot / single rl-hot
for r in $(seq 1 "$ROUNDS"); do
    for m in single cluster; do
        start_ficus "$m"
        if [ "$m" = single ]; then ports=("$SINGLE"); else ports=("${NODES[@]}"); fi
        read -r n d _ _ < <(run /plain "${ports[@]}")
        CPU[$m-plain]+="$(us_per_req "$d" "$n" %.3f) "
        read -r n d f s < <(run /rl-hot "${ports[@]}")
        CPU[$m-rl]+="$(us_per_req "$d" "$n" %.3f) "
        FRT[$m]+="$(per "$f" "$n") "
        SRT[$m]+="$(per "$s" "$n") "
        log "round $r, $m: plain $(echo "${CPU[$m-plain]}" | awk '{ print $NF }'), rl-hot $(echo "${CPU[$m-rl]}" | awk '{ print $NF }') us/req;" \
            "round trips per request: ficus sent $(per "$f" "$n"), servers processed $(per "$s" "$n") ($n requests)"
        kill -TERM "$GW_PID"
        wait "$GW_PID" || true
    done
    RATIOS+="$(awk -v a="$(echo "${CPU[single-rl]}" | awk '{ print $NF }')" -v b="$(echo "${CPU[cluster-rl]}" | awk '{ print $NF }')" \
        'BEGIN { printf "%.4f", b / a }') "
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
SP=$(med "${CPU[single-plain]}") SR=$(med "${CPU[single-rl]}") CP=$(med "${CPU[cluster-plain]}") CR=$(med "${CPU[cluster-rl]}")
echo "load average before $LOAD_BEFORE, after $LOAD_AFTER; $ROUNDS rounds x ${DUR}s, medians"
echo "one server:  /plain $SP us/request, /rl-hot $SR us/request; Redis round trips per request $(med "${FRT[single]}") (server-side commands, scripts' calls included: $(med "${SRT[single]}"))"
echo "3 masters:   /plain $CP us/request, /rl-hot $CR us/request; Redis round trips per request $(med "${FRT[cluster]}") (server-side commands, scripts' calls included: $(med "${SRT[cluster]}"))"
RM=$(med "$RATIOS")
echo "rl-hot on the cluster vs one server: $(awk -v r="$RM" 'BEGIN { printf "%+.1f %%", 100 * (r - 1) }') CPU per request (median of the rounds' ratios: $RATIOS)"
