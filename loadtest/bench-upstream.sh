#!/usr/bin/env bash
# Cost of the upstream layer's resilience features (issue 11) over the plain proxy route, and the retry
# amplification under a total outage, on bench.sh's setup (nginx upstream on core 1, one ficus worker on core 0,
# h2load -c 32 -m 16 over TLS h2 from core 1).
#
#   loadtest/bench-upstream.sh [--duration S] [--rounds N]
#
# Routes of one ficus configuration: /plain → an upstream with the defaults; /res → the same nginx with retries
# (3 attempts on connect_failure, reset, 502, 503, 504), outlier detection and an active health check configured and
# nothing failing; /down → an upstream whose only endpoint refuses connections (a total outage), retries as /res.
# Figures: gateway CPU µs per request (utime+stime from /proc ÷ requests) for /plain and /res in alternating runs,
# median over rounds; for /down, attempts (ficus_upstream_errors_total{kind="connect"}) ÷ client requests.
set -euo pipefail

BENCH_NAME=bench-upstream
. "$(dirname "$0")/lib.sh"
duration_rounds_args "$@"
start_ficus_bench bench-upstream
DEAD_PORT=$(free_port)
RETRY='retry: { attempts: 3, on: [connect_failure, reset, 502, 503, 504], backoff: { base: 25ms, max: 250ms }, budget: 20% }'
{ ficus_server_section; cat; } >"$RUN/ficus.yaml" <<CONF
upstreams:
  plain: { endpoints: ["http://127.0.0.1:$UP_PORT"], keepalive_timeout: 30s }
  res:
    endpoints: ["http://127.0.0.1:$UP_PORT"]
    keepalive_timeout: 30s
    $RETRY
    outlier: { consecutive_failures: 5, ejection: 10s }
    health_check: { path: /, interval: 1s, timeout: 500ms }
  down:
    endpoints: ["http://127.0.0.1:$DEAD_PORT"]
    $RETRY
routes:
  - { name: plain, match: { path_prefix: /plain }, to: plain }
  - { name: res, match: { path_prefix: /res }, to: res }
  - { name: down, match: { path_prefix: /down }, to: down }
CONF
taskset -c 0 "$FICUS" -c "$RUN/ficus.yaml" >"$RUN/ficus.out" 2>"$RUN/ficus.err" &
GW_PID=$!
PIDS+=("$GW_PID")
wait_hello "https://localhost:$TLS_PORT/plain" "$GW_PID" ficus

run() { # path: prints "requests ticks"
    local t0 t1 out n
    taskset -c 1 h2load "${H2_OPTS[@]}" -D 1 "https://127.0.0.1:$TLS_PORT$1" >/dev/null 2>&1 # warm-up
    t0=$(proc_ticks "$GW_PID")
    out=$(taskset -c 1 h2load "${H2_OPTS[@]}" -D "$DUR" "https://127.0.0.1:$TLS_PORT$1" 2>&1)
    t1=$(proc_ticks "$GW_PID")
    n=$(echo "$out" | awk '/^requests:/ { print $8 }') # succeeded
    echo "$n $((t1 - t0))"
}
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

note_load_before
PLAIN=() RES=() RATIO=()
for r in $(seq 1 "$ROUNDS"); do
    read -r n d < <(run /plain)
    PLAIN+=("$(us_per_req "$d" "$n" %.3f)")
    read -r n d < <(run /res)
    RES+=("$(us_per_req "$d" "$n" %.3f)")
    RATIO+=("$(awk -v a="${PLAIN[-1]}" -v b="${RES[-1]}" 'BEGIN { printf "%.4f", b / a }')")
    log "round $r: plain ${PLAIN[-1]} us/req, resilience ${RES[-1]} us/req"
done
P=$(printf '%s\n' "${PLAIN[@]}" | median)
R=$(printf '%s\n' "${RES[@]}" | median)

metric() { curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v k="$1" 'index($0, k) == 1 { print $2 }'; }
E0=$(metric 'ficus_upstream_errors_total{upstream="down",kind="connect"}')
OUT=$(taskset -c 1 h2load "${H2_OPTS[@]}" -n 20000 "https://127.0.0.1:$TLS_PORT/down" 2>&1)
E1=$(metric 'ficus_upstream_errors_total{upstream="down",kind="connect"}')
N=$(echo "$OUT" | awk '/^requests:/ { print $6 }') # done (all answered 5xx)
EXH=$(metric 'ficus_upstream_retry_budget_exhausted_total{upstream="down"}')
AMP=$(awk -v a="$((E1 - E0))" -v n="$N" 'BEGIN { printf "%.3f", a / n }')
echo "plain proxy route:          $P us/request (median of $ROUNDS)"
RM=$(printf '%s\n' "${RATIO[@]}" | median)
echo "retries+outlier+health:     $R us/request; vs plain, median of the rounds' ratios: $(awk -v r="$RM" 'BEGIN { printf "%+.1f %%", 100 * (r - 1) }') (${RATIO[*]})"
echo "total outage (connect refused), attempts 3, budget 20%: $((E1 - E0)) attempts for $N client requests = amplification $AMP (budget refused $EXH)"
