#!/bin/sh
# Build the Debian package: the release bundle (deploy/build-bundle.sh, wheels
# included, so `dpkg -i` needs no network) and the units; its postinst runs the
# installer. Build on the target's architecture (a Pi, or an arm64 container).
#
#   deploy/build-deb.sh [OUTDIR]            # default dist/; prints the .deb's path
#   sudo apt install ./evsed_VERSION_ARCH.deb
#
# /etc/evsed/evsed.toml is not a conffile: the installer writes it from the
# example only when it is missing, so an upgrade never touches it. Purging the
# package removes the configuration, the state and the user.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUTDIR=${1:-$ROOT/dist}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: dpkg-deb not found" >&2; exit 1; }

BUNDLE=$("$ROOT/deploy/build-bundle.sh" "$WORK/evsed-bundle.tar")
VERSION=$(tar -xOf "$BUNDLE" release.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
ARCH=$(dpkg --print-architecture)
PKG="$WORK/pkg"

install -d "$PKG/DEBIAN" "$PKG/usr/lib/evsed" "$PKG/lib/systemd/system"
install -m 0644 "$BUNDLE" "$PKG/usr/lib/evsed/evsed-bundle.tar"
install -m 0755 "$ROOT/deploy/install.sh" "$PKG/usr/lib/evsed/install.sh"
install -m 0644 "$ROOT/deploy/evsed.example.toml" "$PKG/usr/lib/evsed/evsed.example.toml"
install -m 0644 "$ROOT"/deploy/systemd/evsed* "$PKG/lib/systemd/system/"

cat > "$PKG/DEBIAN/control" <<CONTROL
Package: evsed
Version: $VERSION
Architecture: $ARCH
Maintainer: evsed developers <evsed@localhost>
Depends: python3 (>= 3.11), python3-venv, adduser | passwd
Section: misc
Priority: optional
Description: EV charging-station controller (IEC 61851, OCPP 1.6J)
 evsed drives the control pilot, contactors, energy meter and RFID reader of a
 wallbox on a Raspberry Pi and keeps the operator's CSMS in sync over OCPP.
 The Python dependencies are bundled as wheels; installation needs no network.
CONTROL

cat > "$PKG/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    /usr/lib/evsed/install.sh --bundle /usr/lib/evsed/evsed-bundle.tar --units-installed
fi
SCRIPT
cat > "$PKG/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop evsed.service evsed-update.path evsed-update.service || true
fi
if [ "$1" = remove ]; then
    systemctl disable evsed.service evsed-provision.service evsed-update.service \
        evsed-update.path >/dev/null 2>&1 || true
fi
SCRIPT
cat > "$PKG/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = remove ] || [ "$1" = purge ]; then
    rm -rf /opt/evsed
    rm -f /usr/local/bin/evsed
fi
if [ "$1" = purge ]; then
    rm -rf /etc/evsed /var/lib/evsed /var/lib/evsed-updater
    if getent passwd evsed >/dev/null; then userdel evsed || true; fi
fi
SCRIPT
chmod 0755 "$PKG/DEBIAN/postinst" "$PKG/DEBIAN/prerm" "$PKG/DEBIAN/postrm"

mkdir -p "$OUTDIR"
OUT="$OUTDIR/evsed_${VERSION}_$ARCH.deb"
dpkg-deb --root-owner-group -Zgzip --build "$PKG" "$OUT" >/dev/null
echo "$OUT"
