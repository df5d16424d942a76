#!/usr/bin/env bash
# Build the Debian package from a staged tree with dpkg-deb (`make deb`):
#   scripts/deb.sh [BUILD_DIR [OUT_DIR]]   -> OUT_DIR/ficus_<version>_<arch>.deb (default: build, build)
# It packages BUILD_DIR/ficus (build it first), the man pages generated from the README (scripts/man.sh), the unit,
# the logrotate snippet and the starting configuration of packaging/, and the maintainer scripts of packaging/debian/.
# Runtime dependencies come from dpkg-shlibdeps on the binary. Files are owned by root (dpkg-deb --root-owner-group).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
OUT=${2:-$BUILD}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[ -x "$BUILD/ficus" ] || { echo "deb.sh: $BUILD/ficus not built" >&2; exit 1; }
VERSION=$(sed -n 's/^project(ficus VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
ARCH=$(dpkg --print-architecture)
DATE=$(date -u -R -d "@$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
st=$work/ficus
install -d "$st/DEBIAN" "$st/usr/sbin" "$st/etc/ficus" "$st/etc/logrotate.d" "$st/lib/systemd/system" \
    "$st/usr/share/man/man8" "$st/usr/share/man/man5" "$st/usr/share/doc/ficus"
install -m 0755 "$BUILD/ficus" "$st/usr/sbin/ficus"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$st/usr/sbin/ficus"
install -m 0644 "$ROOT/packaging/ficus.yaml" "$st/etc/ficus/ficus.yaml"
install -m 0644 "$ROOT/packaging/ficus.logrotate" "$st/etc/logrotate.d/ficus"
install -m 0644 "$ROOT/packaging/ficus.service" "$st/lib/systemd/system/ficus.service"
"$ROOT/scripts/man.sh" "$work/man" >/dev/null
gzip -9n -c "$work/man/ficus.8" >"$st/usr/share/man/man8/ficus.8.gz"
gzip -9n -c "$work/man/ficus.yaml.5" >"$st/usr/share/man/man5/ficus.yaml.5.gz"
chmod 0644 "$st"/usr/share/man/man*/*.gz
install -m 0644 "$ROOT/packaging/debian/copyright" "$st/usr/share/doc/ficus/copyright"
printf 'ficus (%s) unstable; urgency=medium\n\n  * Package built from the ficus repository (see README "Operating ficus").\n\n -- ficus maintainers <ficus@example.org>  %s\n' \
    "$VERSION" "$DATE" | gzip -9n >"$st/usr/share/doc/ficus/changelog.gz"
chmod 0644 "$st/usr/share/doc/ficus/changelog.gz"
for s in postinst prerm postrm; do
    install -m 0755 "$ROOT/packaging/debian/$s" "$st/DEBIAN/$s"
done
printf '/etc/ficus/ficus.yaml\n/etc/logrotate.d/ficus\n' >"$st/DEBIAN/conffiles"

# shared-library dependencies, as debhelper's ${shlibs:Depends} would compute them
mkdir -p "$work/src/debian"
printf 'Source: ficus\n\nPackage: ficus\nArchitecture: any\n' >"$work/src/debian/control"
deps=$(cd "$work/src" && dpkg-shlibdeps -O -e "$st/usr/sbin/ficus" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$deps" ] || { echo "deb.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$st" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$deps/" \
    "$ROOT/packaging/debian/control.in" >"$st/DEBIAN/control"
(cd "$st" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | sort -z | xargs -0 md5sum) >"$st/DEBIAN/md5sums"
chmod 0644 "$st/DEBIAN/control" "$st/DEBIAN/conffiles" "$st/DEBIAN/md5sums"
deb="$OUT/ficus_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$st" "$deb" >/dev/null
echo "deb.sh: $deb"
