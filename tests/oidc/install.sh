#!/usr/bin/env bash
# Installs the test OpenID provider's npm dependencies (exact versions from package-lock.json) into
# tests/oidc/node_modules, only when they are missing or package.json / package-lock.json / the node version changed.
# Makes sure node and npm exist first (Debian: apt-get install -y nodejs npm). Safe to run concurrently (flock).
#
#   tests/oidc/install.sh            # from anywhere; prints one line when nothing had to be done
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE"

fail() {
    echo "tests/oidc/install.sh: $*" >&2
    exit 1
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    SUDO=
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || fail "node/npm missing and not root (install nodejs and npm)"
        SUDO=sudo
    fi
    echo "tests/oidc/install.sh: installing nodejs and npm (apt)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y nodejs npm || { $SUDO apt-get update && $SUDO apt-get install -y nodejs npm; } ||
        fail "apt-get install nodejs npm failed"
fi

# oidc-provider 9 uses URL.parse (Node >= 20.18 / 22.1) and crypto.hash (Node >= 20.12). Debian 12's own nodejs
# (18.x) is too old: use Node 20.18+ or 22 LTS (e.g. NodeSource's packages).
node -e 'process.exit(typeof URL.parse === "function" && typeof require("node:crypto").hash === "function" ? 0 : 1)' ||
    fail "node $(node -v) is too old for oidc-provider 9 (needs Node >= 20.18, or 22 LTS)"

exec 9>"$HERE/.install.lock"
flock -w 600 9 || fail "timed out waiting for another install.sh"

want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1) node-$(node -v)"
stamp=node_modules/.ficus-install-stamp
if [ -f node_modules/oidc-provider/package.json ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "tests/oidc: node_modules up to date (oidc-provider $(node -p 'require("./node_modules/oidc-provider/package.json").version'), node $(node -v))"
    exit 0
fi

echo "tests/oidc: npm ci (node $(node -v), npm $(npm -v 2>/dev/null))"
npm ci --no-audit --no-fund --loglevel=error || fail "npm ci failed"
echo "$want" >"$stamp"
echo "tests/oidc: installed oidc-provider $(node -p 'require("./node_modules/oidc-provider/package.json").version')"
