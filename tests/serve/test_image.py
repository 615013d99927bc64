"""The agent API image, built and run for real: ``docker build`` from the
Dockerfile on the offline debootstrapped base, ``docker run`` with the prepared
model cache mounted read-only, and a real ``POST /v1/runs`` on smollm2-135m.

The image is tagged by a hash of what the build reads, so a second run with an
unchanged tree skips the build (the first takes a few minutes)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import httpx
import pytest

from tests.serve.image import container, docker, ensure_image, logs, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(3600)]

CACHE = Path.home() / ".cache" / "tinyact"
MODEL = "smollm2-135m"
# What bubblewrap needs inside a container (docs/deploy.md): user namespaces (Docker's default
# seccomp profile denies them) and an unmasked /proc (bwrap mounts a fresh one). apparmor=unconfined
# matters on AppArmor hosts only; this engine has none, so it is not checked here.
SANDBOX_OPTS = ("--security-opt", "seccomp=unconfined", "--security-opt", "systempaths=unconfined")


@pytest.fixture(scope="module")
def image() -> str:
    from tests.sandbox.docker_engine import ensure_docker

    reason = ensure_docker()  # our own dockerd if none answers, and the debootstrapped base image
    if reason:
        pytest.skip(f"no Docker engine: {reason}")
    if not (CACHE / "models" / MODEL).is_dir():
        pytest.skip(f"{MODEL} is not prepared in {CACHE} (tinyact models pull {MODEL})")
    tag, seconds = ensure_image()
    tags = docker("image", "ls", "tinyact-api", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert [t for t in tags if t.startswith("tinyact-api:ctx-")] == [tag], f"earlier trees' images left: {tags}"
    size = int(docker("image", "inspect", "--format", "{{.Size}}", tag).stdout)
    print(f"\n{tag}: {size / 1e6:.0f} MB, built in {seconds:.0f}s (0: cached)")
    return tag


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A model cache uid 10001 can read: the prepared one, or a readable copy of MODEL
    when the prepared files are private to their owner (0600 as pulled by root)."""
    src = CACHE / "models" / MODEL
    if all(p.stat().st_mode & 0o004 for p in src.iterdir()):
        return CACHE
    dest = tmp_path_factory.mktemp("cache")
    shutil.copytree(src, dest / "models" / MODEL)
    for p in [dest, *dest.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


def _port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def _outside_ip() -> str | None:
    """This host's non-loopback address (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def test_image_answers_a_real_run_with_a_key_as_uid_10001(image: str, cache: Path):
    port = _port()
    args = ("--port", str(port), "--model", MODEL, "--max-steps", "1")
    with container(image, *args, env={"TINYACT_API_KEYS": "k-1,k-2", "TINYACT_HOME": "/cache"},
                   mounts=(f"{cache}:/cache:ro",), opts=SANDBOX_OPTS) as name:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, name)
        assert docker("exec", name, "id", "-u").stdout.strip() == "10001"
        assert httpx.post(f"{url}/v1/runs", json={"task": "x"}, timeout=30).status_code == 401
        r = httpx.post(f"{url}/v1/runs", json={"task": "What is 2 + 3? Use code.", "max_steps": 1},
                       headers={"Authorization": "Bearer k-2"}, timeout=600)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "finished", (body, logs(name)[-2000:])
        assert body["end_reason"] in ("final_answer", "max_steps")
        assert len(body["steps"]) == 1 and body["trajectory"]["usage"]["completion_tokens"] > 0
        # the sandbox ran the step under bubblewrap (not the weaker fallbacks)
        doctor = docker("exec", "-e", "COLUMNS=300", name, "tinyact", "sandbox", "doctor").stdout
        assert "chosen isolation" in doctor and "bwrap" in doctor.split("chosen isolation", 1)[1].split("\n")[0]
        # the venv's packages and tinyact's code stay outside; /usr/bin/python3.11 is the sandbox's own interpreter
        hidden = doctor.split("host files hidden", 1)[1].split("\n")[0]
        assert " ok " in hidden and "/opt/tinyact/lib" in hidden and "/usr/bin/python" not in hidden, doctor
        # sandboxed code computes with Debian's numpy and sympy, the image's python3's own
        packages = doctor.split("packages: numpy, sympy, mpmath", 1)[1].split("\n")[0]
        assert " ok " in packages and "from the interpreter's own /usr/lib/python3/dist-packages" in packages, doctor
        solve = ("from tinyact.sandbox import open_session\nwith open_session() as s:\n"
                 "    r = s.execute('import sympy\\nx = sympy.symbols(\"x\")\\nprint(sympy.solve(x**2 - 4, x))')\n"
                 "    print(r.stdout, r.error)")
        assert docker("exec", name, "python", "-c", solve).stdout.split() == ["[-2,", "2]", "None"]


def test_image_without_keys_serves_loopback_only(image: str, cache: Path):
    """Bound to 0.0.0.0 without keys (and without SANDBOX_OPTS): loopback callers only."""
    outside = _outside_ip()
    if outside is None:
        pytest.skip("this host has no non-loopback IPv4 address to call from")
    port = _port()
    with container(image, "--port", str(port), "--model", MODEL,
                   env={"TINYACT_HOME": "/cache"}, mounts=(f"{cache}:/cache:ro",)) as name:
        wait_ready(f"http://127.0.0.1:{port}", name)
        said = " ".join(logs(name).split())  # rich wraps the warning at 80 columns
        assert "no API key configured: binding 0.0.0.0 but serving loopback clients only" in said
        # without SANDBOX_OPTS bubblewrap cannot start here, and the sandbox says so (it refuses no isolation)
        assert "allow_unsafe=True" in said
        far = httpx.get(f"http://{outside}:{port}/v1/runs", timeout=30)
        assert far.status_code == 403 and "loopback clients only" in far.text
        assert httpx.get(f"http://127.0.0.1:{port}/v1/runs", timeout=30).status_code == 200
