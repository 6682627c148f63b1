#!/bin/sh
# Build a release bundle: the wheels of evsed and of every dependency (for this
# machine's architecture and Python; build on the target's architecture, e.g.
# on a Pi or in an arm64 container), the installer, the units and the example
# configuration. Installing from it needs no network:
#
#   deploy/build-bundle.sh [OUT.tar]        # default dist/evsed-VERSION-ARCH.tar
#   tar -xf evsed-VERSION-ARCH.tar -C /tmp/evsed && sudo /tmp/evsed/install.sh
#
# The same file is what `evsed update stage` and OCPP UpdateFirmware install.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PYTHON" -m pip wheel -q --wheel-dir "$WORK/wheels" "$ROOT"
WHEEL=$(cd "$WORK/wheels" && ls evsed-*.whl)
VERSION=${WHEEL#evsed-}
VERSION=${VERSION%%-*}
ARCH=$(dpkg --print-architecture 2>/dev/null || uname -m)
OUT=${1:-$ROOT/dist/evsed-$VERSION-$ARCH.tar}
mkdir -p "$(dirname "$OUT")"

printf '{"version": "%s", "evsed_wheel": "%s", "architecture": "%s"}\n' \
    "$VERSION" "$WHEEL" "$ARCH" > "$WORK/release.json"
cp "$ROOT/deploy/install.sh" "$ROOT/deploy/evsed.example.toml" "$WORK/"
cp -r "$ROOT/deploy/systemd" "$WORK/systemd"
tar -cf "$OUT" -C "$WORK" release.json wheels install.sh evsed.example.toml systemd
echo "$OUT"
