"""numpy, sympy and mpmath under the docker backend (Debian's own, in the image sandbox/build_image.sh
debootstraps), and what happens to an image that recipe did not build: refused with what to do, and
rebuilt by the tests' engine helper. Real engine, real images (a relabelled copy of the sandbox image is
a metadata-only build, so no test forces a debootstrap)."""

from __future__ import annotations

import io
import json
import uuid

import pytest

from tests.sandbox.backends import docker_skip_reason, open_backend
from tests.sandbox.test_packages import CODE, LIMITS
from tinyact.errors import SandboxError, SandboxErrorCode

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def engine():
    reason = docker_skip_reason()  # starts our own dockerd and (re)builds the image when needed
    if reason:
        pytest.skip(reason)
    import docker

    client = docker.from_env(timeout=60)
    yield client
    client.close()


def test_code_imports_numpy_and_sympy_from_the_image(engine):
    with open_backend("docker", limits=LIMITS) as s:
        r = s.execute(CODE)
        assert r.error is None, r.error
        assert r.stdout.strip() == "[-1, 3] 10 18446744073709551616"
        # the interpreter's own dist-packages (the worker runs python3 -E -s: site stays on), read-only
        r = s.execute("import os, sympy\nhome = os.path.dirname(os.path.dirname(sympy.__file__))\nprint(home)\n"
                      "open(os.path.join(home, 'x'), 'w')")
        assert r.stdout.strip() == "/usr/lib/python3/dist-packages"
        assert r.error is not None and r.error.type in ("OSError", "PermissionError"), r.error


def test_doctor_says_where_the_packages_come_from(engine):
    from typer.testing import CliRunner

    from tests.sandbox.test_cli_bench import _rows
    from tinyact.cli import app

    r = CliRunner().invoke(app, ["sandbox", "doctor", "--backend", "docker"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    rows = _rows(r.output)
    assert rows["docker engine and image"] == "ok" and rows["packages: numpy, sympy, mpmath"] == "ok", r.output
    assert "from the interpreter's own /usr/lib/python3/dist-packages" in r.output


@pytest.fixture
def relabelled(engine):
    """make(**labels): a copy of the sandbox image with these labels set (a real image, removed after)."""
    from tinyact.sandbox.docker import DEFAULT_IMAGE

    made = []

    def make(**labels: str) -> str:
        tag = f"tinyact-sandbox-test:{uuid.uuid4().hex[:8]}"
        lines = [f"FROM {DEFAULT_IMAGE}"] + [f"LABEL {k}={json.dumps(v)}" for k, v in labels.items()]
        engine.images.build(fileobj=io.BytesIO("\n".join(lines).encode()), tag=tag, rm=True, network_mode="none")
        made.append(tag)
        return tag

    yield make
    for tag in made:
        engine.images.remove(tag, force=True)


def test_an_image_of_another_recipe_is_refused_and_rebuilt(engine, relabelled):
    from tests.sandbox.docker_engine import needs_build
    from tinyact.sandbox import open_session
    from tinyact.sandbox.docker import DEFAULT_IMAGE, IMAGE_LABEL, RECIPE_LABEL, docker_available, image_recipe

    # the image the helper made (or found) is this checkout's recipe
    assert engine.images.get(DEFAULT_IMAGE).labels[RECIPE_LABEL] == image_recipe()
    assert docker_available()[0] and not needs_build(DEFAULT_IMAGE)

    old = relabelled(**{RECIPE_LABEL: "0123456789abcdef"})
    ok, why = docker_available(old)
    assert not ok and "recipe 0123456789abcdef" in why and "rebuild it with `tinyact sandbox image`" in why
    with pytest.raises(SandboxError, match="rebuild it with `tinyact sandbox image`") as e:
        open_session(backend="docker", image=old)
    assert e.value.code == SandboxErrorCode.BACKEND_UNAVAILABLE
    assert needs_build(old)
    # an image from before recipes were labelled (a label cannot be unset: set empty)
    before = relabelled(**{RECIPE_LABEL: ""})
    assert "recipe unlabelled" in docker_available(before)[1] and needs_build(before)

    # the API image says it is no sandbox image: refused, and never built over
    api = relabelled(**{IMAGE_LABEL: ""})
    ok, why = docker_available(api)
    assert not ok and "is not a sandbox image" in why and not needs_build(api)
    assert needs_build(f"tinyact-sandbox-test:absent-{uuid.uuid4().hex[:6]}")
