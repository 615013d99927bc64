"""Reusable sandboxes (the API's opt-in ``--sandbox-reuse``): a reset leaves nothing of a run for the next.

A run's session is a fork of the sandbox's template; after it closes,
``reset()`` on the template must kill every process the run left (setsid'd
ones, sessions still open), wipe every place the code could write (scratch,
/tmp, /dev, /dev/shm), remove System V IPC objects, and the next fork must
start from clean globals. POSIX message queues are refused, and init and the
template cannot be reached through /proc.
"""

from __future__ import annotations

import pytest

from tinyact.errors import SandboxError
from tinyact.sandbox import Limits, open_session
from tinyact.sandbox.process import probe_isolation

LIMITS = Limits(memory_mb=256, cpu_s=5, timeout_s=8, processes=48, scratch_mb=64)
ISOLATIONS = [name for name in ("bwrap", "unshare") if probe_isolation()[name][0]]

LEAVE = """
import ctypes, os, subprocess
x = 'left over'
home = os.environ['HOME']  # the session's scratch folder (also /scratch and /tmp under bwrap)
open(os.path.join(home, 'file'), 'w').write('secret')
os.makedirs(os.path.join(home, 'locked/inner'))
open(os.path.join(home, 'locked/inner/f'), 'w').write('s')
os.chmod(os.path.join(home, 'locked'), 0)
for path in ('/dev/shm/shared', '/dev/planted'):
    try:
        open(path, 'w').write('secret')
    except OSError:
        pass  # not writable under this isolation: nothing to wipe there
try:  # bwrap's /dev is a tmpfs the sandbox user owns: replace a symlink, lock /dev/shm
    os.unlink('/dev/stdin')
    os.symlink('/scratch/file', '/dev/stdin')
    os.chmod('/dev/shm', 0)
    os.chmod('/dev', 0o555)
except OSError:
    pass
libc = ctypes.CDLL(None, use_errno=True)
shm = libc.shmget(4321, 4096, 0o1666)
mq = libc.mq_open(b'/tinyact-q', 0o100 | 2, 0o600, None)
mq_errno = ctypes.get_errno()
sleeper = subprocess.Popen(['sleep', '300'], start_new_session=True)
print(shm >= 0, mq, mq_errno)
"""

PEEK = """
import os
procs = []
for p in os.listdir('/proc'):
    if p.isdigit():
        try:
            procs.append(open(f'/proc/{p}/cmdline', 'rb').read())
        except OSError:
            pass
print('x' in globals())
print(sorted(os.listdir(os.environ['HOME'])), os.path.exists(os.path.join(os.environ['HOME'], 'locked')))
print(os.path.exists('/dev/shm/shared'), os.path.exists('/dev/planted'))
print(os.readlink('/dev/stdin'), oct(os.stat('/dev/shm').st_mode & 0o7777))
print(any(c.startswith(b'sleep') for c in procs), len(procs))
print(len(open('/proc/sysvipc/shm').read().splitlines()) - 1)
for pid in (1, os.getppid()):
    try:
        open(f'/proc/{pid}/mem', 'rb').read(1)
        print('readable', pid)
    except OSError:
        print('closed')
"""


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_reset_leaves_nothing_of_a_run_for_the_next(isolation):
    template = open_session(isolation=isolation, limits=LIMITS, reusable=True)
    try:
        run = template.fork()
        before_dev = run.execute(PEEK).stdout.splitlines()[3]
        first = run.execute(LEAVE)
        assert first.error is None, first.error
        assert first.stdout.split() == ["True", "-1", "1"]  # SysV made; mq_open refused (EPERM)
        orphan = run.fork()  # a session of the run still open at the reset (a candidate left behind)
        assert orphan.execute("y = 1").error is None
        run.close()
        template.reset()
        with pytest.raises(SandboxError):  # killed with everything else
            orphan.execute("print(y)")
        nxt = template.fork()
        out = nxt.execute(PEEK)
        assert out.error is None, out.error
        lines = out.stdout.splitlines()
        assert lines[0] == "False"  # fresh globals
        assert lines[1] == "[] False"  # scratch wiped, the locked folder too
        assert lines[2] == "False False"  # /dev/shm and /dev
        assert lines[3] == before_dev  # the replaced symlink and /dev/shm's mode restored
        assert lines[4].startswith("False")  # no sleeper left
        assert int(lines[4].split()[1]) <= 6  # init, template, its standby, this session's holder and executor
        assert lines[5] == "0"  # no System V segment
        assert lines[6:] == ["closed", "closed"]  # init and the template's holder: not readable
        nxt.close()
        template.reset()  # again, and the sandbox still serves
        again = template.fork()
        assert again.execute("print(1 + 1)").stdout.strip() == "2"
        again.close()
    finally:
        template.close()


def test_reset_is_refused_where_it_cannot_hold():
    plain = open_session(limits=LIMITS)
    try:
        with pytest.raises(SandboxError, match="not started reusable"):
            plain.reset()
        assert plain.execute("print(6 * 7)").stdout.strip() == "42"  # refused, and untouched
    finally:
        plain.close()
    with pytest.raises(SandboxError, match="pid namespace"):
        open_session(isolation="none", limits=LIMITS, allow_unsafe=True, reusable=True)
