"""Faults never crash a run: each fault class, through Agent.run with a ReplayEngine and
the real sandbox, at k=1 and k=4; the run ends with the right answer and the faulty step
shows what happened (an error the model can read, and whether the sandbox was rebuilt)."""

from __future__ import annotations

import pytest

from tinyact import Agent, ReplayEngine
from tinyact.sandbox import Limits
from tests.sandbox.backends import open_backend
from tests.sandbox.faults import FAULTS, Outside, script

LIMITS = Limits(memory_mb=256, cpu_s=5, timeout_s=5, processes=48, scratch_mb=64)
# What the step must show: "kept" (no rebuild; the error type the code's candidate gets, or
# None) or "rebuilt" (the sandbox died and was rebuilt). Which one depends on the isolation:
# under "none" the code can kill init (not PID 1 there), so kill(-1) and killpg rebuild.
KEPT = {
    "kill of parent": None,
    "kill(-1)": None,
    "killpg of the sandbox": None,
    "OOM kill of the code": "KilledError",
    "OOM kill of the holder": None,
    "slow tool": "TimeoutError",
}
SIBLING_KILLERS = {"kill(-1)", "killpg of the sandbox"}


def run_fault(fault: str, k: int, monkeypatch, backend: str = "process") -> tuple:
    import tinyact.sandbox.session as session_mod

    monkeypatch.setattr(session_mod, "GRACE_S", 0.5)  # so the slow tool outlasts timeout + grace
    outside = Outside(lambda tools: open_backend(backend, tools=tools, limits=LIMITS))
    engine = ReplayEngine(script(fault, k))
    agent = Agent(engine, tools=outside.tools(), sandbox=outside.opener, samples=k,
                  temperature=0.5 if k > 1 else 0.0, exec_timeout=1.0 if fault == "slow tool" else 5.0)  # fmt: skip
    try:
        result = agent.run("answer 42")
    finally:
        agent.sessions.close_all()
    engine.assert_consumed()
    return result, outside


@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_does_not_crash_the_run(backend, fault, k, monkeypatch):
    result, outside = run_fault(fault, k, monkeypatch, backend)
    assert result.answer == 42, [s.observation for s in result.steps]
    step = result.steps[1]
    isolation = outside.sessions[0].isolation
    if k == 1:
        faulty = step.result
    else:
        faulty = step.candidates[0].result
        # The vote went on: it chose a candidate that finished (the benign group, or the faulty
        # one alone when its kill took the benign ones down with their forks: then they show it).
        chosen = next(c for c in step.candidates if c.chosen)
        if any(c.outcome_key for c in step.candidates):
            assert chosen.result.error is None and step.result == chosen.result
        else:  # the whole sandbox died (docker: kill(-1) takes the stream's mux): rebuilt
            assert step.sandbox_rebuilt and all(c.result.error.type == "SandboxDied" for c in step.candidates)
        for cand in step.candidates[1:]:
            err = cand.result.error
            assert err is None or err.type == "SandboxDied", cand
    expected = KEPT.get(fault, "rebuilt")
    if isolation in ("none", "docker") and fault in SIBLING_KILLERS:
        # init is not PID 1 there: the code may kill it (docker: the mux too), which is healed
        expected = "kept or rebuilt"
    if expected == "kept or rebuilt":
        assert faulty.error is None or faulty.error.type == "SandboxDied", faulty
        assert k > 1 or step.sandbox_rebuilt == (faulty.error is not None)
    elif expected == "rebuilt":
        assert faulty.error is not None and faulty.error.type == "SandboxDied", faulty
        assert faulty.rolled_back
        if k == 1:
            assert step.sandbox_rebuilt and "SandboxDied: the sandbox died" in step.observation
            assert len(outside.sessions) >= 2  # a new sandbox, the committed code replayed in it
    else:
        assert (faulty.error.type if faulty.error else None) == expected, faulty
        if k > 1 and fault in SIBLING_KILLERS:
            # The faulty candidate may also kill its siblings' processes, the winner's among
            # them, after the winner answered: then the winner's state is rebuilt (its code
            # replayed), which the step records.
            assert step.sandbox_rebuilt == (len(outside.sessions) > 1)
        else:
            assert not step.sandbox_rebuilt and len(outside.sessions) == 1  # prevented: the state was kept


def test_registry_never_hands_back_a_dead_session():
    from tinyact.agents.registry import SessionRegistry

    registry = SessionRegistry(lambda tools: open_backend("process", tools=tools, limits=LIMITS), {})
    steps = [
        {"action": {"code": "x = 41"}, "result": {"stdout": ""}},
        {"action": {"code": "x = 0"}, "result": {"error": {"type": "TimeoutError"}, "rolled_back": True}},
        {"action": {"code": "y = x + 1"}, "result": {"stdout": ""}},
    ]
    try:
        first = registry.get("run", steps, timeout=2.0)
        assert registry.replayed["run"] == 2  # the rolled-back step was not replayed
        assert first.execute("y").value == "42"
        first._sandbox.terminate()  # it dies under the registry
        second = registry.get("run", steps, timeout=2.0)
        assert second is not first and not second.closed
        assert second.execute("x, y").value == "(41, 42)" and registry.rebuilds["run"] == 1
    finally:
        registry.close_all()


def test_select_closes_every_fork_when_a_candidate_fails():
    """Without healing, a dead candidate raises; the forks made for the others are closed anyway."""
    from tinyact.agents.consistency import select_candidates
    from tinyact.errors import SandboxError
    from tinyact.schema import Completion
    from tests.sandbox.faults import act

    with open_backend("process", limits=LIMITS) as s:
        s.execute("x = 1")
        assert s._sandbox._refs == 1
        garbage = "channel garbage"
        completions = [Completion(text=act(FAULTS[garbage]), finish_reason="stop")]
        completions += [Completion(text=act("print('ok')"), finish_reason="stop")] * 3
        with pytest.raises(SandboxError):
            select_candidates(s, completions, timeout=5.0)
        assert s._sandbox._refs == 1  # only the session itself: no fork leaked
        assert s.execute("x").value == "1"
