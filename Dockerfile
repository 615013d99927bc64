# tinyact agent API, CPU image, built offline-friendly.
#
#   make api-image                       # = the two steps below
#   mkdir -p build/api-image   # optional content: a CPU torch-*.whl, ca.crt
#   docker build --network host -t tinyact-api .
#   docker run --rm -p 8000:8000 -e TINYACT_API_KEYS=change-me -v tinyact-data:/data \
#       --security-opt seccomp=unconfined --security-opt systempaths=unconfined tinyact-api
#
# BASE (default tinyact-sandbox:latest) is the minimal Debian + python3 that
# `make docker-image` debootstraps from the apt mirror and `docker import`s, so
# no registry is needed; any Debian bookworm image works too
# (--build-arg BASE=debian:bookworm-slim). Torch: a torch-*.whl in
# build/api-image/ is installed as is (the CPU wheel, no CUDA); without one, torch
# comes from TORCH_INDEX (the CPU wheel index). The rest comes from PyPI, so the
# build needs a network that reaches PyPI and the apt mirror (--network host
# where the daemon has no bridge). EXTRAS picks tinyact's extras (default
# models,serve,postgres: the compose file's replicas share PostgreSQL; add
# retrieval for --index).
#
# The sandbox runs each step under bubblewrap (installed) in an unprivileged
# user namespace. Checked with docker 20.10: that needs
#   --security-opt seccomp=unconfined      (the default profile denies the namespace)
#   --security-opt systempaths=unconfined  (bwrap mounts a fresh /proc; Docker's masked
#                                           /proc paths forbid it)
# and on AppArmor hosts also apparmor=unconfined. Without them bwrap and unshare
# both fail and the sandbox refuses to run code (it says so in the log).
# Sandboxed code may import numpy, sympy and mpmath: Debian's python3-numpy and
# python3-sympy in the system python3 the sandbox runs (already in the
# debootstrapped base; installed here for any other bookworm base).
# Models: the catalog prepares weights on first use into $TINYACT_HOME (/data);
# mount a prepared cache (read-only is fine; its files must be readable by
# uid 10001) and point TINYACT_HOME at it. Image: 1.42 GB (torch CPU 0.75 of it,
# the base with numpy and sympy 0.22).
ARG BASE=tinyact-sandbox:latest

FROM ${BASE} AS build
USER root
# The sandbox base points /tmp at a per-session fd; a build needs a real one.
RUN rm -f /tmp /scratch && mkdir -m 1777 /tmp \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/tinyact
ENV PATH=/opt/tinyact/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
# build/api-image/ (optional, made by `make api-image`): torch-*.whl and ca.crt,
# the CA bundle pip should trust (a host behind a TLS-inspecting proxy).
COPY build/api-image /src/extra
RUN set -e; [ ! -f /src/extra/ca.crt ] || export PIP_CERT=/src/extra/ca.crt; \
    whl=$(ls /src/extra/torch-${TORCH_VERSION}*.whl 2>/dev/null | head -1); \
    if [ -n "$whl" ]; then pip install "$whl"; \
    else pip install --index-url "$TORCH_INDEX" --extra-index-url https://pypi.org/simple "torch==${TORCH_VERSION}"; fi
ARG EXTRAS=models,serve,postgres
COPY . /src/tinyact
RUN set -e; [ ! -f /src/extra/ca.crt ] || export PIP_CERT=/src/extra/ca.crt; \
    pip install "/src/tinyact[${EXTRAS}]" && pip uninstall -y pip

FROM ${BASE}
USER root
RUN rm -f /tmp /scratch && mkdir -m 1777 /tmp \
    && apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap python3 python3-numpy python3-sympy \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && useradd --create-home --uid 10001 tinyact \
    && mkdir -p /data && chown tinyact:tinyact /data
COPY --from=build /opt/tinyact /opt/tinyact
ENV PATH=/opt/tinyact/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TINYACT_HOME=/data
# Not a sandbox image (the base's label would say so).
LABEL tinyact.sandbox.image="" org.opencontainers.image.title="tinyact-api"
USER 10001:10001
WORKDIR /home/tinyact
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')" || exit 1

# Keys: set TINYACT_API_KEYS (comma-separated) or mount a file and add
# --api-keys-file. Without a key the server answers loopback clients only.
ENTRYPOINT ["tinyact", "serve", "--host", "0.0.0.0", "--port", "8000", "--db", "/data/api.sqlite"]
CMD []
