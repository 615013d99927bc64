#!/usr/bin/env bash
# Build the docker sandbox image offline: debootstrap a minimal Debian with
# python3 and the packages sandboxed code may import (numpy, sympy and its
# mpmath: Debian's own, from the mirror this machine's apt already uses), then
# `docker import`. The image is labelled with a hash of this script
# (tinyact.sandbox.recipe); the docker backend refuses an image whose label
# differs, so an image built by an older recipe is rebuilt, not silently used.
# Usage: sandbox/build_image.sh [IMAGE]   (needs root, debootstrap, a Docker engine)
set -euo pipefail
IMAGE="${1:-tinyact-sandbox:latest}"
. /etc/os-release
SUITE="${DEBIAN_SUITE:-${VERSION_CODENAME:-bookworm}}"
MIRROR="${DEBIAN_MIRROR:-}"
if [[ -z "$MIRROR" ]]; then
  MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
fi
if [[ -z "$MIRROR" ]]; then
  MIRROR=$(awk '$1 == "deb" && $2 !~ /^\[/ {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
WORK=$(mktemp -d /tmp/tinyact-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
RECIPE=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
echo ">> debootstrap $SUITE from $MIRROR (minbase + python3, numpy, sympy)"
debootstrap --variant=minbase --include=python3,python3-numpy,python3-sympy "$SUITE" "$WORK/root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -20 "$WORK/debootstrap.log"; exit 1; }
ROOT="$WORK/root"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc \
       "$ROOT"/usr/share/man "$ROOT"/usr/share/info "$ROOT"/usr/share/locale
# The packages' test suites go (not needed to import them); their compiled .pyc stay (fast imports).
find "$ROOT"/usr/lib/python3/dist-packages/{numpy,sympy,mpmath} -depth -type d -name tests -exec rm -rf {} +
# Per-session scratch dirs: /scratch (and /tmp) resolve to the session's own dir on fd 3.
rm -rf "$ROOT/tmp" "$ROOT/scratch"
ln -s /proc/self/fd/3 "$ROOT/scratch"
ln -s /proc/self/fd/3 "$ROOT/tmp"
mkdir -p "$ROOT/.tinyact"
echo ">> docker import $IMAGE"
tar -C "$ROOT" --numeric-owner -c . | docker import \
  -c 'USER 65534:65534' -c 'WORKDIR /' -c 'CMD ["sleep", "infinity"]' \
  -c 'LABEL tinyact.sandbox.image=1' -c "LABEL tinyact.sandbox.recipe=$RECIPE" - "$IMAGE"
