"""`tinyact sandbox ...` commands."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Inspect the code sandbox.", no_args_is_help=True)

# Runs inside a fresh session; prints one "name ok detail" line per check.
_CHECKS = r"""
import os, socket, ctypes, resource
def line(name, ok, detail=''):
    print(name, 'ok' if ok else 'FAIL', detail, sep='\t')
opened = []
for family in range(64):
    try:
        socket.socket(family, socket.SOCK_STREAM).close(); opened.append(family)
    except OSError:
        pass
line('seccomp: sockets of AF_UNIX only', opened in ([], [1]), f'families that open: {opened}')
libc = ctypes.CDLL(None)
line('seccomp: ptrace/mount/unshare denied', libc.ptrace(16, 1, 0, 0) == -1 and libc.unshare(0x10000000) == -1
     and libc.mount(b'none', b'/', b'tmpfs', 0, None) == -1)
lim = {n: resource.getrlimit(getattr(resource, 'RLIMIT_' + n))[1] for n in ('AS', 'CPU', 'FSIZE', 'NOFILE', 'NPROC')}
line('rlimits set', all(v != resource.RLIM_INFINITY for v in lim.values()), ', '.join(f'{k}={v}' for k, v in lim.items()))
line('unprivileged user', os.getuid() != 0, f'uid {os.getuid()} inside')
st = os.statvfs('.')
size_mb = st.f_blocks * st.f_frsize // 2**20
line('scratch size limited', size_mb <= SCRATCH_MB, f'{size_mb} MiB file system under the working directory')
seen = [p for p in HOST_PATHS if os.path.exists(p)]
line('host files hidden', not seen, 'visible: ' + ', '.join(seen) if seen else ', '.join(HOST_PATHS))
try:
    import site, numpy, sympy, mpmath
    own, where = {os.path.realpath(p) for p in site.getsitepackages()}, {}
    for m in (numpy, sympy, mpmath):
        where.setdefault(os.path.dirname(os.path.dirname(os.path.realpath(m.__file__))), []).append(
            f'{m.__name__} {m.__version__}')
    line('packages: numpy, sympy, mpmath', True, '; '.join(
        ', '.join(names) + (" from the interpreter's own " + d if d in own else ' from the packages folder '
                            + d + (f' (host: {PACKAGES_HOST})' if PACKAGES_HOST else '')) for d, names in where.items()))
except ImportError as e:
    line('packages: numpy, sympy, mpmath', False, f'{e}: {PACKAGES_HINT}')
line('no host environment', set(os.environ) <= {'PATH', 'LANG', 'LC_ALL', 'PYTHONDONTWRITEBYTECODE',
     'PYTHONIOENCODING', 'OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'HOME', 'TMPDIR', 'PWD', 'HOSTNAME'},
     ','.join(sorted(os.environ)))
"""


def _budget_row(backend: str, session) -> tuple[bool, str]:
    """Whether this sandbox's process limit is its own, and why (see tinyact.sandbox.uids)."""
    import os

    uid = getattr(session._sandbox, "host_uid", None) or getattr(session._sandbox, "uid", None)
    if backend == "docker":
        own = uid not in (None, 65534)
        return True, f"pids cgroup per container; host uid {uid}" + ("" if own else " (shared RLIMIT_NPROC)")
    if os.geteuid() == 0:
        return True, f"host uid {uid} of its own (reserved range): RLIMIT_NPROC counts this sandbox only"
    return False, (
        f"runs as you (uid {os.geteuid()}): RLIMIT_NPROC counts all your processes and sandboxes together; "
        "run as root (or use docker) for a budget per sandbox"
    )


def _host_paths() -> list[str]:
    """Host paths sandboxed code must not see: tinyact's code, this environment's packages, /etc/passwd, and
    the interpreter unless it is the system one under /usr that every sandbox runs (read-only, by design)."""
    import os
    import sysconfig

    paths = [str(Path(__file__).resolve().parent), sysconfig.get_paths()["purelib"], "/etc/passwd"]
    interpreter = os.path.realpath(sys.executable)
    if not interpreter.startswith("/usr/"):
        paths.append(interpreter)
    return paths


def _packages_source(backend: str) -> tuple[str | None, str]:
    """(the host folder the process backend's packages come from or None, what to do when they are missing)."""
    if backend == "docker":
        return None, "the image lacks them: rebuild it with `tinyact sandbox image`"
    from tinyact.sandbox.packages import installed

    return installed(), "run `tinyact sandbox packages`"


@app.command()
def doctor(
    backend: str = typer.Option("process", help="process or docker"),
    isolation: str = typer.Option("auto", help="process backend: auto, bwrap, unshare or none"),
) -> None:
    """Show the isolation the sandbox would use here, for this user, and which checks pass."""
    from rich.console import Console
    from rich.table import Table

    from tinyact.sandbox.process import best_isolation, probe_isolation

    console = Console()
    table = Table(title="tinyact sandbox doctor")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    mark = {True: "[green]ok[/green]", False: "[red]FAIL[/red]"}

    if backend == "process":
        probe = probe_isolation()
        for name in ("bwrap", "unshare"):
            works, detail = probe[name]
            table.add_row(f"isolation {name}", mark[works], detail)
        chosen = best_isolation() if isolation == "auto" else isolation
        import os

        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()} (not root)"
        table.add_row("chosen isolation", f"[bold]{chosen}[/bold]", f"bwrap > unshare > none, for {who}")
        if chosen == "none":
            console.print("[bold red]!!! no OS isolation here: sessions are refused unless allow_unsafe=True[/bold red]")
    else:
        from tinyact.sandbox.docker import docker_available

        ok, detail = docker_available()
        table.add_row("docker engine and image", mark[ok], detail)
        if not ok:
            console.print(table)
            raise typer.Exit(0)

    from tinyact.sandbox import open_session

    try:
        t = time.perf_counter()
        kw = {"isolation": isolation} if backend == "process" else {}
        with open_session(backend=backend, allow_unsafe=True, **kw) as s:  # type: ignore[arg-type]
            started = time.perf_counter() - t
            table.add_row("session starts", mark[True], f"{started * 1e3:.0f} ms, {s.isolation}, python {s.info.get('python')}")
            r = s.execute(f"HOST_PATHS = {_host_paths()!r}\nSCRATCH_MB = {s.limits.scratch_mb}\n"
                          + "PACKAGES_HOST = {!r}\nPACKAGES_HINT = {!r}\n".format(*_packages_source(backend)) + _CHECKS)
            for row in r.stdout.splitlines():
                name, result, detail = (row.split("\t") + ["", ""])[:3]
                table.add_row(name, mark[result == "ok"], detail)
            if r.error:
                table.add_row("checks ran", mark[False], f"{r.error.type}: {r.error.message}")
            own, detail = _budget_row(backend, s)
            table.add_row("process budget per sandbox", mark[own], detail)
            t = time.perf_counter()
            for _ in range(50):
                s.execute("pass")
            table.add_row("round trip", mark[True], f"{(time.perf_counter() - t) / 50 * 1e3:.2f} ms mean of 50")
    except Exception as e:  # noqa: BLE001 - the doctor reports, it does not crash
        table.add_row("session starts", mark[False], f"{type(e).__name__}: {e}")
    console.print(table)


@app.command()
def image(
    name: Optional[str] = typer.Argument(None, help="The image to build (tag; default: $TINYACT_SANDBOX_IMAGE, else "
                                                    "tinyact-sandbox:latest, the one the docker backend runs)."),
) -> None:
    """Build the docker backend's image offline: a minimal Debian (debootstrap) with python3, numpy and sympy.

    Needs root, debootstrap (installed with apt when missing) and a Docker engine; takes a few minutes.
    The image is labelled with the recipe's hash, so the docker backend refuses one an older tinyact built.
    """
    import os
    import subprocess

    from tinyact.console import fail
    from tinyact.errors import SandboxError
    from tinyact.sandbox.docker import DEFAULT_IMAGE, HERE, engine_client

    name = name or DEFAULT_IMAGE
    script = HERE / "build_image.sh"
    if not script.is_file():
        raise fail(f"{script} is missing: reinstall tinyact (the wheel ships it)", 1)
    if os.geteuid() != 0:
        raise fail("building the sandbox image needs root (debootstrap makes a Debian root file system): "
                   "run `sudo tinyact sandbox image`", 1)
    try:  # before minutes of debootstrap: the engine must answer
        engine_client().close()
    except SandboxError as e:
        raise fail(str(e), 1) from None
    code = subprocess.call(["bash", str(script), name])
    if code:
        raise fail(f"building {name} failed (exit {code}; the output above says where)", code)


@app.command()
def packages(force: bool = typer.Option(False, help="Reinstall even when the folder is complete.")) -> None:
    """Install numpy, sympy and mpmath for sandboxed code (one read-only folder per host, on every sandbox's path)."""
    from tinyact.console import fail
    from tinyact.errors import SandboxError
    from tinyact.sandbox.packages import SANDBOX_PACKAGES, install

    try:
        path = install(force=force)
    except SandboxError as e:
        raise fail(str(e), 1) from None
    print(f"{', '.join(SANDBOX_PACKAGES)}: {path}")
