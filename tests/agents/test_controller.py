"""The step loop, driven by ReplayEngine, executing in the real sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyact import Agent, ReplayEngine
from tinyact.agents.observation import RETRY_HINT
from tinyact.agents.trajectory import append_jsonl, read_jsonl, to_messages
from tinyact.errors import ConfigError, ReplayError
from tinyact.schema import Step


def act(code: str, thought: str = "go") -> str:
    return f"Thought: {thought}\nCode:\n```py\n{code}\n```"


def make(script, **kw) -> tuple[Agent, ReplayEngine]:
    engine = ReplayEngine(script)
    return Agent(engine, **kw), engine


def test_final_answer_ends_the_run_and_every_step_is_recorded():
    agent, engine = make([act("x = 12345 * 6789\nprint(x)"), act("final_answer(x)")])
    result = agent.run("What is 12345 * 6789?")
    assert result.answer == 83810205 and result.end_reason == "final_answer"
    assert [s.index for s in result.steps] == [0, 1]
    assert "83810205" in result.steps[0].observation
    assert result.steps[1].result.called_final_answer
    assert result.trajectory.prompt_version == "full-v2"
    assert result.trajectory.usage.total_tokens > 0
    engine.assert_consumed()
    assert engine.calls[0]["stop"] == ["<end_code>", "Observation:", "Calling tools:"]
    assert len(agent.sessions) == 0  # the run's sandbox was closed


def test_max_steps_then_one_greedy_final_answer_call():
    agent, engine = make(
        [["print(1)", "print(1)", "print(2)"], ["print(3)"] * 3, "Final answer: 7"],
        max_steps=2, samples=3, temperature=0.5,
    )
    # samples=3 with unparseable candidates: the first one is kept, its error observed.
    result = agent.run("task")
    assert result.end_reason == "max_steps" and result.answer == "7"
    last = engine.calls[-1]
    assert last["n"] == 1 and last["sampling"].temperature == 0
    assert result.trajectory.metadata["final_answer_call_output"] == "Final answer: 7"


def test_time_budget():
    agent, engine = make([act("print(1)")], time_budget=1e-9)
    result = agent.run("task")
    assert result.end_reason == "time_budget" and result.steps == [] and engine.calls == []


def test_token_budget():
    agent, engine = make([act("print(1)"), act("print(2)")], token_budget=1)
    result = agent.run("task")
    assert result.end_reason == "token_budget" and len(result.steps) == 1
    assert engine.remaining == 1


def test_exception_becomes_an_observation_and_the_loop_goes_on():
    agent, _ = make([act("y = 1 / 0"), act("final_answer('recovered')")])
    result = agent.run("task")
    first = result.steps[0]
    assert first.error.startswith("ZeroDivisionError")
    assert "ZeroDivisionError: division by zero" in first.observation and RETRY_HINT in first.observation
    assert result.answer == "recovered"


def test_missing_code_asks_for_code():
    agent, _ = make(["Thought: the answer is obviously 4.", act("final_answer(4)")])
    result = agent.run("task")
    assert result.steps[0].result is None and "has no code" in result.steps[0].observation
    assert result.answer == 4


def test_several_code_blocks_run_in_order():
    text = "Thought: two parts\n```py\na = [1, 2, 3]\n```\nand\n```py\nfinal_answer(sum(a))\n```"
    agent, _ = make([text])
    assert agent.run("task").answer == 6


def test_user_tools_are_callable_from_code():
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    agent, _ = make([act("final_answer(add(40, 2))")], tools=[add])
    assert "def add(a: int, b: int) -> int:" in agent.system_prompt
    assert agent.run("task").answer == 42


def test_stream_yields_steps_in_order_then_the_result():
    agent, _ = make([act("print('a')"), act("print('b')"), act("final_answer(3)")])
    items = list(agent.stream("task"))
    assert [type(i).__name__ for i in items] == ["Step", "Step", "Step", "AgentResult"]
    assert [i.index for i in items[:3]] == [0, 1, 2]
    assert items[-1].answer == 3


def test_resume_after_a_crash_with_sqlite(tmp_path: Path):
    db = tmp_path / "runs.sqlite"
    agent, _ = make([act("x = 41\nprint(x)")], checkpointer=db)
    with pytest.raises(ReplayError):  # the "model" dies after one step
        agent.run("task", thread_id="t1")
    agent.close()
    # A new process would have a new registry: the sandbox state must be rebuilt.
    resumed, engine = make([act("final_answer(x + 1)")], checkpointer=db)
    result = resumed.run("task", thread_id="t1")
    assert result.answer == 42 and len(result.steps) == 2
    assert resumed.sessions.replayed["t1"] == 1
    assert len(engine.calls) == 1  # step 0 was not proposed again
    again = resumed.run("task", thread_id="t1")  # finished: the stored result comes back
    assert again.answer == 42 and len(engine.calls) == 1


@pytest.mark.parametrize("durable", [False, True])
def test_integers_beyond_64_bits_survive_the_checkpointer(tmp_path: Path, durable: bool):
    # GSM-Hard and the code tasks produce answers like 7**500; msgpack stops at 64 bits.
    kw = {"checkpointer": tmp_path / "runs.sqlite"} if durable else {}
    agent, _ = make([act("x = 7 ** 500\nprint(x)"), act("final_answer(x)")], **kw)
    result = agent.run("task", thread_id="big")
    assert result.answer == 7**500 and result.end_reason == "final_answer"
    assert str(7**500) in result.steps[0].observation
    if durable:  # the stored run loads back with the exact value
        again, engine = make([], **kw)
        assert again.run("task", thread_id="big").answer == 7**500 and engine.calls == []


def test_approval_edit_reject_approve():
    agent, _ = make([act("final_answer('bad')"), act("final_answer(2)"), act("final_answer(1)")], approve_code=True)
    decisions = iter(["reject", {"action": "edit", "code": "final_answer('edited')"}])
    seen = []

    def approve(request):
        seen.append(request["code"])
        return next(decisions)

    result = agent.run("task", approve=approve)
    assert seen == ["final_answer('bad')", "final_answer(2)"]
    assert [s.approval for s in result.steps] == ["rejected", "edited"]
    assert result.steps[0].result is None and "rejected" in result.steps[0].observation
    assert result.answer == "edited"
    with pytest.raises(ConfigError, match="approve="):
        agent.run("task")


def test_trajectory_round_trip_and_replay(tmp_path: Path):
    agent, _ = make([act("v = 'abc'.upper()\nprint(v)"), act("final_answer(v)")])
    result = agent.run("Shout abc")
    path = tmp_path / "t.jsonl"
    append_jsonl(path, [result.trajectory])
    with open(path, "a") as f:
        f.write('{"task": "half a line')  # a crash mid-write
    (loaded,) = list(read_jsonl(path))
    assert loaded == result.trajectory
    replayed = Agent(ReplayEngine.from_trajectory(loaded)).run(loaded.task)
    assert replayed.answer == "ABC"
    assert [s.observation for s in replayed.steps] == [s.observation for s in loaded.steps]


def test_to_messages_paper_format():
    agent, _ = make([act("print(2)"), act("final_answer(2)")])
    msgs = to_messages(agent.run("two?").trajectory, system_prompt="short")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[0]["content"] == "short" and msgs[1]["content"] == "New task:\ntwo?"
    assert msgs[2]["content"].endswith("```<end_code>")
    assert msgs[3]["content"].startswith("Observation:\nExecution logs:\n2")


def test_graph_topology_snapshot():
    agent, _ = make([])
    snapshot = Path(__file__).with_name("graph.mmd")
    drawn = agent.graph.get_graph().draw_mermaid(with_styles=False)
    assert drawn == snapshot.read_text()


def test_bad_config_is_a_clear_error():
    with pytest.raises(ConfigError, match="max_steps must be >= 1, got 0"):
        make([], max_steps=0)
    with pytest.raises(ConfigError, match="needs temperature > 0"):
        make([], samples=4, temperature=0)
    with pytest.raises(ConfigError, match="task must be a non-empty string"):
        make([])[0].run("  ")


def test_cancel_kills_running_code_and_ends_with_cancelled():
    import threading

    agent, _ = make([act("import time\ntime.sleep(30)"), act("final_answer(1)")], exec_timeout=60)
    cancel = threading.Event()
    started = []

    def stop_soon():
        import time

        while not agent.sessions._sessions:
            time.sleep(0.01)
        started.append(True)
        time.sleep(0.5)
        cancel.set()
        for run_id in list(agent.sessions._sessions):
            agent.sessions.close(run_id)

    threading.Thread(target=stop_soon, daemon=True).start()
    items = list(agent.stream("task", cancel=cancel))
    result = items[-1]
    assert started and result.end_reason == "cancelled" and result.trajectory.seconds < 20
