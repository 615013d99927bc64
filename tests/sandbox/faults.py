"""The fault classes a code action can inflict on its sandbox, and the host-side tools
that inflict the ones only the outside can (the OOM killer, an operator's kill).

Shared by tests/sandbox/test_faults.py and bench/faults.py (the README's reliability table).
Each fault is a code action for step 2 of a three-step run that sets ``x = 41``
first and answers ``x + 1`` last.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

RAW_SEND = (
    "import os, stat, struct\n"
    "def _isock(fd):\n    try:\n        return stat.S_ISSOCK(os.fstat(fd).st_mode)\n"
    "    except OSError:\n        return False\n"
    "chan = [fd for fd in range(4, 256) if _isock(fd)][0]\n"
    "os.write(chan, {payload})\nimport time\ntime.sleep(1)"
)

FAULTS: dict[str, str] = {
    "kill of parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time\ntime.sleep(0.3)",
    "kill(-1)": "import os, signal\nos.kill(-1, signal.SIGKILL)",
    "killpg of the sandbox": "import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)",
    "OOM kill of the code": "import os\noom_kill(os.getpid())\nx = 0",
    "OOM kill of the holder": "import os\noom_kill(os.getppid())\nimport time\ntime.sleep(0.3)",
    "outside SIGKILL of the worker": "kill_sandbox()\nimport time\ntime.sleep(1)\nx = 0",
    "channel garbage": RAW_SEND.format(payload="b'garbage' * 100"),
    "deep JSON": RAW_SEND.format(
        payload="(lambda d: struct.pack('>I', len(d)) + d)(b'{\"op\": \"result\", \"v\": ' + b'[' * 10**5 + b']' * 10**5 + b'}')"
    ),
    "slow tool": "slow_tool(2.5)\nx = 0",
}
"""fault name -> the code of the faulty action."""


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it, by pid (empty below a process that is gone)."""
    import psutil

    try:
        return sorted([root, *(p.pid for p in psutil.Process(root).children(recursive=True))])
    except psutil.NoSuchProcess:
        return [root]


def host_pid(launcher: int, ns_pid: int) -> int | None:
    """The host pid of the sandbox process that sees itself as `ns_pid`."""
    for pid in process_tree(launcher):
        try:
            with open(f"/proc/{pid}/status") as fh:
                line = next(x for x in fh if x.startswith("NSpid:"))
        except (OSError, StopIteration):
            continue
        if int(line.split()[-1]) == ns_pid:
            return pid
    return None


class Outside:
    """Host-side tools that play the OOM killer and an operator, for sessions it opens."""

    def __init__(self, open_session: Callable[..., Any]) -> None:
        self._open = open_session
        self.sessions: list[Any] = []

    def opener(self, tools: dict) -> Any:
        s = self._open(tools=tools)
        self.sessions.append(s)
        return s

    def tools(self) -> list[Callable[..., Any]]:
        def oom_kill(pid: int) -> bool:
            """SIGKILL the sandbox process `pid` from outside, as the OOM killer would."""
            box = self.sessions[-1]._sandbox
            if box.backend == "docker":  # from a process of the container's own uid (no capabilities there)
                box.container.exec_run(["python3", "-c", f"import os; os.kill({pid}, 9)"], user=f"{box.uid}:{box.uid}")
                time.sleep(0.2)
                return True
            target = host_pid(box.proc.pid, pid)
            if target is None:
                return False
            os.kill(target, signal.SIGKILL)
            time.sleep(0.2)
            return True

        def kill_sandbox() -> bool:
            """SIGKILL every process of the sandbox from outside (an operator's kill -9)."""
            box = self.sessions[-1]._sandbox
            if box.backend == "docker":
                box.container.kill()
                time.sleep(0.2)
                return True
            for pid in process_tree(box.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
            return True

        def slow_tool(seconds: float) -> float:
            """A host tool slower than the execute's timeout and the host's grace together."""
            time.sleep(seconds)
            return seconds

        return [oom_kill, kill_sandbox, slow_tool]


def act(code: str) -> str:
    return f"Thought: go\nCode:\n```py\n{code}\n```"


def script(fault: str, k: int) -> list:
    """x = 41; the fault (at k > 1: as candidate 0, with k - 1 benign candidates); final_answer(x + 1)."""
    faulty = act(FAULTS[fault])
    middle = faulty if k == 1 else [faulty] + [act("print('benign')")] * (k - 1)
    return [act("x = 41"), middle, act("final_answer(x + 1)")]


def run(fault: str, k: int, isolation: str) -> dict:
    """One three-step run with `fault` at step 2: what the run and the step show."""
    import tinyact.sandbox.session as session_mod
    from tinyact import Agent, ReplayEngine
    from tinyact.sandbox import Limits, open_session

    session_mod.GRACE_S = 0.5  # so that the slow tool outlasts timeout + grace
    limits = Limits(memory_mb=256, cpu_s=5, timeout_s=5, processes=48, scratch_mb=64)
    kw = {"backend": "docker"} if isolation == "docker" else {"isolation": isolation, "allow_unsafe": True}
    outside = Outside(lambda tools: open_session(tools=tools, limits=limits, **kw))
    agent = Agent(ReplayEngine(script(fault, k)), tools=outside.tools(), sandbox=outside.opener, samples=k,
                  temperature=0.5 if k > 1 else 0.0, exec_timeout=1.0 if fault == "slow tool" else 5.0)  # fmt: skip
    t = time.perf_counter()
    try:
        result = agent.run("answer 42")
    except Exception as e:  # noqa: BLE001 - what the table is about
        return {"outcome": f"crashed: {type(e).__name__}", "seconds": time.perf_counter() - t}
    finally:
        agent.sessions.close_all()
    step = result.steps[1]
    faulty = step.result if k == 1 else step.candidates[0].result
    shown = faulty.error.type if faulty and faulty.error else "-"
    state = "rebuilt" if step.sandbox_rebuilt or len(outside.sessions) > 1 else "kept"
    ok = result.answer == 42
    return {"outcome": state if ok else f"wrong answer {result.answer!r}", "shown": shown,
            "seconds": time.perf_counter() - t}  # fmt: skip


def main() -> None:
    """Print the README's reliability table: `python -m tests.sandbox.faults [isolation ...]`."""
    import sys

    from tinyact.sandbox.process import probe_isolation

    isolations = sys.argv[1:] or [n for n in ("bwrap", "unshare", "none") if probe_isolation()[n][0]]
    if "docker" in isolations:
        from tests.sandbox.docker_engine import ensure_docker

        reason = ensure_docker()  # starts a dockerd of its own when none answers
        if reason:
            sys.exit(f"docker: {reason}")
    print("| fault | " + " | ".join(f"{iso} k=1 | {iso} k=4" for iso in isolations) + " |")
    print("|---|" + "---|---|" * len(isolations))
    for fault in FAULTS:
        cells = []
        for iso in isolations:
            for k in (1, 4):
                r = run(fault, k, iso)
                cells.append(f"{r['outcome']} ({r.get('shown', '')})")
        print(f"| {fault} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
