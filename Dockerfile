# tinyact agent API, CPU image.
#
#   docker build -t tinyact-api .
#   docker run --rm -p 8000:8000 -e TINYACT_API_KEYS=change-me \
#       --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
#       -v tinyact-data:/data tinyact-api
#
# The sandbox runs each run's code under bubblewrap in an unprivileged user
# namespace; Docker's default seccomp/AppArmor profiles forbid creating one,
# hence the two --security-opt flags (without them tinyact falls back to a
# weaker isolation and says so loudly at start-up). Models: the catalog
# downloads and converts weights on first use into $TINYACT_HOME (/data);
# for GPU serving use compose.yaml (vLLM does the model, this image the agent).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TINYACT_HOME=/data

RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# torch first, from the CPU wheel index, so the extras below do not pull CUDA.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.9"

# The repository root is the package; copy the package only (not .venv, build/).
WORKDIR /src/tinyact
COPY pyproject.toml README.md __init__.py cli.py console.py errors.py schema.py py.typed ./
COPY agents ./agents
COPY bench ./bench
COPY distill ./distill
COPY eval ./eval
COPY models ./models
COPY sandbox ./sandbox
COPY serve ./serve
COPY tools ./tools
RUN pip install ".[models,serve,retrieval,postgres]" && rm -rf /src

RUN useradd --create-home --uid 10001 tinyact && mkdir -p /data && chown tinyact:tinyact /data
USER tinyact
WORKDIR /home/tinyact
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')" || exit 1

# Keys: mount a file and add --api-keys-file, or set TINYACT_API_KEYS.
# Without a key the server answers loopback clients only.
ENTRYPOINT ["tinyact", "serve", "--host", "0.0.0.0", "--port", "8000", "--db", "/data/api.sqlite"]
CMD []
