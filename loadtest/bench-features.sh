#!/usr/bin/env bash
# Cost of ficus's features (JWT, rate limiting, SSO) over its plain proxy route, and haproxy doing the same, on the
# bench.sh setup: same upstream, same load, one gateway worker pinned to core 0.
#
#   loadtest/bench-features.sh [--quick] [--rounds N] [--duration S] [--scenarios LIST] [--perf LIST] [--out FILE]
#
# Upstream: nginx answering 200 "hello\n" on 127.0.0.1 (core 1). Redis: redis-server on 127.0.0.1, no persistence
# (core 1). Load (core 1): h2load -c 32 -m 16 over TLS h2; wrk -t 1 -c 64 over TLS http/1.1 with loadtest/tokens.lua
# when each request needs its own token. Gateways (core 0, one at a time): ficus ($BUILD_DIR/ficus, workers: 1) with
# all feature routes in one configuration (/plain, /jwt, /rl-hot, /rl-deny, /sso), ficus with bench.sh's one-route
# configuration ("bare"), and haproxy (haproxy-features.cfg.tmpl: /plain, /jwt with jwt_verify RS256 + stick table,
# /rl-hot and /rl-deny stick-table limits). Keys and tokens: loadtest/mint_tokens.py (python3-jwcrypto).
# Every run is --duration seconds (10; --quick 2) after a 2 s (--quick 1 s) unmeasured warm-up with the same load;
# --rounds rounds (3; --quick 1), the median of each figure over rounds is reported.
# --scenarios: any of jwt,miss,bad,rl,sso,haproxy (default all). --perf ID,...: after the rounds, one extra run of
# each scenario ID (e.g. f-jwt, f-rl-hot, f-sso) under `perf record -g` (written to .work/bench-features/perf-ID.txt).
# See loadtest/README-features.md for the scenarios and columns.
set -euo pipefail

BENCH_NAME=bench-features # prefix of log lines
. "$(dirname "$0")/lib.sh" # ROOT (the current directory), BUILD_DIR, PY, H2_OPTS, H1_OPTS, TCK, log, die, ...
DUR=10
WARM=2
ROUNDS=3
OUT=
SCENARIOS="jwt miss bad rl sso haproxy"
PERF_IDS=
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) DUR=2; WARM=1; ROUNDS=1 ;;
        --rounds) ROUNDS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        --scenarios) SCENARIOS=${2//,/ }; shift ;;
        --perf) PERF_IDS=${2//,/ }; shift ;;
        --out) OUT=$2; shift ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "bench-features: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }

RUN="$ROOT/.work/bench-features"
TOK="$ROOT/.work/bench-features-tokens" # kept between runs (reused for a day)
ISS="https://bench.ficus.test/"
AUD="api://ficus-bench"

set_traps

scripts/deps.sh bench >&2
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || die "needs redis-server and redis-cli (apt-get install redis-server)"
$PY -c 'import jwcrypto' 2>/dev/null || die "needs python3-jwcrypto (apt-get install python3-jwcrypto)"
prepare_certs_and_run_dir

FICUS="$BUILD_DIR/ficus"
[ -x "$FICUS" ] || die "no $FICUS: build it in Release first (cmake -S . -B DIR -DCMAKE_BUILD_TYPE=Release && cmake --build DIR; BUILD_DIR=DIR)"
$PY loadtest/mint_tokens.py "$TOK" --count 30000 --iss "$ISS" --aud "$AUD"

# --- upstream (as bench.sh) and Redis, both on core 1 -----------------------------------------------------------------
start_upstream

REDIS_PORT=$(free_port)
taskset -c 1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$RUN" \
    --logfile "$RUN/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
for _ in $(seq 1 50); do
    [ "$(rcli PING 2>/dev/null || true)" = PONG ] && break
    sleep 0.1
done
[ "$(rcli PING 2>/dev/null || true)" = PONG ] || die "redis-server did not start"
log "upstream: nginx on 127.0.0.1:$UP_PORT, redis-server on 127.0.0.1:$REDIS_PORT (core 1)"

# --- gateways -------------------------------------------------------------------------------------------------------
printf 'bench-client-secret\n' >"$RUN/sso-secret"
ficus_conf() { # full|bare port admin-port
    cat <<CONF
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$2"
      tls:
        certificates: [{ cert: "$CERT", key: "$KEY" }]
        min_version: TLSv1.2
  admin: { address: "127.0.0.1:$3" }
  access_log: "off"
  log_level: warn
upstreams:
  upstream:
    endpoints: ["http://127.0.0.1:$UP_PORT"]
CONF
    if [ "$1" = bare ]; then
        printf 'routes:\n  - name: all\n    match: { path_prefix: / }\n    to: upstream\n'
        return
    fi
    cat <<CONF
redis:
  address: "127.0.0.1:$REDIS_PORT"
  command_timeout: 50ms
providers:
  bench:
    issuer: "$ISS"
    jwks_file: "$TOK/jwks.json"
    audiences: ["$AUD"]
    algorithms: [RS256, ES256, EdDSA]
rate_limits:
  hot: { key: ip, limit: 1000000, per: 1s }
  hot-nohdr: { key: ip, limit: 1000000, per: 1s, headers: false }
  deny: { key: ip, limit: 1000, per: 1s }
sso:
  provider: bench
  client_id: ficus-bench
  client_secret_file: "$RUN/sso-secret"
  authorization_endpoint: "https://127.0.0.1:9/authorize"
  token_endpoint: "https://127.0.0.1:9/token"
  session: { store: redis, keys_file: "$ROOT/certs-dev/sso-keys" }
routes:
  - name: plain
    match: { path_prefix: /plain }
    to: upstream
  - name: jwt
    match: { path_prefix: /jwt }
    jwt: { provider: bench, forward: { sub: x-user-id } }
    to: upstream
  - name: rl-hot
    match: { path_prefix: /rl-hot }
    rate_limit: [hot]
    to: upstream
  - name: rl-hot-nohdr
    match: { path_prefix: /rl-nohdr }
    rate_limit: [hot-nohdr]
    to: upstream
  - name: rl-deny
    match: { path_prefix: /rl-deny }
    rate_limit: [deny]
    to: upstream
  - name: sso
    match: { path_prefix: /sso }
    sso: { forward: { sub: x-user-id } }
    to: upstream
CONF
}

GW=
GW_PID=
GW_PORT=
ADMIN_PORT=
start_gateway() { # ficus|ficus-bare|haproxy
    GW=$1
    GW_PORT=$(free_port)
    ADMIN_PORT=$(free_port)
    case "$1" in
        ficus | ficus-bare)
            ficus_conf "$([ "$1" = ficus ] && echo full || echo bare)" "$GW_PORT" "$ADMIN_PORT" >"$RUN/$1.yaml"
            "$FICUS" -t -c "$RUN/$1.yaml" >/dev/null || die "ficus -t rejected $RUN/$1.yaml"
            taskset -c 0 "$FICUS" -c "$RUN/$1.yaml" >>"$RUN/$1.out" 2>>"$RUN/$1.err" &
            ;;
        haproxy)
            cat "$CERT" "$KEY" >"$RUN/haproxy.pem"
            sed -e "s|@UP_PORT@|$UP_PORT|g" -e "s|@GW_PORT@|$GW_PORT|g" -e "s|@PEM@|$RUN/haproxy.pem|g" \
                -e "s|@JWT_PEM@|$TOK/rs.pub.pem|g" -e "s|@JWT_ISS@|\"$ISS\"|g" -e "s|@JWT_AUD@|\"$AUD\"|g" \
                loadtest/haproxy-features.cfg.tmpl >"$RUN/haproxy.cfg"
            haproxy -c -q -f "$RUN/haproxy.cfg" || die "haproxy -c failed"
            taskset -c 0 haproxy -db -f "$RUN/haproxy.cfg" 2>>"$RUN/haproxy.log" &
            ;;
    esac
    GW_PID=$!
    PIDS+=("$GW_PID")
    local path=/plain
    [ "$1" = ficus-bare ] && path=/
    wait_hello "https://localhost:$GW_PORT$path" "$GW_PID" "$1" "$path"
}

gateway_alive() {
    if ! kill -0 "$GW_PID" 2>/dev/null; then
        local rc=0
        wait "$GW_PID" || rc=$?
        die "$GW exited during $1 (status $rc); logs in $RUN"
    fi
}

# --- probes (proc_ticks, up_requests, core0_ticks, other_on_core0: lib.sh) ------------------------------------------
metrics() { # "leases redis_commands redis_failures" summed over all series (ficus only; "0 0 0" otherwise)
    if [ "$GW" != ficus ]; then echo "0 0 0"; return; fi
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '
        /^ficus_ratelimit_leases_total[{ ]/ { l += $NF } /^ficus_redis_commands_total[{ ]/ { c += $NF }
        /^ficus_redis_(errors|timeouts|unavailable)_total[{ ]/ { f += $NF }
        END { printf "%d %d %d\n", l, c, f }'
}
redis_cmds() { rcli INFO stats | tr -d '\r' | awk -F: '$1 == "total_commands_processed" { print $2 }'; }

# sso: a signed-in session created directly in Redis (CONTRACT-SSO key layout), sent as its cookie
SSO_ID=$($PY -c 'import secrets; print(secrets.token_urlsafe(32))')
seed_session() {
    local now
    now=$(date +%s)
    rcli SET "ficus:sso:s:{$SSO_ID}" "$($PY -c 'import json, sys; n = int(sys.argv[1]); print(json.dumps({
        "claims": {"sub": "alice", "email": "alice@example.test", "sid": "bench-sid", "iss": sys.argv[2]},
        "id_token": "bench-id-token", "access_token": "bench-access-token", "at_exp": n + 3600,
        "created": n, "touched": n, "expires": n + 8 * 3600}))' "$now" "$ISS")" EX 3600 >/dev/null
}

# --- one measured run -----------------------------------------------------------------------------------------------
declare -A RPS CPU BUSY OTHER OK4 UPR LEASE RCMD RSRV RCPU RFAIL ERR STATUS PROTO
# run ID round tool(h2|lua) path [header-or-token-file]
run() {
    local id=$1 r=$2 tool=$3 path=$4 extra=${5:-} out="$RUN/$1-$2.out" url="https://127.0.0.1:$GW_PORT$4"
    local -a cmd
    if [ "$tool" = h2 ]; then
        cmd=(h2load "${H2_OPTS[@]}")
        [ -n "$extra" ] && cmd+=(-H "$extra")
    else
        cmd=(wrk "${H1_OPTS[@]}" -s "$ROOT/loadtest/tokens.lua")
    fi
    local -a tail=()
    [ "$tool" = lua ] && tail=(-- "$extra")
    if [ "$tool" = h2 ]; then
        taskset -c 1 "${cmd[@]}" -D "$WARM" "$url" >"$RUN/warmup.out" 2>&1 || true
    else
        taskset -c 1 "${cmd[@]}" -d "${WARM}s" "$url" "${tail[@]}" >"$RUN/warmup.out" 2>&1 || true
    fi
    gateway_alive "the warm-up of $id"
    local u0 u1 t0 t1 c0 c1 m0 m1 s0 s1 k0 k1
    u0=$(up_requests); m0=$(metrics); s0=$(redis_cmds); k0=$(proc_ticks "$REDIS_PID")
    t0=$(proc_ticks "$GW_PID"); c0=$(core0_ticks)
    if [ "$tool" = h2 ]; then
        taskset -c 1 "${cmd[@]}" -D "$DUR" "$url" >"$out" 2>&1 || die "h2load $id failed: $(tail -3 "$out")"
    else
        taskset -c 1 "${cmd[@]}" -d "${DUR}s" "$url" "${tail[@]}" >"$out" 2>&1 || die "wrk $id failed: $(tail -3 "$out")"
    fi
    gateway_alive "the run of $id"
    t1=$(proc_ticks "$GW_PID"); c1=$(core0_ticks)
    k1=$(proc_ticks "$REDIS_PID"); s1=$(redis_cmds); m1=$(metrics); u1=$(up_requests)
    local n ok rps err status
    if [ "$tool" = h2 ]; then
        grep -q 'Application protocol: h2' "$out" || die "h2load $id did not negotiate h2 ($out)"
        n=$(sed -n 's/^requests: .* \([0-9]*\) done.*/\1/p' "$out")
        ok=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' "$out")
        rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$out")
        local errored timeout
        errored=$(sed -n 's/^requests: .* \([0-9]*\) errored.*/\1/p' "$out")
        timeout=$(sed -n 's/^requests: .* \([0-9]*\) timeout.*/\1/p' "$out")
        status=$(sed -n 's/^status codes: \([0-9]*\) 2xx, \([0-9]*\) 3xx, \([0-9]*\) 4xx, \([0-9]*\) 5xx.*/2xx \1, 4xx \3, 5xx \4/p' "$out")
        err=$((${errored:-0} + ${timeout:-0}))
        PROTO[$id]="h2"
    else
        n=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$out")
        rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$out")
        local non2xx sockerr
        non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$out")
        sockerr=$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$out" |
            awk '{ print $1 + $2 + $3 + $4 }')
        ok=$((n - ${non2xx:-0}))
        status="non-2xx ${non2xx:-0}"
        err=${sockerr:-0}
        PROTO[$id]="http/1.1"
    fi
    [ -n "$n" ] && [ "$n" -gt 0 ] || die "$id completed no request ($out)"
    local k=$id:$r l0 l1 rc0 rc1 f0 f1
    read -r l0 rc0 f0 <<<"$m0"
    read -r l1 rc1 f1 <<<"$m1"
    RFAIL[$k]=$((f1 - f0))
    RPS[$k]=$(printf '%.0f' "$rps")
    CPU[$k]=$(us_per_req $((t1 - t0)) "$n" %.2f)
    BUSY[$k]=$(busy_pct $((t1 - t0)))
    OTHER[$k]=$(other_on_core0 $((t1 - t0)) "$c0" "$c1")
    OK4[$k]=$(awk -v o="$ok" -v n="$n" 'BEGIN { printf "%.1f", 100 * o / n }')
    UPR[$k]=$(awk -v u=$((u1 - u0 - 1)) -v n="$n" 'BEGIN { printf "%.3f", u / n }')
    LEASE[$k]=$(awk -v d=$((l1 - l0)) -v n="$n" 'BEGIN { printf "%.5f", d / n }')
    RCMD[$k]=$(awk -v d=$((rc1 - rc0)) -v n="$n" 'BEGIN { printf "%.5f", d / n }')
    RSRV[$k]=$(awk -v d=$((s1 - s0 - 1)) -v n="$n" 'BEGIN { printf "%.5f", (d < 0 ? 0 : d) / n }')
    RCPU[$k]=$(us_per_req $((k1 - k0)) "$n" %.3f)
    ERR[$k]=$err
    STATUS[$k]=$status
    log "  $id: $(printf '%.0f' "$rps") req/s, ${CPU[$k]} µs/req, busy ${BUSY[$k]}%, other ${OTHER[$k]}%, $status, err $err, redis cmds/req ${RCMD[$k]}, redis failures ${RFAIL[$k]}"
}

# The scenarios: ID tool path [header or token file], per gateway.
TOKW=$(cat "$TOK/warm-rs.txt")
FICUS_RUNS=()
BARE_RUNS=()
HAP_RUNS=()
if want jwt || want rl || want sso; then BARE_RUNS+=("f-bare h2 /"); FICUS_RUNS+=("f-plain h2 /plain"); fi
want jwt && FICUS_RUNS+=("f-plain-auth h2 /plain|authorization: Bearer $TOKW" "f-jwt h2 /jwt|authorization: Bearer $TOKW")
want rl && FICUS_RUNS+=("f-rl-hot h2 /rl-hot" "f-rl-nohdr h2 /rl-nohdr" "f-rl-deny h2 /rl-deny")
want sso && FICUS_RUNS+=("f-sso h2 /sso|cookie: __Host-ficus=$SSO_ID")
want miss && FICUS_RUNS+=("f-plain-h1 lua /plain|$TOK/warm-rs.txt" "f-jwt-h1 lua /jwt|$TOK/warm-rs.txt"
    "f-miss-rs lua /jwt|$TOK/miss-rs.txt" "f-miss-es lua /jwt|$TOK/miss-es.txt" "f-miss-ed lua /jwt|$TOK/miss-ed.txt")
if want bad; then
    for t in malformed bad-rs bad-es bad-ed; do FICUS_RUNS+=("f-$t h2 /jwt|authorization: Bearer $(cat "$TOK/$t.txt")"); done
fi
if want haproxy; then
    HAP_RUNS+=("h-plain h2 /plain")
    want jwt && HAP_RUNS+=("h-plain-auth h2 /plain|authorization: Bearer $TOKW" "h-jwt h2 /jwt|authorization: Bearer $TOKW")
    want rl && HAP_RUNS+=("h-rl-hot h2 /rl-hot" "h-rl-deny h2 /rl-deny")
fi

run_list() { # round entries...
    local r=$1 e spec id tool path extra
    shift
    for e in "$@"; do
        spec=${e%%|*}
        extra=
        [[ "$e" == *"|"* ]] && extra=${e#*|}
        read -r id tool path <<<"$spec"
        [ "$id" = f-sso ] && seed_session
        run "$id" "$r" "$tool" "$path" "$extra"
    done
}

note_load_before
IDS=()
for r in $(seq 1 "$ROUNDS"); do
    for group in bare ficus haproxy; do
        case $group in
            bare) [ ${#BARE_RUNS[@]} -gt 0 ] || continue; gw=ficus-bare; list=("${BARE_RUNS[@]}") ;;
            ficus) [ ${#FICUS_RUNS[@]} -gt 0 ] || continue; gw=ficus; list=("${FICUS_RUNS[@]}") ;;
            haproxy) [ ${#HAP_RUNS[@]} -gt 0 ] || continue; gw=haproxy; list=("${HAP_RUNS[@]}") ;;
        esac
        log "round $r/$ROUNDS: $gw (core 0)"
        start_gateway "$gw"
        run_list "$r" "${list[@]}"
        stop_gateway
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
for e in "${BARE_RUNS[@]}" "${FICUS_RUNS[@]}" "${HAP_RUNS[@]}"; do IDS+=("${e%% *}"); done

# Optional profiles (unmeasured extra runs).
if [ -n "$PERF_IDS" ]; then
    for pid_id in $PERF_IDS; do
        e=
        for x in "${FICUS_RUNS[@]}"; do [ "${x%% *}" = "$pid_id" ] && e=$x; done
        [ -n "$e" ] || { log "--perf $pid_id: not a ficus scenario of this run"; continue; }
        start_gateway ficus
        spec=${e%%|*}; extra=; [[ "$e" == *"|"* ]] && extra=${e#*|}
        read -r id tool path <<<"$spec"
        [ "$id" = f-sso ] && seed_session
        perf record -q -g -p "$GW_PID" -o "$RUN/perf-$id.data" -- sleep $((DUR + WARM)) 2>/dev/null &
        PERF_PID=$!
        run "$id" perf "$tool" "$path" "$extra"
        wait "$PERF_PID" || true
        { perf report -i "$RUN/perf-$id.data" --no-children --sort symbol --stdio -g none 2>/dev/null || true; } | grep -v "^$" | grep -v "^#" | head -60 >"$RUN/perf-$id.txt" || true
        log "perf profile of $id: $RUN/perf-$id.txt"
        stop_gateway
    done
fi

# --- report ---------------------------------------------------------------------------------------------------------
med() { # array key: median over rounds
    local -n arr=$1
    local r
    for r in $(seq 1 "$ROUNDS"); do echo "${arr[$2:$r]:-}"; done | grep . | sort -g | awk '{ a[NR] = $1 }
        END { if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
have() { [ -n "${RPS[$1:1]:-}" ]; }
sumr() { local -n arr=$1; local r s=0; for r in $(seq 1 "$ROUNDS"); do s=$((s + ${arr[$2:$r]:-0})); done; echo $s; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%+.1f %%", 100 * (a / b - 1) }'; }
rat() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
ranges() { # array id: "min–max" over rounds
    local -n arr=$1
    local r
    for r in $(seq 1 "$ROUNDS"); do echo "${arr[$2:$r]:-}"; done | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s", lo, hi }'
}
# per-round ratio of two ids (feature vs base) of CPU: median and range of the in-round ratios
round_ratio() { # id base
    local r
    for r in $(seq 1 "$ROUNDS"); do
        [ -n "${CPU[$1:$r]:-}" ] && [ -n "${CPU[$2:$r]:-}" ] && awk -v a="${CPU[$1:$r]}" -v b="${CPU[$2:$r]}" 'BEGIN { printf "%.1f\n", 100 * (a / b - 1) }'
    done | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "n/a"; exit }
        m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%+.1f %% (rounds: %s … %s %%)", m, a[1], a[NR] }'
}

declare -A NAME=(
    [f-bare]="ficus: plain route, bench.sh's one-route config"
    [f-plain]="ficus: /plain (plain route, all features configured)"
    [f-plain-auth]="ficus: /plain + the same Authorization header (token not checked)"
    [f-jwt]="ficus: /jwt RS256, warm token cache (same token)"
    [f-rl-hot]="ficus: /rl-hot, key ip, limit 1M/s (never denies)"
    [f-rl-nohdr]="ficus: /rl-nohdr, the same with headers: false (no RateLimit-* response headers)"
    [f-rl-deny]="ficus: /rl-deny, key ip, limit 1000/s (denied-heavy)"
    [f-sso]="ficus: /sso, signed-in session (redis store, cache_ttl 5s)"
    [f-plain-h1]="ficus: /plain (wrk + tokens.lua, warm token)"
    [f-jwt-h1]="ficus: /jwt RS256, warm cache (same token)"
    [f-miss-rs]="ficus: /jwt RS256, every request a new token"
    [f-miss-es]="ficus: /jwt ES256, every request a new token"
    [f-miss-ed]="ficus: /jwt EdDSA, every request a new token"
    [f-malformed]="ficus: /jwt malformed token (2 segments)"
    [f-bad-rs]="ficus: /jwt RS256 forged payload (real kid)"
    [f-bad-es]="ficus: /jwt ES256 forged payload (real kid)"
    [f-bad-ed]="ficus: /jwt EdDSA forged payload (real kid)"
    [h-plain]="haproxy: /plain"
    [h-plain-auth]="haproxy: /plain + the same Authorization header"
    [h-jwt]="haproxy: /jwt jwt_verify RS256 + stick table (never denies)"
    [h-rl-hot]="haproxy: /rl-hot stick table, src, gt 10M/s"
    [h-rl-deny]="haproxy: /rl-deny stick table, src, gt 1000/s"
)

row() { # id extra-columns-function
    local id=$1
    have "$id" || return 0
    printf '| %s | %s | %s | %s | %s%% | %s%% | %s | %s | %s |' "${NAME[$id]}" "$(med RPS "$id")" "$(med CPU "$id")" \
        "$(ranges CPU "$id")" "$(med BUSY "$id")" "$(med OTHER "$id")" "$(med OK4 "$id")" "$(med UPR "$id")" "$(sumr ERR "$id")"
}
HDR='| scenario | req/s | gateway CPU µs/req | CPU µs/req, rounds | gateway core busy | other work on core 0 | 2xx % | upstream req per req | errors |'
SEP='| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'

report() {
    echo "### Run $(date -u +%Y-%m-%dT%H:%MZ)$( [ "$DUR" -lt 10 ] && echo " (quick: ${DUR}s runs, not for publishing)")"
    echo
    echo "- machine: $(nproc) cores ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), Linux $(uname -r), CLK_TCK $TCK"
    echo "- $("$FICUS" --version 2>&1 | head -1) ($FICUS built $(date -u -r "$FICUS" +%Y-%m-%dT%H:%MZ); tree HEAD now $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')),"
    echo "  $(haproxy -v | head -1 | cut -d' ' -f1-3), $(redis-server --version | cut -d' ' -f1-3), upstream $(nginx -v 2>&1 | sed 's/.*: //')"
    echo "- load: h2load ${H2_OPTS[*]} (TLS h2) or wrk ${H1_OPTS[*]} + tokens.lua (TLS http/1.1), ${DUR}s per run after a"
    echo "  ${WARM}s warm-up; $ROUNDS round(s); each figure is the median over rounds (errors: the sum); gateway (1 worker)"
    echo "  on core 0; load generator, upstream nginx and redis-server on core 1"
    echo "- load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER"
    echo
    if have f-jwt || have h-jwt; then
        echo "#### JWT (issue 3): warm token cache vs plain route, and haproxy jwt_verify (h2)"
        echo
        echo "$HDR"; echo "$SEP"
        for id in f-bare f-plain f-plain-auth f-jwt h-plain h-plain-auth h-jwt; do row "$id" && { have "$id" && echo; }; done
        echo
        have f-jwt && echo "- ficus JWT CPU overhead over /plain (target ≤ +10 %): $(round_ratio f-jwt f-plain); over the bare config: $(pct "$(med CPU f-jwt)" "$(med CPU f-bare)")"
        have f-jwt && echo "  - of which carrying the token (/plain with the same header over /plain): $(round_ratio f-plain-auth f-plain); the jwt plugin (/jwt over /plain with the header): $(round_ratio f-jwt f-plain-auth)"
        have h-jwt && echo "- haproxy JWT CPU over its /plain: $(round_ratio h-jwt h-plain); over its /plain with the same header: $(round_ratio h-jwt h-plain-auth)"
        if have f-jwt && have h-jwt; then
            echo "- ficus JWT ÷ haproxy JWT (target ≥ 2×): req/s $(rat "$(med RPS f-jwt)" "$(med RPS h-jwt)")×; per-core capacity (haproxy CPU/req ÷ ficus CPU/req) $(rat "$(med CPU h-jwt)" "$(med CPU f-jwt)")×"
        fi
        echo
    fi
    if have f-miss-rs; then
        echo "#### JWT cache misses (http/1.1, wrk + tokens.lua cycling 30000 distinct valid tokens per algorithm; 4096 cached per worker)"
        echo
        echo "$HDR miss cost µs (vs warm) | verifications/s per core |"
        echo "${SEP} ---: | ---: |"
        local w
        w=$(med CPU f-jwt-h1)
        for id in f-plain-h1 f-jwt-h1 f-miss-rs f-miss-es f-miss-ed; do
            have "$id" || continue
            row "$id"
            case $id in
                f-miss-*) awk -v a="$(med CPU "$id")" -v b="$w" 'BEGIN { d = a - b; printf " %.1f | %s |\n", d, (d > 0 ? sprintf("%.0f", 1e6 / d) : "n/a") }' ;;
                *) echo " | |" ;;
            esac
        done
        echo
        echo "- verifications/s per core: 1e6 ÷ (CPU/req of the miss run − CPU/req of the warm run on the same route and"
        echo "  load generator): the added cost of one verification; a whole request with a new token costs the first column."
        echo
    fi
    if have f-bad-rs; then
        echo "#### Bad-token flood (h2, every request the same invalid token: 401, never cached)"
        echo
        echo "$HDR signature cost µs (vs malformed) | bad requests/s per core |"
        echo "${SEP} ---: | ---: |"
        local m
        m=$(med CPU f-malformed)
        for id in f-malformed f-bad-rs f-bad-es f-bad-ed; do
            have "$id" || continue
            row "$id"
            awk -v a="$(med CPU "$id")" -v b="$m" -v first="$([ $id = f-malformed ] && echo 1 || echo 0)" \
                'BEGIN { printf " %s | %.0f |\n", (first ? "" : sprintf("%.1f", a - b)), 1e6 / a }'
        done
        echo
        echo "- bad requests/s per core: 1e6 ÷ CPU/req, i.e. how many such requests (TLS h2, 401 answer) one ficus core"
        echo "  rejects per second; signature cost: the CPU/req above the malformed token's (rejected before any signature work)."
        echo
    fi
    if have f-rl-hot || have h-rl-hot; then
        echo "#### Rate limiting (issue 4): hot key never denied, and denied-heavy (h2; Redis on loopback)"
        echo
        echo "| scenario | req/s | gateway CPU µs/req | CPU µs/req, rounds | gateway core busy | other work on core 0 | 2xx % | upstream req per req | errors | leases/req | ficus Redis cmds/req | Redis server cmds/req | Redis CPU µs/req | Redis failures |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for id in f-plain f-rl-hot f-rl-nohdr f-rl-deny h-plain h-rl-hot h-rl-deny; do
            have "$id" || continue
            row "$id"
            printf ' %s | %s | %s | %s | %s |\n' "$(med LEASE "$id")" "$(med RCMD "$id")" "$(med RSRV "$id")" "$(med RCPU "$id")" "$(sumr RFAIL "$id")"
        done
        echo
        have f-rl-hot && echo "- ficus rate-limit CPU overhead, hot key (target ≤ +10 %): $(round_ratio f-rl-hot f-plain); without the RateLimit-* response headers: $(round_ratio f-rl-nohdr f-plain); denied-heavy: $(round_ratio f-rl-deny f-plain) (cheaper: a 429 goes to no upstream)"
        have h-rl-hot && echo "- haproxy stick table CPU over its /plain: hot $(round_ratio h-rl-hot h-plain); denied-heavy $(round_ratio h-rl-deny h-plain)"
        echo "- leases/req: ficus_ratelimit_leases_total delta ÷ requests (Redis round trips for leases); ficus Redis cmds/req:"
        echo "  ficus_redis_commands_total delta ÷ requests; Redis server cmds/req: INFO total_commands_processed delta ÷ requests"
        echo "  (includes the benchmark's own INFO); Redis CPU: redis-server utime+stime ÷ requests (10 ms ticks: the /plain"
        echo "  row is its idle cost)."
        echo
    fi
    if have f-sso; then
        echo "#### SSO (issue 5): signed-in session vs plain route (h2; session in Redis, per-worker cache_ttl 5s)"
        echo
        echo "| scenario | req/s | gateway CPU µs/req | CPU µs/req, rounds | gateway core busy | other work on core 0 | 2xx % | upstream req per req | errors | ficus Redis cmds/req | Redis server cmds/req | Redis CPU µs/req | Redis failures |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for id in f-plain f-sso; do
            row "$id"
            printf ' %s | %s | %s | %s |\n' "$(med RCMD "$id")" "$(med RSRV "$id")" "$(med RCPU "$id")" "$(sumr RFAIL "$id")"
        done
        echo
        echo "- ficus SSO CPU overhead (target ≤ +10 %): $(round_ratio f-sso f-plain)"
        echo
    fi
    echo "Columns: see loadtest/README-features.md. \"rounds\": lowest–highest CPU µs/req over the rounds; overhead %:"
    echo "median of the per-round ratios (feature run ÷ the plain run of the same round and gateway process)."
}

if [ -n "$OUT" ]; then report | tee "$OUT"; else report; fi
