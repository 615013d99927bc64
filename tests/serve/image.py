"""The agent API image for the docker tests: built from the repository's
Dockerfile by serve/build_image.sh, tagged by a hash of everything the build
reads (so an unchanged tree reuses the engine's image), and run containers
that are always removed."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
BASE = os.environ.get("TINYACT_SANDBOX_IMAGE", "tinyact-sandbox:latest")
# What .dockerignore lets into the build context (besides build/api-image).
PACKAGE = ("agents", "bench", "distill", "eval", "models", "sandbox", "serve", "tools")


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:2])} failed: {(p.stdout + p.stderr)[-2000:]}")
    return p


def context_hash() -> str:
    """sha256 of the Dockerfile, .dockerignore, the package's files and the base image's id."""
    h = hashlib.sha256()
    files = [REPO / n for n in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "py.typed")]
    files += sorted(REPO.glob("*.py"))
    for d in PACKAGE:
        files += sorted(p for p in (REPO / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts
                        and p.suffix != ".pyc")
    for f in files:
        h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(docker("image", "inspect", "--format", "{{.Id}}", BASE).stdout.encode())
    return h.hexdigest()[:16]


def ensure_image() -> tuple[str, float]:
    """The image's tag and the build's seconds (0 when the cached one was reused)."""
    tag = f"tinyact-api:ctx-{context_hash()}"
    prune_stale(keep=tag)
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag, 0.0
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(REPO / "serve" / "build_image.sh"), tag], capture_output=True, text=True,
                       timeout=3000, env={**os.environ, "BASE": BASE, "PIP": f"{sys.executable} -m pip"})
    if p.returncode != 0:
        raise RuntimeError(f"serve/build_image.sh failed:\n{(p.stdout + p.stderr)[-3000:]}")
    return tag, time.monotonic() - t0


def prune_stale(keep: str) -> list[str]:
    """Remove the test images of earlier trees (every ``tinyact-api:ctx-*`` but ``keep``) and the
    layers only they held: each tree change builds a new 1.4 GB image, and the engine's data root
    outlives the run, so without this the disk fills within a day of CI runs."""
    tags = docker("image", "ls", "tinyact-api", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    stale = [t for t in tags if t.startswith("tinyact-api:ctx-") and t != keep]
    if stale:
        docker("image", "rm", "--force", *stale, timeout=600)  # their untagged parent layers go with them
    from tests.sandbox.docker_engine import SOCK

    if os.environ.get("DOCKER_HOST") == f"unix://{SOCK}":  # the tests' own engine: a failed build's layers too
        docker("image", "prune", "--force", timeout=600)
    return stale


@contextmanager
def container(image: str, *args: str, env: dict[str, str] | None = None,
              mounts: tuple[str, ...] = (), opts: tuple[str, ...] = ()) -> Iterator[str]:
    """``docker run -d --network host`` the image with ``args`` after its entrypoint; yields
    the container's name and removes it (with its anonymous /data volume) afterwards."""
    name = f"tinyact-api-test-{uuid.uuid4().hex[:8]}"
    argv = ["run", "-d", "--name", name, "--network", "host", *opts]
    for k, v in (env or {}).items():
        argv += ["-e", f"{k}={v}"]
    for m in mounts:
        argv += ["-v", m]
    docker(*argv, image, *args)
    try:
        yield name
    finally:
        docker("rm", "-f", "-v", name, check=False)


def logs(name: str) -> str:
    p = docker("logs", name, check=False)
    return p.stdout + p.stderr


def wait_ready(url: str, name: str, timeout: float = 300) -> None:
    """Poll ``/readyz`` until 200; fail with the container's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        state = docker("inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()
        if state not in ("created", "running"):
            raise AssertionError(f"the container stopped ({state}):\n{logs(name)[-3000:]}")
        time.sleep(1)
    raise AssertionError(f"/readyz not ready after {timeout:.0f}s:\n{logs(name)[-3000:]}")
