#!/usr/bin/env bash
# Install the Debian packages ficus needs, and only those that are missing.
#
#   scripts/deps.sh build   compiler, CMake, H2O (evloop), OpenSSL, libjwt, hiredis, libyaml, jansson, libsystemd,
#                           plus what the demo runs (redis-server, python3, curl, openssl)
#   scripts/deps.sh test    build set + pytest and the client libraries the suites use, h2load, clang-format,
#                           and the operating tools the packaging suites run: systemd-analyze, pandoc + man,
#                           promtool (prometheus), dpkg-deb, lintian
#   scripts/deps.sh bench   build set + nginx-light, haproxy, h2load (nghttp2-client), wrk, strace
#
# Idempotent and fast when everything is present: it asks dpkg-query first and calls apt-get only for
# what is missing. `apt-get update` runs only if an install fails (e.g. a fresh container with no lists).
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config libh2o-evloop-dev libssl-dev libjwt-dev libhiredis-dev
            libyaml-dev libjansson-dev libsystemd-dev openssl curl redis-server python3)
TEST_PKGS=("${BUILD_PKGS[@]}" python3-pytest python3-pytest-timeout python3-httpx python3-h2 python3-jwcrypto
           python3-redis python3-requests redis-sentinel nghttp2-client procps clang-format chromium libnss3-tools
           clang libclang-rt-14-dev systemd pandoc man-db groff-base prometheus lintian dpkg-dev fakeroot logrotate)
# Node.js for the SSO suite's OpenID provider is checked and its npm packages installed by tests/oidc/install.sh.
BENCH_PKGS=("${BUILD_PKGS[@]}" nginx-light haproxy nghttp2-client wrk procps util-linux strace)

usage() { echo "usage: $0 build|test|bench" >&2; exit 2; }
[ $# -eq 1 ] || usage
case "$1" in
    build) pkgs=("${BUILD_PKGS[@]}") ;;
    test)  pkgs=("${TEST_PKGS[@]}") ;;
    bench) pkgs=("${BENCH_PKGS[@]}") ;;
    *) usage ;;
esac

missing=()
for p in "${pkgs[@]}"; do
    # db:Status-Abbrev is "ii " for an installed package; anything else (or unknown) means missing.
    st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    [ "${st:0:2}" = "ii" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#pkgs[@]} packages of the '$1' set are installed"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
    SUDO=(sudo)
fi
apt_install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}
echo "deps: installing ${missing[*]}"
if ! apt_install "${missing[@]}"; then
    echo "deps: install failed; refreshing package lists and retrying"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    apt_install "${missing[@]}"
fi
echo "deps: '$1' set ready"
