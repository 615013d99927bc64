"""SFT data: TRL conversational JSONL from trajectories, and the paper's smolagents-style logs imported."""

from __future__ import annotations

import json

from tinyact.distill import import_smolagents_logs, student_system_prompt, write_sft_data
from tinyact.schema import CodeAction, ExecResult, Step, Trajectory


def _traj(qid: str) -> Trajectory:
    steps = [
        Step(index=0, model_output="Thought: Add them.\n\nCode:\n```py\nprint(2 + 3)\n```",
             action=CodeAction(code="print(2 + 3)"), observation="5", result=ExecResult(stdout="5\n")),
        Step(index=1, model_output="Thought: done\nCode:\n```py\nfinal_answer(5)\n```",
             action=CodeAction(code="final_answer(5)"), observation="5",
             result=ExecResult(called_final_answer=True, final_answer=5)),
    ]
    return Trajectory(id="run-" + qid, task="What is 2 + 3?", system_prompt="THE LONG TEACHER PROMPT",
                      prefix="Thought: Add them.\n\n", steps=steps, final_answer=5, end_reason="final_answer",
                      metadata={"question_id": qid})


def test_sft_jsonl_loads_with_datasets_in_trl_format(tmp_path):
    from datasets import load_dataset

    out = tmp_path / "sft.jsonl"
    assert write_sft_data([_traj("a"), _traj("b")], out) == 2
    ds = load_dataset("json", data_files=str(out), split="train")
    assert ds.column_names == ["id", "messages"] and ds[0]["id"] == "a"
    msgs = ds[0]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[0]["content"] == student_system_prompt("short")  # the short student prompt, not the teacher's
    assert msgs[1]["content"] == "New task:\nWhat is 2 + 3?"
    assert msgs[2]["content"].startswith("Thought: Add them.") and msgs[2]["content"].endswith("```<end_code>")
    assert msgs[3]["content"] == "Observation:\n5"
    assert msgs[4]["content"].endswith("final_answer(5)\n```<end_code>")


def _part(text: str) -> list[dict]:
    return [{"type": "text", "text": text}]


SMOLAGENTS_RECORD = {
    "question": "What is 2 + 3?",
    "answer": "5",
    "correct": True,
    "log_data": {
        "messages": [
            {"role": "system", "content": _part("You are an expert assistant who can solve any task using code.")},
            {"role": "user", "content": _part("New task:\nWhat is 2 + 3?")},
            {"role": "assistant", "content": _part("Thought: add.\nCode:\n```py\nprint(2 + 3)\n```<end_code>")},
            {"role": "tool-call", "content": _part(
                "Calling tools:\n[{'id': 'call_1', 'type': 'function', 'function': "
                "{'name': 'python_interpreter', 'arguments': 'print(2 + 3)'}}]")},
            {"role": "tool-response", "content": _part(
                "Call id: call_1\nObservation:\nExecution logs:\n5\nLast output from code snippet:\nNone")},
            {"role": "assistant", "content": _part("Thought: done.\nCode:\n```py\nfinal_answer(5)\n```")},
            {"role": "tool-call", "content": _part("Calling tools:\n[...]")},
            {"role": "tool-response", "content": _part("Call id: call_2\nObservation:\nLast output from code "
                                                       "snippet:\n5")},
        ]
    },
}


def test_import_smolagents_logs(tmp_path):
    path = tmp_path / "released.jsonl"
    wrong = {**SMOLAGENTS_RECORD, "correct": False}
    plain = SMOLAGENTS_RECORD["log_data"]["messages"]  # a bare message list is a record too
    path.write_text("\n".join(json.dumps(r) for r in (SMOLAGENTS_RECORD, wrong, plain)) + "\n")
    examples = list(import_smolagents_logs(path, system_prompt="SHORT"))
    assert len(examples) == 2  # the wrong one is skipped
    msgs = examples[0]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[0]["content"] == "SHORT"
    assert msgs[3]["content"] == "Observation:\nExecution logs:\n5\nLast output from code snippet:\nNone"
    assert msgs[4]["content"].endswith("```<end_code>")  # added where the log dropped it
    assert not any("Calling tools" in m["content"] for m in msgs)
    # JSON-list files and the original system prompt
    path2 = tmp_path / "released.json"
    path2.write_text(json.dumps([SMOLAGENTS_RECORD]))
    (ex,) = import_smolagents_logs(path2)
    assert ex["messages"][0]["content"].startswith("You are an expert assistant")
    # imported examples can be mixed into the SFT file
    out = tmp_path / "sft.jsonl"
    assert write_sft_data([_traj("a")], out, extra=examples) == 3
