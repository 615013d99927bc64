"""`tinyact sandbox ...` commands."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

app = typer.Typer(help="Inspect the code sandbox.", no_args_is_help=True)

# Runs inside a fresh session; prints one "name ok detail" line per check.
_CHECKS = r"""
import os, socket, ctypes, resource
def line(name, ok, detail=''):
    print(name, 'ok' if ok else 'FAIL', detail, sep='\t')
try:
    socket.socket(socket.AF_INET); line('seccomp: inet sockets denied', False)
except PermissionError:
    line('seccomp: inet sockets denied', True)
libc = ctypes.CDLL(None)
line('seccomp: ptrace/mount/unshare denied', libc.ptrace(16, 1, 0, 0) == -1 and libc.unshare(0x10000000) == -1
     and libc.mount(b'none', b'/', b'tmpfs', 0, None) == -1)
lim = {n: resource.getrlimit(getattr(resource, 'RLIMIT_' + n))[1] for n in ('AS', 'CPU', 'FSIZE', 'NOFILE', 'NPROC')}
line('rlimits set', all(v != resource.RLIM_INFINITY for v in lim.values()), ', '.join(f'{k}={v}' for k, v in lim.items()))
line('unprivileged user', os.getuid() != 0, f'uid {os.getuid()}')
line('host files hidden', not any(os.path.exists(p) for p in HOST_PATHS), ', '.join(HOST_PATHS))
line('no host environment', set(os.environ) <= {'PATH', 'LANG', 'LC_ALL', 'PYTHONDONTWRITEBYTECODE',
     'PYTHONIOENCODING', 'HOME', 'TMPDIR', 'PWD', 'HOSTNAME'}, ','.join(sorted(os.environ)))
"""


@app.command()
def doctor(
    backend: str = typer.Option("process", help="process or docker"),
) -> None:
    """Show the isolation the sandbox would use here and which checks pass."""
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
        chosen = best_isolation()
        table.add_row("chosen isolation", f"[bold]{chosen}[/bold]", "bwrap > unshare > none")
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
        with open_session(backend=backend, allow_unsafe=True) as s:  # type: ignore[arg-type]
            started = time.perf_counter() - t
            table.add_row("session starts", mark[True], f"{started * 1e3:.0f} ms, {s.isolation}, python {s.info.get('python')}")
            host_paths = [str(Path(__file__).resolve().parent), str(Path(sys.executable).resolve())]
            r = s.execute(f"HOST_PATHS = {host_paths!r}\n" + _CHECKS)
            for row in r.stdout.splitlines():
                name, result, detail = (row.split("\t") + ["", ""])[:3]
                table.add_row(name, mark[result == "ok"], detail)
            if r.error:
                table.add_row("checks ran", mark[False], f"{r.error.type}: {r.error.message}")
            t = time.perf_counter()
            for _ in range(50):
                s.execute("pass")
            table.add_row("round trip", mark[True], f"{(time.perf_counter() - t) / 50 * 1e3:.2f} ms mean of 50")
    except Exception as e:  # noqa: BLE001 - the doctor reports, it does not crash
        table.add_row("session starts", mark[False], f"{type(e).__name__}: {e}")
    console.print(table)
