#!/usr/bin/env bash
# Cost of strangler-fig traffic control (issue 12) over a plain `to` route, on bench.sh's setup (nginx upstream on
# core 1, one ficus worker on core 0, load generators on core 1).
#
#   loadtest/bench-traffic.sh [--duration S] [--rounds N]
#
# Routes of one ficus configuration (every upstream is the same nginx, under different names):
#   /to           to: old
#   /split        split 50/50 over old and new, key header:X-Customer-Id (a sticky per-user decision every request)
#   /mirror-fast  to: old, mirror 100 % (compare: true) to `fastshadow` (nginx again): every request is copied
#   /mirror-slow  to: old, mirror 100 % to tests/upstreams/shadow.py that answers after 2 s (max_inflight 64)
# Figures, median over rounds (the scenarios alternate inside each round):
#   - gateway CPU µs per request (utime+stime from /proc ÷ requests) under h2load -c 32 -m 16 (TLS h2): split vs to;
#     mirror-fast vs to, and the CPU per mirrored request = extra CPU ÷ copies sent (ficus_mirror_requests_total);
#   - the primary's p99 latency (wrk -t 1 --latency, TLS http/1.1) with the 2 s shadow vs without a mirror, at 16
#     connections (the gateway not saturated: the latency of one exchange) and at 64 (saturated: queueing included).
# Ratios are the median of the rounds' own ratios (each round's scenarios ran back to back, so a round's ratio is
# not moved by the machine's drift between rounds); the per-scenario medians are printed too.
set -euo pipefail

BENCH_NAME=bench-traffic
. "$(dirname "$0")/lib.sh"
duration_rounds_args "$@"
start_ficus_bench bench-traffic

SHADOW_PORT=$(free_port)
taskset -c 1 "$PY" tests/upstreams/shadow.py --port "$SHADOW_PORT" --delay-ms 2000 >"$RUN/shadow.out" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 50); do grep -q ready "$RUN/shadow.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$RUN/shadow.out" || die "shadow.py did not start"

UP="endpoints: [\"http://127.0.0.1:$UP_PORT\"], keepalive_timeout: 30s"
{ ficus_server_section; cat; } >"$RUN/ficus.yaml" <<CONF
upstreams:
  old: { $UP }
  new: { $UP }
  fastshadow: { $UP }
  slowshadow: { endpoints: ["http://127.0.0.1:$SHADOW_PORT"], timeout: 5s }
routes:
  - { name: to, match: { path_prefix: /to }, to: old }
  - name: split
    match: { path_prefix: /split }
    split: { key: [header:X-Customer-Id], to: [{ upstream: new, weight: 50 }, { upstream: old, weight: 50 }] }
  - name: mirror-fast
    match: { path_prefix: /mirror-fast }
    to: old
    mirror: { upstream: fastshadow, sample: 100%, timeout: 2s, max_inflight: 1024, compare: true }
  - name: mirror-slow
    match: { path_prefix: /mirror-slow }
    to: old
    mirror: { upstream: slowshadow, sample: 100%, timeout: 3s, max_inflight: 64, compare: true }
CONF
"$FICUS" -t -c "$RUN/ficus.yaml" >/dev/null || die "ficus -t rejected $RUN/ficus.yaml"
taskset -c 0 "$FICUS" -c "$RUN/ficus.yaml" >"$RUN/ficus.out" 2>"$RUN/ficus.err" &
GW_PID=$!
PIDS+=("$GW_PID")
wait_hello "https://localhost:$TLS_PORT/to" "$GW_PID" ficus

metric() { curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v k="$1" 'index($0, k) == 1 { s += $2 } END { print s + 0 }'; }
SENT='ficus_mirror_requests_total{route="mirror-fast",result="sent"}'

cpu_run() { # path: prints "requests ticks copies-sent" (h2load; one X-Customer-Id per run, decided on every request)
    local t0 t1 s0 s1 out n
    taskset -c 1 h2load "${H2_OPTS[@]}" -H "x-customer-id: u$RANDOM" -D 1 "https://127.0.0.1:$TLS_PORT$1" >/dev/null 2>&1
    s0=$(metric "$SENT")
    t0=$(proc_ticks "$GW_PID")
    out=$(taskset -c 1 h2load "${H2_OPTS[@]}" -H "x-customer-id: u$RANDOM" -D "$DUR" "https://127.0.0.1:$TLS_PORT$1" 2>&1)
    t1=$(proc_ticks "$GW_PID")
    s1=$(metric "$SENT")
    kill -0 "$GW_PID" || die "ficus exited (logs in $RUN)"
    n=$(echo "$out" | awk '/^status codes:/ { print $3 }') # 2xx
    [ -n "$n" ] && [ "$n" -gt 0 ] || die "h2load on $1 answered no 2xx: $(echo "$out" | tail -5)"
    echo "$n $((t1 - t0)) $((s1 - s0))"
}
p99_run() { # path connections: prints the p99 latency in ms (wrk --latency)
    local out
    taskset -c 1 wrk -t 1 -c "$2" -d 1s "https://127.0.0.1:$TLS_PORT$1" >/dev/null 2>&1
    out=$(taskset -c 1 wrk -t 1 -c "$2" --latency -d "${DUR}s" "https://127.0.0.1:$TLS_PORT$1" 2>&1)
    echo "$out" | grep -q 'Non-2xx' && die "wrk on $1 got non-2xx answers: $out"
    echo "$out" | awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        f = u == "us" ? 0.001 : u == "ms" ? 1 : u == "s" ? 1000 : -1; if (f < 0) exit 1; printf "%.3f\n", v * f }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f %%", 100 * (b - a) / a }'; }

note_load_before
TO=() SPLIT=() MFAST=() PERCOPY=() P99_TO=() P99_SLOW=() RATIO=() SPLIT_R=() P16_TO=() P16_SLOW=() RATIO16=()
for r in $(seq 1 "$ROUNDS"); do
    read -r n d _ < <(cpu_run /to)
    TO+=("$(us_per_req "$d" "$n" %.3f)")
    read -r n d _ < <(cpu_run /split)
    SPLIT+=("$(us_per_req "$d" "$n" %.3f)")
    SPLIT_R+=("$(awk -v a="${TO[-1]}" -v b="${SPLIT[-1]}" 'BEGIN { printf "%.4f", b / a }')")
    read -r n d sent < <(cpu_run /mirror-fast)
    MFAST+=("$(us_per_req "$d" "$n" %.3f)")
    [ "$sent" -gt 0 ] || die "mirror-fast sent no copy"
    # extra CPU of the round's mirrored run over its `to` run, per copy sent
    PERCOPY+=("$(awk -v m="${MFAST[-1]}" -v t="${TO[-1]}" -v n="$n" -v s="$sent" 'BEGIN { printf "%.3f", (m - t) * n / s }')")
    P16_TO+=("$(p99_run /to 16)")
    P16_SLOW+=("$(p99_run /mirror-slow 16)")
    RATIO16+=("$(awk -v a="${P16_TO[-1]}" -v b="${P16_SLOW[-1]}" 'BEGIN { printf "%.3f", b / a }')")
    P99_TO+=("$(p99_run /to 64)")
    P99_SLOW+=("$(p99_run /mirror-slow 64)")
    RATIO+=("$(awk -v a="${P99_TO[-1]}" -v b="${P99_SLOW[-1]}" 'BEGIN { printf "%.3f", b / a }')")
    log "round $r: to ${TO[-1]}, split ${SPLIT[-1]}, mirror-fast ${MFAST[-1]} us/req (${PERCOPY[-1]} us per copy, $sent copies);" \
        "p99 at 16 conns to ${P16_TO[-1]} ms, with the 2 s shadow ${P16_SLOW[-1]} ms (x${RATIO16[-1]}); at 64 conns" \
        "${P99_TO[-1]} / ${P99_SLOW[-1]} ms (x${RATIO[-1]})"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
T=$(printf '%s\n' "${TO[@]}" | median)
S=$(printf '%s\n' "${SPLIT[@]}" | median)
M=$(printf '%s\n' "${MFAST[@]}" | median)
C=$(printf '%s\n' "${PERCOPY[@]}" | median)
PT=$(printf '%s\n' "${P99_TO[@]}" | median)
PS=$(printf '%s\n' "${P99_SLOW[@]}" | median)
RR=$(printf '%s\n' "${RATIO[@]}" | median)
SR=$(printf '%s\n' "${SPLIT_R[@]}" | median)
P16T=$(printf '%s\n' "${P16_TO[@]}" | median)
P16S=$(printf '%s\n' "${P16_SLOW[@]}" | median)
RR16=$(printf '%s\n' "${RATIO16[@]}" | median)
SKIP=$(metric 'ficus_mirror_requests_total{route="mirror-slow",result="skipped_capacity"}')
SLOWSENT=$(metric 'ficus_mirror_requests_total{route="mirror-slow",result="sent"}')
echo "load average before $LOAD_BEFORE, after $LOAD_AFTER; $ROUNDS rounds x ${DUR}s, medians"
echo "to (one upstream):            $T us/request"
echo "split 50/50 (sticky by key):  $S us/request; split / to, median of the rounds' ratios: $SR ($(awk -v r="$SR" 'BEGIN { printf "%+.1f %%", 100 * (r - 1) }'))"
echo "mirror 100 % to nginx:        $M us/request ($(pct "$T" "$M")); $C us of gateway CPU per mirrored request"
echo "p99 at 16 connections:        no mirror $P16T ms, mirror to a 2 s shadow $P16S ms; ratio $RR16 (median of the rounds' ratios)"
echo "p99 at 64 connections:        no mirror $PT ms, mirror to a 2 s shadow $PS ms; ratio $RR (median of the rounds' ratios)"
echo "copies to the 2 s shadow: sent $SLOWSENT, skipped at max_inflight $SKIP"
