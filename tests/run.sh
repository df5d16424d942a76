#!/usr/bin/env bash
# The whole test run: what `make test` and CI (.ci/run) execute. Works on a fresh Debian 12 (installs via apt).
#
#   1. scripts/deps.sh test                     install missing packages
#   2. clang-format --dry-run --Werror          gateway/ plugins/ tests/unit C sources (.clang-format)
#   3. Release build in $BUILD_DIR (build/)     then `ficus -t` on every conf/*.yaml
#   4. ctest (unit + integration labels)        on the Release build
#   5. ASan+UBSan Debug build in $ASAN_DIR (build-asan/), `ficus -t` on conf/*.yaml, ctest again
#   6. libFuzzer targets (tests/fuzz/fuzz_*.c) built with clang in $FUZZ_DIR, $FUZZ_SECONDS s each on their corpus
#
# A step that cannot go on (dependencies, format, a build) stops the run and says which step failed. A failing test
# suite does not: the other suites still run, and the end of the output lists every failing test of every suite
# (pytest never stops at the first failure). Never skips a suite: a label with no test, a skipped pytest test or a
# ctest "Skipped" test is a failure (CI installs everything, so a skip means something is broken).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${BUILD_DIR:-build}
ASAN_DIR=${ASAN_DIR:-build-asan}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
LOG_DIR=${LOG_DIR:-$BUILD_DIR/test-logs}
START=$(date +%s)
STEP="start"

elapsed() { local s=$(($(date +%s) - START)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
SUITE_FAILURES=() # "name: what failed", one per failed test suite (reported at the end; the run goes on)
on_exit() {
    local rc=$?
    if [ ${#SUITE_FAILURES[@]} -ne 0 ]; then
        echo >&2
        echo "tests/run.sh: failing test suites:" >&2
        printf '  %s\n' "${SUITE_FAILURES[@]}" >&2
    fi
    if [ $rc -ne 0 ]; then
        echo
        echo "tests/run.sh: FAILED at step: $STEP (exit $rc) after $(elapsed)" >&2
    fi
}
trap on_exit EXIT
step() { STEP="$*"; echo; echo "==== $* ($(elapsed))"; }
fail() { echo "tests/run.sh: $*" >&2; exit 1; }

# Debian's python3 (with the apt-installed pytest, httpx, h2, ...) even when another python3 is first in PATH.
export PATH="/usr/bin:$PATH"
# List failures, errors and skips (with reasons) in pytest's summary; write no .pytest_cache into the tree.
export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} -rfEs -p no:cacheprovider"

step "dependencies (scripts/deps.sh test, tests/oidc/install.sh)"
scripts/deps.sh test
tests/oidc/install.sh
# the browser check must run, not skip, in this command
export FICUS_REQUIRE_CHROMIUM=1

step "clang-format check"
mapfile -t CSRC < <(find gateway plugins tests/unit -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null | sort)
if [ ${#CSRC[@]} -eq 0 ]; then
    echo "no C sources yet"
else
    clang-format --dry-run --Werror "${CSRC[@]}" ||
        fail "clang-format: the files above differ from .clang-format (fix: clang-format -i FILE)"
    echo "${#CSRC[@]} files formatted as .clang-format says"
fi

step "dev certificates (certs-dev/make-certs.sh)"
certs-dev/make-certs.sh

build() { # dir, cmake args...
    local dir=$1
    shift
    mkdir -p "$dir"
    cmake -S . -B "$dir" "$@" >"$dir/configure.log" 2>&1 || { cat "$dir/configure.log"; fail "cmake configure of $dir failed"; }
    cmake --build "$dir" -j"$JOBS" || fail "build in $dir failed"
}

check_confs() { # ficus binary
    local n=0 f
    for f in conf/*.yaml; do
        "$1" -t -c "$f" || fail "$1 -t -c $f: configuration rejected"
        n=$((n + 1))
    done
    [ $n -gt 0 ] || fail "no conf/*.yaml to check"
}

suite_failed() { # name, what: recorded, reported at the end; the run goes on with the next suite
    SUITE_FAILURES+=("$1: $2")
    echo "tests/run.sh: $1: $2" >&2
}

run_ctest() { # build dir, name
    local dir=$1 name=$2 log
    mkdir -p "$LOG_DIR"
    log="$LOG_DIR/ctest-$name.log"
    # -V so that pytest's summary (and any "skipped") is in the log even when everything passes.
    if ! ctest --test-dir "$dir" --output-on-failure --no-tests=error -V 2>&1 | tee "$log"; then
        # every failing test: ctest's list of failed tests and pytest's FAILED/ERROR summary lines
        local failed
        failed=$(sed -n -e 's/^\([0-9]*: \)\?\(FAILED\|ERROR\) \([^ ]*::[^ ]*\).*/\3/p' -e 's/^[[:space:]]*[0-9]* - \(.*\) (.*)$/\1/p' \
            "$log" | sort -u | tr '\n' ' ')
        suite_failed "ctest ($name)" "failed: ${failed:-see the log}(full log: $log)"
    fi
    # Both suites must have run: ctest lists the labels it ran under "Label Time Summary".
    local label
    for label in unit integration; do
        grep -Eq "^${label}[[:space:]]+=" "$log" || suite_failed "ctest ($name)" "no test with label '$label' ran; full log: $log"
    done
    # pytest: "3 passed, 1 skipped in 2.1s" and (-rs) "SKIPPED [1] file:line: reason"; ctest: "***Skipped".
    if grep -Eq '[0-9]+ skipped|^([0-9]+: )?SKIPPED \[|\*\*\*Skipped|Not Run' "$log"; then
        grep -E '[0-9]+ skipped|SKIPPED \[|\*\*\*Skipped|Not Run' "$log" >&2
        suite_failed "ctest ($name)" "tests were skipped (a skipped suite is a failed suite); full log: $log"
    fi
}

step "Release build in $BUILD_DIR"
build "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release

step "ficus -t on conf/*.yaml (Release)"
check_confs "$BUILD_DIR/ficus"

step "ctest on $BUILD_DIR (unit + integration)"
run_ctest "$BUILD_DIR" release

step "ASan+UBSan build in $ASAN_DIR"
build "$ASAN_DIR" -DCMAKE_BUILD_TYPE=Debug -DFICUS_ASAN=ON -DFICUS_UBSAN=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

step "ficus -t on conf/*.yaml (ASan+UBSan)"
check_confs "$ASAN_DIR/ficus"

step "ctest on $ASAN_DIR (unit + integration, ASan+UBSan)"
run_ctest "$ASAN_DIR" asan

FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-45}
step "fuzzers (clang libFuzzer + ASan/UBSan, ${FUZZ_SECONDS} s each on tests/fuzz/corpus)"
mkdir -p "$FUZZ_DIR"
CC=clang cmake -S . -B "$FUZZ_DIR" -DCMAKE_BUILD_TYPE=Debug -DFICUS_FUZZ=ON >"$FUZZ_DIR/configure.log" 2>&1 ||
    { cat "$FUZZ_DIR/configure.log"; fail "cmake configure of $FUZZ_DIR failed"; }
mapfile -t FUZZERS < <(for src in tests/fuzz/fuzz_*.c; do basename "$src" .c; done)
cmake --build "$FUZZ_DIR" -j"$JOBS" --target "${FUZZERS[@]}" || fail "fuzzer build in $FUZZ_DIR failed"
for f in "${FUZZERS[@]/#/$FUZZ_DIR/}"; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    corpus=tests/fuzz/corpus/${name#fuzz_}
    [ -d "$corpus" ] || fail "no corpus $corpus for $name"
    work="$FUZZ_DIR/work-$name"
    rm -rf "$work" && mkdir -p "$work" # new inputs go there, the committed corpus is only read
    dict=()
    [ -f "tests/fuzz/${name#fuzz_}.dict" ] && dict=(-dict="$ROOT/tests/fuzz/${name#fuzz_}.dict")
    (cd "$FUZZ_DIR" && "./$name" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 "${dict[@]}" \
        "$ROOT/$work" "$ROOT/$corpus" >"$name.log" 2>&1) ||
        { tail -40 "$FUZZ_DIR/$name.log"; fail "$name found a crash (log $FUZZ_DIR/$name.log)"; }
    echo "$name: $(grep -Eo 'Done [0-9]+ runs' "$FUZZ_DIR/$name.log" | tail -1)"
done

STEP="done"
[ ${#SUITE_FAILURES[@]} -eq 0 ] || { STEP="test suites (listed above)"; exit 1; }
echo
echo "tests/run.sh: all steps passed in $(elapsed)"
