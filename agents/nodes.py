"""The step loop's nodes: ``(state, runtime) -> partial state``, and its routers.

prepare -> propose -> select -> observe -> (finish | propose)

Every I/O goes through ``runtime.context`` (an ``AgentContext``): the engine,
the session registry, the configuration. Nothing here keeps state of its own.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from tinyact.agents.config import AgentConfig
from tinyact.agents.consistency import select_candidates
from tinyact.agents.loops import earlier_codes, repeat_note, select_preferring_new
from tinyact.agents.observation import format_observation, format_parse_error, observation_message
from tinyact.agents.parsing import parse_action
from tinyact.agents.prompts import FINAL_ANSWER_PROMPT
from tinyact.agents.registry import SessionRegistry
from tinyact.agents.state import AgentState
from tinyact.errors import SandboxError, SandboxErrorCode
from tinyact.models.engines.base import Engine
from tinyact.schema import Completion, Message, SamplingParams, Step, Usage

__all__ = [
    "AgentContext",
    "after_observe",
    "after_propose",
    "after_select",
    "finish",
    "observe",
    "prepare",
    "propose",
    "select",
    "task_message",
]


@dataclass
class AgentContext:
    """What the nodes may use: injected per run, never stored in the state."""

    engine: Engine
    sessions: SessionRegistry
    config: AgentConfig
    system_prompt: str
    cancel: threading.Event | None = None
    """Set it (from any thread) to end the run with reason "cancelled" at the next node."""
    tokens: bool = False
    """Stream the first sample's text while it is generated (LangGraph's "custom" stream mode)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


def task_message(task: str) -> str:
    return f"New task:\n{task}"


def _usage(state: AgentState) -> Usage:
    return Usage.model_validate(state.get("usage") or {})


def _over_budget(state: AgentState, config: AgentConfig, ctx: AgentContext | None = None) -> str | None:
    if ctx is not None and ctx.cancelled:
        return "cancelled"
    if config.time_budget is not None and time.time() - state["started_at"] >= config.time_budget:
        return "time_budget"
    if config.token_budget is not None and _usage(state).total_tokens >= config.token_budget:
        return "token_budget"
    return None


# ---------------------------------------------------------------------- nodes


def prepare(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    ctx = runtime.context
    return {
        "run_id": state.get("run_id") or uuid.uuid4().hex,
        "messages": [
            {"role": "system", "content": ctx.system_prompt},
            *(state.get("history") or []),
            {"role": "user", "content": task_message(state["task"])},
        ],
        "usage": Usage().model_dump(),
        "started_at": time.time(),
        "end_reason": None,
        "final_answer": None,
        "pending": None,
        "proposals": [],
    }


def propose(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    ctx = runtime.context
    reason = _over_budget(state, ctx.config, ctx)
    if reason is not None:
        return {"end_reason": reason, "proposals": []}
    index = len(state.get("steps") or [])
    prefix = state.get("prefix") if index == 0 else None
    messages = [Message.model_validate(m) for m in state["messages"]]
    started = time.perf_counter()
    if ctx.tokens:
        from langgraph.config import get_stream_writer

        from tinyact.models.engines.base import generate_streaming

        write = get_stream_writer()
        k = ctx.config.samples
        completions = generate_streaming(
            ctx.engine, messages, n=k, sampling=ctx.config.sampling(index), stop=ctx.config.stop, prefix=prefix,
            on_token=lambda text: write({"token": text, "step": index, "candidate": 0, "of": k}),
        )
    else:
        (completions,) = ctx.engine.generate(
            [messages], n=ctx.config.samples, sampling=ctx.config.sampling(index), stop=ctx.config.stop, prefix=prefix
        )
    seconds = round(time.perf_counter() - started, 4)
    return {"proposals": [c.model_dump() for c in completions], "model_seconds": seconds}


def select(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    ctx = runtime.context
    if ctx.cancelled:  # cancelled while the model was thinking: run nothing
        return {"pending": None, "end_reason": "cancelled"}
    completions = [Completion.model_validate(c) for c in state["proposals"]]
    steps = state.get("steps") or []
    session = ctx.sessions.get(
        state["run_id"], steps, timeout=ctx.config.exec_timeout, setup=state.get("setup") or ()
    )
    if ctx.cancelled:  # cancelled while its sandbox was opening: the canceller found none to close
        ctx.sessions.close(state["run_id"])
        return {"pending": None, "end_reason": "cancelled"}
    approval = None
    if ctx.config.approve_code:
        action = parse_action(completions[0].text)
        if action.ok:
            decision = interrupt({"thought": action.thought, "code": action.code, "step": len(state.get("steps") or [])})
            approval, edited = _decision(decision)
            if approval == "edited":
                completions[0] = completions[0].model_copy(update={"text": _replace_code(completions[0].text, edited)})
            elif approval == "rejected":
                return {"pending": {"index": 0, "approval": "rejected", "candidates": [], "result": None}}

    def rebuild(extra: Any) -> tuple[Any, int, bool]:
        """Heal a dead sandbox: a new session with the committed code (then `extra`) replayed."""
        if ctx.cancelled:  # cancelled from outside: its sandbox was closed on purpose
            raise SandboxError("the run was cancelled", code=SandboxErrorCode.CLOSED)
        run_id = state["run_id"]
        new = ctx.sessions.rebuild(run_id, steps, timeout=ctx.config.exec_timeout, extra=extra)
        if ctx.cancelled:  # cancelled during the rebuild, before the new session was registered
            raise SandboxError("the run was cancelled", code=SandboxErrorCode.CLOSED)
        return new, ctx.sessions.replayed[run_id], ctx.sessions.extra_kept[run_id]

    try:
        earlier = earlier_codes(state.get("steps")) if ctx.config.repeat_notes else []  # [] turns the preference off
        outcome = select_preferring_new(
            select_candidates, session, completions, earlier,
            timeout=ctx.config.exec_timeout, parallel=ctx.config.parallel, rebuild=rebuild,
        )
    except SandboxError:
        if not ctx.cancelled:
            raise
        # Cancelled from outside while the code ran: its sandbox was killed.
        return {"pending": None, "end_reason": "cancelled"}
    if outcome.session is not session:
        ctx.sessions.replace(state["run_id"], outcome.session)
    return {
        "pending": {
            "index": outcome.chosen,
            "approval": approval,
            "candidates": [c.model_dump() for c in outcome.candidates],
            "result": outcome.result.model_dump() if outcome.result is not None else None,
            "exec_seconds": outcome.seconds,
            "sandbox_rebuilt": outcome.rebuilt,
        }
    }


def observe(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    ctx = runtime.context
    pending = state["pending"] or {}
    completions = [Completion.model_validate(c) for c in state["proposals"]]
    chosen = completions[pending.get("index", 0)]
    text = chosen.text
    if text.rstrip().endswith("```"):
        text = text.rstrip() + "<end_code>"  # what the stop string ate; keeps the format in the history
    candidates = pending.get("candidates") or []
    action = parse_action(chosen.text) if not candidates else None
    if candidates:
        from tinyact.schema import Candidate

        action = Candidate.model_validate(candidates[pending.get("index", 0)]).action
    result_data = pending.get("result")
    error = None
    if pending.get("approval") == "rejected":
        observation = "The code was rejected by a human reviewer and was not executed. Write a different action."
        error = "rejected"
    elif not action.ok:
        observation = format_parse_error(action.parse_error or "no code")
        error = action.parse_error
    else:
        from tinyact.schema import ExecResult

        result = ExecResult.model_validate(result_data)
        observation = format_observation(result)
        if result.error is not None:
            error = f"{result.error.type}: {result.error.message}"
        note = repeat_note(action.code, earlier_codes(state.get("steps")))  # loops.py: small models loop
        if note is not None and ctx.config.repeat_notes:
            observation = f"{observation}\n{note}"
    step_usage = Usage(
        prompt_tokens=chosen.prompt_tokens,
        completion_tokens=sum(c.completion_tokens for c in completions),
    )
    step = Step(
        index=len(state.get("steps") or []),
        model_output=chosen.text,
        action=action,
        observation=observation,
        result=result_data,
        error=error,
        candidates=candidates if len(completions) > 1 else [],
        usage=step_usage,
        model_seconds=state.get("model_seconds") or 0.0,
        exec_seconds=pending.get("exec_seconds", 0.0),
        approval=pending.get("approval"),
        sandbox_rebuilt=bool(pending.get("sandbox_rebuilt")),
    )
    messages = [
        *state["messages"],
        {"role": "assistant", "content": text},
        {"role": "user", "content": observation_message(observation)},
    ]
    usage = _usage(state) + step_usage
    update: dict[str, Any] = {
        "steps": [step.model_dump(mode="json")],
        "messages": messages,
        "usage": usage.model_dump(),
        "pending": None,
        "proposals": [],
    }
    if result_data and result_data.get("called_final_answer"):
        update["end_reason"] = "final_answer"
        update["final_answer"] = result_data.get("final_answer")
    elif step.index + 1 >= ctx.config.max_steps:
        update["end_reason"] = "max_steps"
    else:
        probe = {**state, "usage": usage.model_dump()}
        update["end_reason"] = _over_budget(probe, ctx.config, ctx)  # type: ignore[arg-type]
    return update


_FINAL_LINE = re.compile(r"final answer\s*:\s*(.+)", re.IGNORECASE | re.DOTALL)


def finish(state: AgentState, runtime: Runtime[AgentContext]) -> dict:
    """Close the run; after max steps, one greedy k=1 call asks for the answer."""
    ctx = runtime.context
    if state.get("end_reason") != "max_steps" or state.get("final_answer") is not None:
        ctx.sessions.close(state["run_id"])
        return {}
    messages = [Message.model_validate(m) for m in state["messages"]]
    messages.append(Message(role="user", content=FINAL_ANSWER_PROMPT))
    # Never a silent first-of-n: this call is greedy with n=1 whatever k is.
    (completions,) = ctx.engine.generate(
        [messages], n=1, sampling=SamplingParams(temperature=0, max_tokens=min(128, ctx.config.max_tokens)), stop=[]
    )
    out = completions[0]
    match = _FINAL_LINE.search(out.text)
    answer = (match.group(1) if match else out.text).strip().splitlines()[0].strip() if out.text.strip() else None
    ctx.sessions.close(state["run_id"])
    return {
        "final_answer": answer,
        "final_call_output": out.text,
        "usage": (_usage(state) + Usage(prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens)).model_dump(),
    }


# --------------------------------------------------------------------- routers


def after_propose(state: AgentState) -> Literal["select", "finish"]:
    return "finish" if state.get("end_reason") else "select"


def after_select(state: AgentState) -> Literal["observe", "finish"]:
    return "finish" if state.get("end_reason") == "cancelled" else "observe"


def after_observe(state: AgentState) -> Literal["propose", "finish"]:
    return "finish" if state.get("end_reason") else "propose"


# ------------------------------------------------------------------- helpers


def _decision(decision: Any) -> tuple[str, str | None]:
    """Normalize a resume value: "approve" | "reject" | {"action": "edit", "code": ...}."""
    if isinstance(decision, str):
        decision = {"action": decision}
    action = str(decision.get("action", "")).lower()
    if action in ("approve", "approved", "yes"):
        return "approved", None
    if action in ("edit", "edited"):
        code = decision.get("code")
        if not isinstance(code, str) or not code.strip():
            from tinyact.errors import ConfigError

            raise ConfigError("an 'edit' decision needs a non-empty 'code'")
        return "edited", code
    if action in ("reject", "rejected", "no"):
        return "rejected", None
    from tinyact.errors import ConfigError

    raise ConfigError(f"approval decision must be approve, edit or reject, got {decision!r}")


def _replace_code(text: str, code: str) -> str:
    thought = parse_action(text).thought
    return f"Thought: {thought}\nCode:\n```py\n{code}\n```"
