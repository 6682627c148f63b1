#!/bin/sh
# Install or upgrade evsed on a Raspberry Pi OS / Debian device, as root:
#
#   sudo deploy/install.sh                  # from a source checkout (builds the wheels)
#   sudo ./install.sh                       # from an unpacked release bundle: no network
#   sudo ./install.sh --bundle FILE.tar     # the same, from the bundle file
#
# Options:
#   --bundle FILE       release bundle (deploy/build-bundle.sh): the wheels of evsed and
#                       every dependency, so installation needs no network
#   --unit-dir DIR      where the systemd units go (default /etc/systemd/system)
#   --units-installed   the units are already in place (the Debian package ships them)
#   --no-start          first install: enable the service but do not start it now (an
#                       upgrade always restarts: its health check confirms it)
#
# What it does:
#   - the system user "evsed", in the groups gpio, spi and dialout (made if missing);
#   - the first release in /opt/evsed/releases/a, /opt/evsed/current (and confirmed)
#     pointing at it; an upgrade goes into the other release directory through
#     `evsed update`, which switches, restarts and rolls back if the new release
#     fails its health check;
#   - /etc/evsed/evsed.toml from the example, only if there is none (kept on upgrade);
#   - the state directory /var/lib/evsed (systemd's StateDirectory= makes it);
#   - /usr/local/bin/evsed for the commissioning commands (selftest, status, config check);
#   - the units evsed.service, evsed-provision.service and evsed-update.{service,path},
#     enabled; evsed started (or restarted by the upgrade).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
BUNDLE=""
UNIT_DIR=/etc/systemd/system
COPY_UNITS=yes
START=yes
OPT=/opt/evsed
CONFIG=/etc/evsed/evsed.toml

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --bundle) BUNDLE=$2; shift 2 ;;
        --unit-dir) UNIT_DIR=$2; shift 2 ;;
        --units-installed) COPY_UNITS=no; shift ;;
        --no-start) START=no; shift ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

[ "$(id -u)" = 0 ] || die "run as root (sudo $0)"

# --- Python 3.11+ with venv -------------------------------------------------------
command -v python3 >/dev/null || die "python3 not found; install it: apt-get install python3"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "evsed needs Python 3.11 or newer; python3 is $(python3 -V 2>&1)"
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    say "installing python3-venv"
    apt-get install -y -qq python3-venv >/dev/null || die "apt-get install python3-venv failed"
fi

# --- the release bundle -------------------------------------------------------------
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ -z "$BUNDLE" ]; then
    if [ -f "$HERE/release.json" ] && [ -d "$HERE/wheels" ]; then  # an unpacked bundle
        tar -cf "$WORK/evsed-bundle.tar" -C "$HERE" release.json wheels
        BUNDLE="$WORK/evsed-bundle.tar"
    elif [ -f "$HERE/../pyproject.toml" ]; then
        say "building the release bundle from the source tree (needs the network)"
        "$HERE/build-bundle.sh" "$WORK/evsed-bundle.tar" >/dev/null
        BUNDLE="$WORK/evsed-bundle.tar"
    else
        die "no bundle: pass --bundle FILE"
    fi
fi
[ -f "$BUNDLE" ] || die "no such bundle: $BUNDLE"
mkdir -p "$WORK/bundle"
tar -xf "$BUNDLE" -C "$WORK/bundle" release.json wheels \
    || die "$BUNDLE is not an evsed release bundle (release.json and wheels/)"
VERSION=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
    "$WORK/bundle/release.json") || die "$BUNDLE: unreadable release.json"
WHEEL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["evsed_wheel"])' \
    "$WORK/bundle/release.json")
# The updater needs only the standard library: it runs straight from the new wheel.
updater() { PYTHONPATH="$WORK/bundle/wheels/$WHEEL" python3 -m controller.update "$@"; }

# --- user, groups, directories ------------------------------------------------------
for group in gpio spi dialout; do
    getent group "$group" >/dev/null || groupadd --system "$group"
done
if ! getent passwd evsed >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/evsed --no-create-home \
        --shell /usr/sbin/nologin evsed
fi
usermod -a -G gpio,spi,dialout evsed
install -d -m 0750 -o root -g evsed /etc/evsed
install -d -m 0750 -o evsed -g evsed /var/lib/evsed
if [ ! -e "$CONFIG" ]; then
    install -m 0640 -o root -g evsed "$HERE/evsed.example.toml" "$CONFIG"
    say "wrote $CONFIG from the example: edit it, or drop evsed.toml on the boot partition"
else
    say "keeping $CONFIG"
fi

# --- units --------------------------------------------------------------------------
if [ "$COPY_UNITS" = yes ]; then
    for unit in evsed.service evsed-provision.service evsed-update.service evsed-update.path; do
        install -m 0644 "$HERE/systemd/$unit" "$UNIT_DIR/$unit"
    done
fi
BOOTED=no
[ -d /run/systemd/system ] && BOOTED=yes
[ "$BOOTED" = yes ] && systemctl daemon-reload
systemctl enable evsed.service evsed-provision.service evsed-update.service \
    evsed-update.path >/dev/null 2>&1 || die "systemctl enable failed"

# --- the release ----------------------------------------------------------------------
if [ ! -e "$OPT/current" ]; then
    say "installing evsed $VERSION into $OPT/releases/a"
    updater install-first "$BUNDLE" || die "could not install evsed $VERSION from the bundle"
    if [ "$BOOTED" = yes ] && [ "$START" = yes ]; then
        systemctl start evsed-update.path
        systemctl start evsed.service || die "evsed did not start: journalctl -u evsed"
    fi
else
    say "upgrading to evsed $VERSION (A/B, rolled back if it fails its health check)"
    if [ "$BOOTED" = yes ]; then
        # Root's own copy of the bundle, never through the daemon's inbox; the updater's
        # lock keeps it from racing the path unit's run.
        "$OPT/confirmed/bin/evsed" update apply --bundle "$BUNDLE" \
            || die "the upgrade to $VERSION failed: $("$OPT/current/bin/evsed" update status)"
    else
        updater stage "$BUNDLE"
        say "the staged release is installed at the next boot"
    fi
fi
ln -sfn "$OPT/current/bin/evsed" /usr/local/bin/evsed
say "done: $(evsed --version); see systemctl status evsed, evsed status, evsed selftest"
