#!/usr/bin/env bash
# ficus vs nginx vs haproxy: same upstream, same load, one gateway worker pinned to core 0.
#
#   loadtest/bench.sh [--quick] [--gateways floor,nginx,haproxy,ficus] [--duration S] [--rounds N] [--syscalls N]
#                     [--handshakes S] [--out FILE]
#
# Upstream: nginx answering 200 "hello\n" itself on 127.0.0.1 (1 worker, taskset core 1).
# Gateways (one at a time, each 1 worker/thread under `taskset -c 0`, TLS h2 + http/1.1 via ALPN, upstream
# HTTP/1.1 keepalive): nginx (nginx.conf.tmpl), haproxy (haproxy.cfg.tmpl), ficus ($BUILD_DIR/ficus, workers: 1,
# access_log: off, one proxy route); and "floor": the same nginx answering 200 "hello\n" by itself over TLS (no
# upstream): what TLS + HTTP cost on this machine with nothing proxied, the bound a proxy cannot beat.
# Load (taskset core 1, shared with the upstream): h2load over TLS h2 (-c 32 -m 16) and wrk over TLS http/1.1
# (-t 1 -c 64), each for --duration seconds (10; --quick: 2) after a short unmeasured warm-up; --rounds times
# (3; --quick: 1), the gateways taking turns in each round, and the median of the rounds is reported.
# Reports per gateway x protocol: req/s, p50/p99 latency, gateway CPU microseconds per request
# ((utime+stime) delta of the gateway's processes from /proc/PID/stat / requests), ratios to nginx, and how many
# requests reached the upstream per client request (nginx stub_status), which proves every request was proxied.
# --syscalls N: then, per gateway, N requests per protocol (h2load -c 8, h2 with -m 4, http/1.1 with --h1) under
# `strace -f -yy`: system calls per request, split into the client side (sockets on the gateway's port), the upstream
# side (sockets to the upstream's port) and the rest (epoll, timers, threads). Counted, not timed: the figures hold on
# a busy machine. --rounds 0 with --syscalls runs only that.
# --handshakes S: then TLS 1.3 handshakes, per certificate (ECDSA P-256: certs-dev/localhost.crt; RSA-2048: made in
# the run directory) and gateway: two `openssl s_time -www /` clients (core 1) for S seconds with -new (a full
# handshake per connection) and with -reuse (resumed from a session ticket); gateway CPU µs per connection
# (handshake + one proxied GET + close) and what one core would do at that cost (1e6 / µs). --rounds 0 runs only
# the handshakes (and --syscalls, if given).
# See loadtest/README.md for what the numbers mean and what they do not.
set -euo pipefail

BENCH_NAME=bench # prefix of log lines
. "$(dirname "$0")/lib.sh" # ROOT (the current directory), BUILD_DIR, PY, H2_OPTS, H1_OPTS, TCK, log, die, ...
GATEWAYS="floor nginx haproxy ficus"
SYSCALLS=0
HANDSHAKES=0
DUR=10
WARM=2
ROUNDS=3
OUT=
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) DUR=2; WARM=1; ROUNDS=1 ;;
        --rounds) ROUNDS=$2; shift ;;
        --gateways) GATEWAYS=${2//,/ }; shift ;;
        --duration) DUR=$2; shift ;;
        --syscalls) SYSCALLS=$2; shift ;;
        --handshakes) HANDSHAKES=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h | --help) sed -n '2,32p' "$0"; exit 0 ;;
        *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

RUN="$ROOT/.work/bench"
set_traps

scripts/deps.sh bench >&2
prepare_certs_and_run_dir

# ficus: use $BUILD_DIR/ficus, building it (Release) if it is not there; leave it out if that fails.
FICUS="$BUILD_DIR/ficus"
NOTES=()
if [[ " $GATEWAYS " == *" ficus "* ]] && [ ! -x "$FICUS" ]; then
    log "building ficus (Release) in $BUILD_DIR"
    if ! { cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release && cmake --build "$BUILD_DIR" -j"$(nproc)"; } \
        >"$RUN/ficus-build.log" 2>&1 || [ ! -x "$FICUS" ]; then
        log "ficus did not build (see $RUN/ficus-build.log); benchmarking without it"
        NOTES+=("ficus: not measured (did not build: see .work/bench/ficus-build.log)")
        GATEWAYS=${GATEWAYS//ficus/}
    fi
fi

# --- the upstream --------------------------------------------------------------------------------------------------
start_upstream
log "upstream: nginx on 127.0.0.1:$UP_PORT (core 1)"

fill() { # template out: replace @...@ placeholders
    sed -e "s|@RUN@|$RUN|g" -e "s|@UP_PORT@|$UP_PORT|g" -e "s|@GW_PORT@|$GW_PORT|g" -e "s|@CERT@|$CERT|g" \
        -e "s|@KEY@|$KEY|g" -e "s|@PEM@|$RUN/haproxy.pem|g" "$1" >"$2"
}

start_gateway() { # name; sets GW_PID GW_PORT
    GW_PORT=$(free_port)
    case "$1" in
        nginx | floor)
            mkdir -p "$RUN/nginx-gw-tmp"
            fill loadtest/nginx.conf.tmpl "$RUN/nginx-gw.conf"
            if [ "$1" = floor ]; then # the same server answering by itself
                sed -i -e 's|proxy_pass http://backend;|default_type text/plain; return 200 "hello\\n";|' \
                    -e '/proxy_http_version\|proxy_set_header/d' "$RUN/nginx-gw.conf"
            fi
            nginx -t -q -p "$RUN" -e "$RUN/nginx-gw.error.log" -c "$RUN/nginx-gw.conf" || die "nginx -t failed"
            taskset -c 0 nginx -p "$RUN" -e "$RUN/nginx-gw.error.log" -c "$RUN/nginx-gw.conf" &
            ;;
        haproxy)
            cat "$CERT" "$KEY" >"$RUN/haproxy.pem"
            fill loadtest/haproxy.cfg.tmpl "$RUN/haproxy.cfg"
            haproxy -c -q -f "$RUN/haproxy.cfg" || die "haproxy -c failed"
            taskset -c 0 haproxy -db -f "$RUN/haproxy.cfg" 2>"$RUN/haproxy.log" &
            ;;
        ficus)
            cat >"$RUN/ficus.yaml" <<CONF
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$GW_PORT"
      tls:
        certificates: [{ cert: "$CERT", key: "$KEY" }]
        min_version: TLSv1.2
  access_log: "off"
  log_level: warn
upstreams:
  upstream:
    endpoints: ["http://127.0.0.1:$UP_PORT"]
routes:
  - name: all
    match: { path_prefix: / }
    to: upstream
CONF
            "$FICUS" -t -c "$RUN/ficus.yaml" >/dev/null || die "ficus -t rejected $RUN/ficus.yaml"
            taskset -c 0 "$FICUS" -c "$RUN/ficus.yaml" >"$RUN/ficus.out" 2>"$RUN/ficus.err" &
            ;;
        *) die "unknown gateway $1" ;;
    esac
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_hello "https://localhost:$GW_PORT/" "$GW_PID" "$1"
}

gateway_alive() { # name phase: fail loudly if the gateway died under load
    if ! kill -0 "$GW_PID" 2>/dev/null; then
        local rc=0
        wait "$GW_PID" || rc=$?
        die "$1 exited during the $2 (status $rc$([ $rc -gt 128 ] && echo ", signal $((rc - 128))")); logs in $RUN"
    fi
}

cpu_ticks() { proc_ticks "$GW_PID"; } # the gateway process and its children (nginx's worker)

to_ms() { # wrk latency "812.00us" / "1.23ms" / "1.02s" -> ms
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000;
                           printf "%.2f", n }'
}

# Results per "gateway:protocol:round"; the report takes the median over rounds.
declare -A RPS P50 P99 CPU BUSY ERR UPR OTHER
run_h2() { # gateway round
    local gw=$1 r=$2 out="$RUN/h2-$1-$2.out" reqlog="$RUN/h2-$1-$2.reqlog" t0 t1 u0 u1 c0 c1
    if [ "$WARM" -gt 0 ]; then
        taskset -c 1 h2load "${H2_OPTS[@]}" -D "$WARM" "https://127.0.0.1:$GW_PORT/" >"$RUN/warmup.out" 2>&1 || true
    fi
    gateway_alive "$gw" "h2 warm-up"
    u0=$(up_requests)
    t0=$(cpu_ticks)
    c0=$(core0_ticks)
    taskset -c 1 h2load "${H2_OPTS[@]}" -D "$DUR" --log-file="$reqlog" "https://127.0.0.1:$GW_PORT/" >"$out" 2>&1 ||
        die "h2load against $gw failed: $(tail -3 "$out")"
    gateway_alive "$gw" "h2 run"
    t1=$(cpu_ticks)
    c1=$(core0_ticks)
    u1=$(up_requests)
    grep -q 'Application protocol: h2' "$out" || die "h2load against $gw did not negotiate h2 ($out)"
    local done ok rps
    done=$(sed -n 's/^requests: .* \([0-9]*\) done.*/\1/p' "$out")
    ok=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' "$out")
    rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$out")
    [ -n "$done" ] && [ "$done" -gt 0 ] || die "h2load against $gw completed no request ($out)"
    local k=$gw:h2:$r
    RPS[$k]=$(printf '%.0f' "$rps")
    ERR[$k]=$((done - ok))
    UPR[$k]=$(awk -v u=$((u1 - u0 - 1)) -v n="$done" 'BEGIN { printf "%.2f", u / n }')
    # h2load prints only min/max/mean/sd; percentiles come from its per-request log (3rd column, microseconds).
    read -r P50["$k"] P99["$k"] < <(cut -f3 "$reqlog" | sort -n | awk '{ a[NR] = $1 }
        END { i50 = int(NR * 0.50 + 0.999); i99 = int(NR * 0.99 + 0.999); printf "%.2f %.2f\n", a[i50] / 1000, a[i99] / 1000 }')
    rm -f "$reqlog"
    CPU[$k]=$(us_per_req $((t1 - t0)) "$done" %.1f)
    BUSY[$k]=$(busy_pct $((t1 - t0)))
    OTHER[$k]=$(other_on_core0 $((t1 - t0)) "$c0" "$c1")
}

run_h1() { # gateway round
    local gw=$1 r=$2 out="$RUN/h1-$1-$2.out" t0 t1 u0 u1 c0 c1
    if [ "$WARM" -gt 0 ]; then
        taskset -c 1 wrk "${H1_OPTS[@]}" -d "${WARM}s" "https://127.0.0.1:$GW_PORT/" >"$RUN/warmup.out" 2>&1 || true
    fi
    gateway_alive "$gw" "http/1.1 warm-up"
    u0=$(up_requests)
    t0=$(cpu_ticks)
    c0=$(core0_ticks)
    taskset -c 1 wrk "${H1_OPTS[@]}" -d "${DUR}s" --latency "https://127.0.0.1:$GW_PORT/" >"$out" 2>&1 ||
        die "wrk against $gw failed: $(tail -3 "$out")"
    gateway_alive "$gw" "http/1.1 run"
    t1=$(cpu_ticks)
    c1=$(core0_ticks)
    u1=$(up_requests)
    local n rps non2xx sockerr
    n=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$out")
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$out")
    non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$out")
    sockerr=$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$out")
    [ -n "$n" ] && [ "$n" -gt 0 ] || die "wrk against $gw completed no request ($out)"
    local k=$gw:h1:$r
    RPS[$k]=$(printf '%.0f' "$rps")
    UPR[$k]=$(awk -v u=$((u1 - u0 - 1)) -v n="$n" 'BEGIN { printf "%.2f", u / n }')
    ERR[$k]=$(( ${non2xx:-0} + $(echo "${sockerr:-0}" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; print s }') ))
    P50[$k]=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    P99[$k]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    CPU[$k]=$(us_per_req $((t1 - t0)) "$n" %.1f)
    BUSY[$k]=$(busy_pct $((t1 - t0)))
    OTHER[$k]=$(other_on_core0 $((t1 - t0)) "$c0" "$c1")
}

MEASURED=($GATEWAYS)
note_load_before
for r in $(seq 1 "$ROUNDS"); do
    for gw in "${MEASURED[@]}"; do
        log "round $r/$ROUNDS: $gw: starting (core 0)"
        start_gateway "$gw"
        log "round $r/$ROUNDS: $gw: h2 load (h2load ${H2_OPTS[*]}, ${DUR}s)"
        run_h2 "$gw" "$r"
        log "round $r/$ROUNDS: $gw: http/1.1 load (wrk ${H1_OPTS[*]}, ${DUR}s)"
        run_h1 "$gw" "$r"
        stop_gateway
    done
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- system calls per request (--syscalls N) ------------------------------------------------------------------------
declare -A SYS # "gateway:proto:side" -> calls per request; "gateway:proto:top" -> the most frequent calls
syscall_profile() { # gateway proto(h2|h1)
    local gw=$1 proto=$2 trace="$RUN/strace-$1-$2.txt" out="$RUN/strace-$1-$2.h2load" st pids p
    pids=("$GW_PID")
    for p in $(pgrep -P "$GW_PID" || true); do pids+=("$p"); done # nginx's worker
    local -a attach=()
    for p in "${pids[@]}"; do attach+=(-p "$p"); done
    strace -f -qq -yy -o "$trace" "${attach[@]}" &
    st=$!
    sleep 1 # attached
    local -a load=(h2load -c 8 -n "$SYSCALLS")
    if [ "$proto" = h2 ]; then load+=(-m 4); else load+=(--h1); fi
    taskset -c 1 "${load[@]}" "https://127.0.0.1:$GW_PORT/" >"$out" 2>&1 || die "h2load ($proto) against $gw under strace failed"
    sleep 0.5
    kill -INT "$st"
    wait "$st" || true
    local ok
    ok=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' "$out")
    [ "${ok:-0}" = "$SYSCALLS" ] || die "$gw ($proto) under strace: ${ok:-0} of $SYSCALLS requests got a 2xx ($out)"
    # "PID name(fd<TCP:[a:p->b:q]>, ..." : the side is the first fd's socket; lines of calls that did not finish
    # ("<unfinished ...>") count once, their "resumed" halves not at all
    read -r SYS[$gw:$proto:client] SYS[$gw:$proto:upstream] SYS[$gw:$proto:other] SYS[$gw:$proto:total] < <(
        awk -v gw=":$GW_PORT" -v up=":$UP_PORT]" -v n="$SYSCALLS" '
            / resumed>/ || !/^[0-9]+ +[a-z_0-9]+\(/ { next }
            { sub(/^[0-9]+ +/, ""); name = $0; sub(/\(.*/, "", name)
              first = $0; sub(/^[^(]*\(/, "", first); sub(/,.*/, "", first)
              side = index(first, up) ? "upstream" : (first ~ /TCP/ && index(first, gw)) ? "client" : "other"
              c[side]++; per[side ":" name]++; t++ }
            END { printf "%.2f %.2f %.2f %.2f\n", c["client"] / n, c["upstream"] / n, c["other"] / n, t / n }' "$trace")
    SYS[$gw:$proto:top]=$(awk -v gw=":$GW_PORT" -v up=":$UP_PORT]" -v n="$SYSCALLS" '
            / resumed>/ || !/^[0-9]+ +[a-z_0-9]+\(/ { next }
            { sub(/^[0-9]+ +/, ""); name = $0; sub(/\(.*/, "", name)
              first = $0; sub(/^[^(]*\(/, "", first); sub(/,.*/, "", first)
              side = index(first, up) ? "up" : (first ~ /TCP/ && index(first, gw)) ? "cl" : "other"
              per[side " " name]++ }
            END { for (k in per) if (per[k] / n >= 0.05) printf "%.2f %s\n", per[k] / n, k }' "$trace" |
        sort -gr | awk '{ printf "%s%s %s %s", (NR > 1 ? ", " : ""), $2, $3, $1 }')
}
# --- TLS handshakes (--handshakes S) ------------------------------------------------------------------------------
declare -A HS # "gateway:cert:mode" -> "µs-per-connection connections reused"
handshake_run() { # gateway cert mode(new|reuse)
    local gw=$1 cert=$2 mode=$3 t0 t1 i n=0 reused=0
    local -a clients=()
    t0=$(cpu_ticks)
    for i in 1 2; do
        taskset -c 1 openssl s_time -connect "127.0.0.1:$GW_PORT" -www / -tls1_3 "-$mode" -time "$HANDSHAKES" \
            >"$RUN/s_time-$gw-$cert-$mode-$i.out" 2>&1 &
        clients+=($!)
    done
    for i in "${clients[@]}"; do wait "$i" || true; done
    t1=$(cpu_ticks)
    gateway_alive "$gw" "handshakes ($cert, $mode)"
    for i in 1 2; do
        local f="$RUN/s_time-$gw-$cert-$mode-$i.out" c
        c=$(sed -n 's/^\([0-9]*\) connections in [0-9.]*s;.*/\1/p' "$f" | tail -1)
        [ -n "$c" ] && [ "$c" -gt 0 ] || die "openssl s_time ($gw, $cert, $mode) made no connection: $(tail -3 "$f")"
        n=$((n + c))
        # s_time prints a character per connection: 'r' when the session was resumed
        reused=$((reused + $(sed -n '/^[.r*]*$/p' "$f" | tr -cd r | wc -c)))
    done
    HS[$gw:$cert:$mode]="$(us_per_req $((t1 - t0)) "$n" %.1f) $n $reused"
}
if [ "$HANDSHAKES" -gt 0 ]; then
    RSA_KEY="$RUN/rsa.key" RSA_CERT="$RUN/rsa.crt"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$RSA_KEY" 2>/dev/null
    openssl req -new -key "$RSA_KEY" -subj "/O=ficus bench/CN=localhost" -out "$RUN/rsa.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$RUN/rsa.ext"
    openssl x509 -req -in "$RUN/rsa.csr" -CA "$CA" -CAkey "${CA%.crt}.key" -CAcreateserial -CAserial "$RUN/rsa.srl" \
        -sha256 -days 2 -extfile "$RUN/rsa.ext" -out "$RSA_CERT" 2>/dev/null
    EC_CERT=$CERT EC_KEY=$KEY
    for cert in ecdsa rsa; do
        if [ $cert = rsa ]; then CERT=$RSA_CERT KEY=$RSA_KEY; else CERT=$EC_CERT KEY=$EC_KEY; fi
        for gw in "${MEASURED[@]}"; do
            log "handshakes: $gw, $cert certificate, ${HANDSHAKES}s of full and of resumed TLS 1.3 handshakes"
            start_gateway "$gw"
            handshake_run "$gw" $cert new
            handshake_run "$gw" $cert reuse
            stop_gateway
        done
    done
    CERT=$EC_CERT KEY=$EC_KEY
fi

if [ "$SYSCALLS" -gt 0 ]; then
    command -v strace >/dev/null || die "--syscalls needs strace (apt-get install strace)"
    for gw in "${MEASURED[@]}"; do
        log "system calls: $gw, $SYSCALLS requests per protocol under strace"
        start_gateway "$gw"
        syscall_profile "$gw" h2
        syscall_profile "$gw" h1
        stop_gateway
    done
fi

# Median over rounds of each figure, stored under "gateway:protocol".
median_of() { # array-name key
    local -n arr=$1
    local r
    for r in $(seq 1 "$ROUNDS"); do echo "${arr[$2:$r]}"; done | sort -g | awk '{ a[NR] = $1 }
        END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
[ "$ROUNDS" -gt 0 ] && for gw in "${MEASURED[@]}"; do
    for proto in h2 h1; do
        for m in RPS:%.0f P50:%.2f P99:%.2f CPU:%.1f BUSY:%.0f UPR:%.2f OTHER:%.0f; do
            declare -n ref=${m%%:*}
            ref[$gw:$proto]=$(printf "${m#*:}" "$(median_of "${m%%:*}" "$gw:$proto")")
            unset -n ref
        done
        ERR[$gw:$proto]=$(for r in $(seq 1 "$ROUNDS"); do echo "${ERR[$gw:$proto:$r]}"; done | awk '{ s += $1 } END { print s }')
    done
done

ratio() { # value base
    if [ -z "$2" ] || [ -z "$1" ]; then echo "n/a"; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; fi
}

report() {
    local ficus_ver="not measured"
    [[ " ${MEASURED[*]} " == *" ficus "* ]] && ficus_ver=$("$FICUS" --version 2>&1 | head -1)
    echo "### Run $(date -u +%Y-%m-%dT%H:%MZ)$( [ "$DUR" -lt 10 ] && echo " (quick: ${DUR}s runs, not for publishing)")"
    echo
    echo "- machine: $(nproc) cores ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), Linux $(uname -r), CLK_TCK $TCK"
    echo "- gateways: $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3), $ficus_ver"
    echo "- load: h2load ${H2_OPTS[*]} (TLS, h2) and wrk ${H1_OPTS[*]} (TLS, http/1.1), ${DUR}s each after a ${WARM}s warm-up;"
    echo "  $ROUNDS round(s), gateways taking turns; each figure is the median over rounds (errors: the sum);"
    echo "  gateway on core 0, load generator and upstream (nginx, return 200) share core 1"
    echo "- load average (1/5/15 min) before the run: $LOAD_BEFORE, after: $LOAD_AFTER (the run itself adds about 2;"
    echo "  a high figure before it means other work shared the cores)"
    echo
    local proto gw k
    if [ "$ROUNDS" -gt 0 ]; then
        echo "| gateway | protocol | req/s | p50 ms | p99 ms | gateway CPU µs/req | CPU/req vs nginx | CPU/req vs floor | req/s vs nginx | gateway core busy | other work on core 0 | upstream req per req | errors |"
        echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for proto in h2 h1; do
            for gw in "${MEASURED[@]}"; do
                k=$gw:$proto
                printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s%% | %s%% | %s | %s |\n' "$gw" \
                    "$([ $proto = h2 ] && echo "h2 (h2load)" || echo "http/1.1 (wrk)")" \
                    "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "${CPU[$k]}" \
                    "$(ratio "${CPU[$k]}" "${CPU[nginx:$proto]:-}")" "$(ratio "${CPU[$k]}" "${CPU[floor:$proto]:-}")" \
                    "$(ratio "${RPS[$k]}" "${RPS[nginx:$proto]:-}")" "${BUSY[$k]}" "${OTHER[$k]}" "${UPR[$k]}" "${ERR[$k]}"
            done
        done
    fi
    if [ "$HANDSHAKES" -gt 0 ]; then
        echo
        echo "TLS 1.3 handshakes (2 x openssl s_time -www /, ${HANDSHAKES}s each mode; gateway CPU per connection = handshake + one"
        echo "proxied GET + close; per core = 1e6 / µs):"
        echo
        echo "| gateway | certificate | full: µs/conn | full: per core/s | resumed: µs/conn | resumed: per core/s | resumed share |"
        echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
        local cert f r
        for cert in ecdsa rsa; do
            for gw in "${MEASURED[@]}"; do
                read -r f _ _ <<<"${HS[$gw:$cert:new]}"
                read -r r rn rr <<<"${HS[$gw:$cert:reuse]}"
                printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$gw" "$([ $cert = rsa ] && echo RSA-2048 || echo "ECDSA P-256")" \
                    "$f" "$(awk -v u="$f" 'BEGIN { printf "%.0f", 1e6 / u }')" "$r" "$(awk -v u="$r" 'BEGIN { printf "%.0f", 1e6 / u }')" \
                    "$(awk -v a="$rr" -v n="$rn" 'BEGIN { printf "%.0f%%", 100 * a / n }')"
            done
        done
    fi
    if [ "$SYSCALLS" -gt 0 ]; then
        echo
        echo "System calls per request ($SYSCALLS requests per protocol under strace -f, h2load -c 8; h2 -m 4, http/1.1 --h1):"
        echo
        echo "| gateway | protocol | client side | upstream side | other | total | most frequent (cl = client side, up = upstream side) |"
        echo "| --- | --- | ---: | ---: | ---: | ---: | --- |"
        for proto in h2 h1; do
            for gw in "${MEASURED[@]}"; do
                k=$gw:$proto
                printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$gw" "$([ $proto = h2 ] && echo h2 || echo http/1.1)" \
                    "${SYS[$k:client]}" "${SYS[$k:upstream]}" "${SYS[$k:other]}" "${SYS[$k:total]}" "${SYS[$k:top]}"
            done
        done
    fi
    local n
    for n in "${NOTES[@]}"; do echo; echo "Note: $n"; done
    echo
    echo "p50/p99: h2 from h2load's per-request log (--log-file), http/1.1 from wrk --latency. errors: non-2xx"
    echo "responses plus failed/errored requests (h2load) or socket errors (wrk). gateway core busy: gateway CPU time"
    echo "/ wall time (near 100%: the gateway was the bottleneck; well below: core 1, load generator + upstream, was,"
    echo "or other work took core 0). other work on core 0: core 0 busy time (/proc/stat) not spent by the gateway"
    echo "(above a few %: something else ran on the gateway's core and the figures are skewed)."
}

if [ -n "$OUT" ]; then report | tee "$OUT"; else report; fi
