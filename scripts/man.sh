#!/usr/bin/env bash
# Generate the man pages from the README, so that they cannot drift from it:
#   ficus(8)       = docs/ficus.8.md (name, synopsis, files, exit codes) + the README's "Command line" and
#                    "Operations" sections (signals, logs, admin endpoints, errors) and "Operating ficus"
#   ficus.yaml(5)  = docs/ficus.yaml.5.md (name, description) + the README's "Configuration" section (every key)
# README level-2 headings become man sections (.SH), level 3 subsections (.SS).
#
#   scripts/man.sh OUTDIR     writes OUTDIR/ficus.8 and OUTDIR/ficus.yaml.5 (pandoc, Debian's package)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: scripts/man.sh OUTDIR}
mkdir -p "$OUT"
VERSION=$(sed -n 's/^project(ficus VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
DATE=$(date -u -d "@$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)" +%Y-%m-%d)

# README sections by their level-2 heading (whole section, up to the next level-2 heading)
section() {
    awk -v want="$1" '/^## /{on = (substr($0, 4) == want)} on' "$ROOT/README.md"
}
render() { # render NAME SECTION SOURCE...
    local name=$1 sec=$2
    shift 2
    { printf '%% %s(%s) ficus %s | ficus manual\n%% \n%% %s\n\n' "$(echo "$name" | tr a-z A-Z)" "$sec" "$VERSION" "$DATE"
      cat "$@"; } |
        pandoc -s -f markdown-smart -t man --shift-heading-level-by=-1 --lua-filter="$ROOT/docs/man-tables.lua" \
            -V header-includes=.ad\ l -o "$OUT/$name.$sec"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for s in "Command line" "Operations" "Operating ficus"; do
    section "$s" >>"$tmp/ficus.8.md"
done
[ -s "$tmp/ficus.8.md" ] || { echo "man.sh: README sections not found" >&2; exit 1; }
section "Configuration" >"$tmp/ficus.yaml.5.md"
[ -s "$tmp/ficus.yaml.5.md" ] || { echo "man.sh: README section Configuration not found" >&2; exit 1; }
render ficus 8 "$ROOT/docs/ficus.8.md" "$tmp/ficus.8.md"
render ficus.yaml 5 "$ROOT/docs/ficus.yaml.5.md" "$tmp/ficus.yaml.5.md"
echo "man.sh: $OUT/ficus.8 $OUT/ficus.yaml.5"
