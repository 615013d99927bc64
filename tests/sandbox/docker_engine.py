"""Get a Docker engine and the sandbox image for the docker tests, or say why not.

Order: an engine that already answers (DOCKER_HOST or the default socket);
else start our own ``dockerd`` (installing docker.io with apt when root and
missing) with its own data root under /tmp, stopped when the tests end; then
build the image with `tinyact sandbox image` when it is absent or was built by
another version of that script (its ``tinyact.sandbox.recipe`` label differs:
debootstrap, a few minutes; cached in that data root afterwards).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("TINYACT_DOCKERD_ROOT", "/tmp/tinyact-dockerd"))
SOCK = ROOT / "docker.sock"
REPO = Path(__file__).resolve().parents[2]


def _ping(host: str | None) -> bool:
    try:
        import docker
    except ImportError:
        return False
    try:
        client = docker.DockerClient(base_url=host, timeout=5) if host else docker.from_env(timeout=5)
        client.ping()
        client.close()
        return True
    except Exception:  # noqa: BLE001
        return False


def _run(argv: list[str], timeout: float) -> tuple[bool, str]:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{type(e).__name__}: {e}"
    return p.returncode == 0, (p.stdout + p.stderr)[-1500:]


def _start_dockerd() -> str | None:
    if not shutil.which("dockerd"):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            return "no dockerd binary and cannot apt-get install docker.io (not root)"
        ok, out = _run(["bash", "-c", "apt-get update -qq && apt-get install -y -qq docker.io >/dev/null"], 600)
        if not ok or not shutil.which("dockerd"):
            return f"apt-get install docker.io failed: {out}"
    if os.geteuid() != 0:
        return "starting dockerd needs root"
    ROOT.mkdir(parents=True, exist_ok=True)
    log = open(ROOT / "dockerd.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            "dockerd", "--storage-driver=overlay2", "--iptables=false", "--ip6tables=false", "--bridge=none",
            f"--data-root={ROOT / 'data'}", f"--exec-root={ROOT / 'exec'}", f"--pidfile={ROOT / 'docker.pid'}",
            f"--host=unix://{SOCK}",
        ],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    host = f"unix://{SOCK}"
    for _ in range(60):
        if _ping(host):
            atexit.register(_stop, proc)
            os.environ["DOCKER_HOST"] = host
            return None
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    _stop(proc)
    tail = (ROOT / "dockerd.log").read_text(errors="replace")[-1500:]
    return f"dockerd did not come up (overlay2, own data root {ROOT}): {tail}"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def ensure_docker() -> str | None:
    """None when the docker backend can run here, else the precise reason it cannot."""
    try:
        import docker  # noqa: F401
    except ImportError:
        return "docker SDK not installed (pip install 'tinyact[docker]')"
    if not _ping(None):
        own = f"unix://{SOCK}"
        if SOCK.exists() and _ping(own):
            os.environ["DOCKER_HOST"] = own
        else:
            reason = _start_dockerd()
            if reason:
                return reason
    from tinyact.sandbox.docker import DEFAULT_IMAGE, docker_available

    ok, why = docker_available()
    if ok:
        return None
    if not needs_build(DEFAULT_IMAGE):
        return why
    ok, out = _run([sys.executable, "-m", "tinyact.cli", "sandbox", "image", DEFAULT_IMAGE], 1200)
    if not ok:
        return f"could not build {DEFAULT_IMAGE} with `tinyact sandbox image`: {out}"
    ok, why = docker_available()
    return None if ok else why


def needs_build(image: str) -> bool:
    """Whether build_image.sh should (re)build ``image``: absent, or labelled as a sandbox image of
    another recipe. Not someone's own image, nor one that says it is no sandbox image."""
    import docker

    from tinyact.sandbox.docker import IMAGE_LABEL, image_problem

    client = docker.from_env(timeout=30)
    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        return True
    finally:
        client.close()
    return labels.get(IMAGE_LABEL) == "1" and image_problem(image, labels) is not None
