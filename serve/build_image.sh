#!/usr/bin/env bash
# Build the agent API image (Dockerfile at the repository root) without a registry:
# the base is the debootstrapped sandbox image (`make docker-image`), torch is the
# local CPU wheel when pip can find one, everything else comes from PyPI.
# Usage: serve/build_image.sh [TAG]   (env: BASE, TORCH_VERSION, EXTRAS, PIP=pip)
set -euo pipefail
TAG="${1:-tinyact-api:latest}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PIP="${PIP:-pip}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
EXTRA="$REPO/build/api-image"
mkdir -p "$EXTRA"
# The CPU wheel from wherever this host's pip finds it (its find-links or index);
# none found: the Dockerfile takes torch from the CPU wheel index instead.
if ! ls "$EXTRA"/torch-"$TORCH_VERSION"+cpu-*.whl >/dev/null 2>&1; then
  rm -f "$EXTRA"/torch-*.whl
  $PIP download "torch==$TORCH_VERSION+cpu" --no-deps --only-binary=:all: -d "$EXTRA" -q 2>/dev/null \
    || echo ">> no local torch $TORCH_VERSION+cpu wheel: the build fetches it from the CPU index"
fi
# The CA bundle this host's pip trusts (a TLS-inspecting proxy's root), for pip in the build;
# else the system bundle (it holds any root the admin added).
CERT="${PIP_CERT:-$($PIP config get global.cert 2>/dev/null || true)}"
[[ -n "$CERT" ]] || CERT=/etc/ssl/certs/ca-certificates.crt
if [[ -n "$CERT" && -f "$CERT" ]]; then cp "$CERT" "$EXTRA/ca.crt"; else rm -f "$EXTRA/ca.crt"; fi
echo ">> docker build $TAG (base ${BASE:-tinyact-sandbox:latest})"
DOCKER_BUILDKIT=0 nice -n 10 docker build --force-rm --network host --cpu-shares 256 -t "$TAG" \
  --build-arg "BASE=${BASE:-tinyact-sandbox:latest}" --build-arg "TORCH_VERSION=$TORCH_VERSION" \
  --build-arg "EXTRAS=${EXTRAS:-models,serve}" "$REPO"
