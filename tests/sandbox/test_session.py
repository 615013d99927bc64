"""Behaviour of a sandbox session, run against every backend available here."""

from __future__ import annotations

import threading
import time

import pytest

from tinyact.errors import ConfigError, SandboxError, SandboxErrorCode
from tinyact.sandbox import Limits
from tests.sandbox.backends import open_backend


def test_variables_persist_and_last_expression_value(session):
    assert session.execute("x = 41\ndef inc(v):\n    return v + 1").ok
    r = session.execute("y = inc(x)\ny")
    assert r.ok and r.value == "42"
    assert session.execute("[x, y]").value == "[41, 42]"
    assert session.execute("x = None\nx").value is None  # None shows nothing, as in a REPL
    assert session.execute("z = 1").value is None


def test_stdout_stderr_and_subprocess_output(session):
    r = session.execute("import sys, subprocess\nprint('out')\nprint('err', file=sys.stderr)\n"
                        "subprocess.run(['echo', 'from-child'])")
    assert r.ok, r.error
    assert r.stdout == "out\nfrom-child\n"
    assert r.stderr == "err\n"


def test_final_answer_cannot_be_swallowed(session):
    r = session.execute("try:\n    final_answer({'a': [1, 2]})\nexcept Exception:\n    print('swallowed')")
    assert r.called_final_answer and r.final_answer == {"a": [1, 2]}
    assert "swallowed" not in r.stdout
    r = session.execute("final_answer(object)")  # not JSON: its repr
    assert r.called_final_answer and r.final_answer == "<class 'object'>"
    assert not session.execute("1").called_final_answer


def test_error_traceback_is_trimmed_to_user_code(session):
    r = session.execute("def f(d):\n    return d['missing']\nf({})")
    assert r.error is not None and r.error.type == "KeyError"
    assert r.error.message == "'missing'"
    tb = r.error.traceback
    assert 'File "<code>", line 3' in tb and 'File "<code>", line 2' in tb and "return d['missing']" in tb
    assert "worker" not in tb and "tinyact" not in tb


def test_syntax_error_is_a_result(session):
    r = session.execute("def broken(:\n  pass")
    assert r.error is not None and r.error.type == "SyntaxError"
    assert session.execute("1 + 1").value == "2"


def test_non_utf8_output_is_replaced(session):
    r = session.execute("import os, sys\nsys.stdout.buffer.write(b'a\\xffb')\nsys.stdout.flush()\n"
                        "os.write(1, b'\\xc3(')\nprint('\\udcff')")
    assert r.ok, r.error
    assert r.stdout.startswith("a\ufffdb") and "\ufffd(" in r.stdout
    r.model_dump_json()  # serializable


def test_giant_print_is_truncated_with_marker(backend):
    with open_backend(backend, limits=Limits(output_bytes=1000, timeout_s=5)) as s:
        r = s.execute("print('x' * 10**6)\nkeep = 1")
        assert r.ok and r.truncated
        assert len(r.stdout.encode()) < 1200
        assert "truncated at 1000 bytes" in r.stdout
        assert s.execute("keep").value == "1"


def test_timeout_keeps_state_from_before(session):
    session.execute("counter = 1")
    t = time.monotonic()
    r = session.execute("counter = 99\nprint('started')\nimport time\ntime.sleep(10**9)", timeout=1)
    assert time.monotonic() - t < 4
    assert r.error is not None and r.error.type == "TimeoutError"
    assert "started" in r.stdout  # output from before the kill is kept
    assert session.execute("counter").value == "1"


def test_fork_sees_parent_state_and_is_isolated(session):
    session.execute("data = [1]\nopen('note.txt', 'w').write('parent')")
    a, b = session.fork(), session.fork()
    try:
        assert a.execute("data").value == "[1]"
        a.execute("data.append(2)\nopen('note.txt', 'w').write('a')\nopen('only_a', 'w').write('1')")
        b.execute("data.append(3)")
        assert a.execute("data").value == "[1, 2]"
        assert b.execute("data").value == "[1, 3]"
        assert session.execute("data").value == "[1]"
        # files in the scratch dir are per fork, too
        assert session.execute("open('note.txt').read()").value == "'parent'"
        assert b.execute("import os; open('note.txt').read(), os.path.exists('only_a')").value == "('parent', False)"
        assert a.execute("open('note.txt').read()").value == "'a'"
    finally:
        a.close()
        b.close()
    assert session.execute("data").value == "[1]"


def test_adopt_makes_the_fork_the_session(session):
    session.execute("v = 'old'")
    f = session.fork()
    f.execute("v = 'new'")
    session.adopt(f)
    assert f.closed
    assert session.execute("v").value == "'new'"
    g = session.fork()  # the adopted state forks on
    assert g.execute("v").value == "'new'"
    g.close()


def test_forks_execute_concurrently(session):
    session.execute("import time")
    forks = [session.fork() for _ in range(8)]
    results = [None] * 8

    def run(i):
        results[i] = forks[i].execute("time.sleep(0.5)\ni_am = %d\ni_am" % i)

    t = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - t
    for f in forks:
        f.close()
    assert [r.value for r in results] == [str(i) for i in range(8)]
    assert elapsed < 2.5, f"8 x 0.5 s took {elapsed:.2f} s: not concurrent"


def test_tools_run_on_the_host(backend):
    calls = []

    def search(query, k=2):
        calls.append((query, k))
        return [f"{query}-{i}" for i in range(k)]

    def broken():
        raise ValueError("index offline")

    with open_backend(backend, tools={"search": search, "broken": broken}) as s:
        r = s.execute("hits = search('q', k=3)\nhits")
        assert r.value == "['q-0', 'q-1', 'q-2']" and calls == [("q", 3)]
        r = s.execute("try:\n    broken()\nexcept ToolError as e:\n    print('caught', e)")
        assert r.ok and "caught broken failed: ValueError: index offline" in r.stdout
        r = s.execute("broken()")
        assert r.error.type == "ToolError" and "index offline" in r.error.message
        r = s.execute("search(object())")
        assert r.error.type == "TypeError" and "JSON" in r.error.message


def test_tools_from_parallel_forks(backend):
    lock = threading.Lock()
    seen = []

    def echo(x):
        time.sleep(0.2)
        with lock:
            seen.append(x)
        return x * 2

    with open_backend(backend, tools={"echo": echo}) as s:
        forks = [s.fork() for _ in range(8)]
        out = [None] * 8
        threads = [
            threading.Thread(target=lambda i=i: out.__setitem__(i, forks[i].execute(f"echo({i})").value))
            for i in range(8)
        ]
        t = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert time.monotonic() - t < 1.5
        assert out == [str(2 * i) for i in range(8)]
        assert sorted(seen) == list(range(8))
        for f in forks:
            f.close()


def test_dead_worker_is_reported_and_a_new_session_opens(backend):
    s = open_backend(backend)
    s.execute("x = 1")
    s._sandbox.terminate()  # the whole sandbox dies under the session
    with pytest.raises(SandboxError) as e:
        s.execute("x")
    assert e.value.code == SandboxErrorCode.WORKER_DIED
    assert s.closed
    with pytest.raises(SandboxError) as e:
        s.execute("x")
    assert e.value.code == SandboxErrorCode.CLOSED
    with open_backend(backend) as s2:
        assert s2.execute("2 * 21").value == "42"


def test_session_survives_code_that_kills_its_parent(session):
    session.execute("keep = 7")
    session.execute("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
    assert session.execute("keep").value == "7"


def test_close_is_idempotent_and_forks_outlive_parent(backend):
    s = open_backend(backend)
    s.execute("a = 5")
    f = s.fork()
    s.close()
    s.close()
    assert f.execute("a").value == "5"
    f.close()


def test_limits_validation():
    with pytest.raises(ConfigError, match="memory_mb must be >= 64, got 0"):
        Limits(memory_mb=0)
    with pytest.raises(ConfigError, match="timeout_s must be > 0"):
        Limits(timeout_s=0)
    with pytest.raises(ConfigError, match="processes must be an int"):
        Limits(processes=2.5)  # type: ignore[arg-type]


def test_bad_arguments():
    from tinyact.sandbox import open_session

    with pytest.raises(ValueError, match="identifier"):
        open_session(tools={"not a name": print})
    with pytest.raises(SandboxError, match="unknown sandbox backend"):
        open_session(backend="vm")  # type: ignore[arg-type]


def test_fork_many_gives_independent_sessions(session):
    session.execute("n = 10")
    forks = session.fork_many(4)
    try:
        for i, f in enumerate(forks):
            f.execute(f"n += {i}\nopen('mine', 'w').write('{i}')")
        assert [f.execute("n, open('mine').read()").value for f in forks] == [f"({10 + i}, '{i}')" for i in range(4)]
        assert session.execute("import os; n, os.path.exists('mine')").value == "(10, False)"
    finally:
        for f in forks:
            f.close()
    with pytest.raises(ValueError):
        session.fork_many(0)


def test_fork_beyond_the_process_limit_fails_cleanly(backend):
    with open_backend(backend, limits=Limits(processes=12, timeout_s=5)) as s:
        s.execute("v = 1")
        with pytest.raises(SandboxError, match="forks could be made"):
            s.fork_many(20)
        assert s.execute("v").value == "1"  # the session is fine
        f = s.fork()  # and forks again once the failed ones are gone
        assert f.execute("v").value == "1"
        f.close()


def test_execute_waits_for_slots_that_closing_forks_free(backend):
    """Forks closed while an execute finds the process limit reached: it waits for them to end.

    With every slot taken, the last forks have no executor ready (on docker's
    pids limit; bwrap's RLIMIT_NPROC leaves them one). Closing the others frees
    slots a moment later; the execute must wait for them, not fail at once.
    """
    with open_backend(backend, limits=Limits(processes=12, timeout_s=5)) as s:
        s.execute("v = 1")
        forks = []
        with pytest.raises(SandboxError, match="fork failed|forks could be made"):
            while len(forks) < 12:
                forks.append(s.fork())
        time.sleep(0.5)  # the forks' own executors are forked, as far as slots allow
        last, others = forks[-1], forks[:-1]
        closer = threading.Timer(0.3, lambda: [f.close() for f in others])
        closer.start()
        try:
            result = last.execute("v")
        finally:
            closer.join()
            last.close()
        assert result.error is None and result.value == "1"
