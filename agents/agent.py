"""Agent: the library entry point around the LangGraph step loop."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tinyact.agents.config import AgentConfig
from tinyact.agents.graph import build_graph
from tinyact.agents.nodes import AgentContext
from tinyact.agents.prompts import render_system_prompt
from tinyact.agents.registry import SessionRegistry
from tinyact.errors import ConfigError
from tinyact.models.engines.base import Engine
from tinyact.tools.base import Tool, as_tools
from tinyact.schema import Step, Trajectory, Usage

__all__ = ["Agent", "AgentResult", "Approver", "Token", "state_serde"]

Approver = Callable[[dict], Any]
"""Called with {"thought", "code", "step"}; returns "approve", "reject" or {"action": "edit", "code": ...}."""


@dataclass
class AgentResult:
    answer: Any
    trajectory: Trajectory

    @property
    def end_reason(self) -> str | None:
        return self.trajectory.end_reason

    @property
    def steps(self) -> list[Step]:
        return self.trajectory.steps


@dataclass
class Token:
    """A piece of model text while step ``step`` is generated (``Agent.stream(tokens=True)``).

    With k > 1 samples the pieces are candidate 0's (``of`` = k); the step's
    chosen candidate may be another one, so the ``Step`` that follows is the truth.
    """

    step: int
    text: str
    candidate: int = 0
    of: int = 1


class Agent:
    """A CodeAct agent: a model writes Python, a sandbox runs it, tools answer.

    Args:
        model: catalog name, model folder, hub id, or an ``Engine`` instance.
        tools: plain typed functions with docstrings, or ``Tool`` objects.
        sandbox: "auto" | "process" | "docker", or a callable ``(tools=...) -> Session``.
        engine: "auto" | "transformers" | "vllm" | "llamacpp" | "openai" when ``model`` is a name
            (auto: llama.cpp on a CPU host where it is installed, else transformers).
        checkpointer: None (in memory), a path to a SQLite file (durable runs
            that resume after a crash), or any LangGraph checkpointer.
        **config: ``AgentConfig`` fields (max_steps, samples, temperature, ...).

    Example:
        >>> agent = Agent("qwen2.5-coder-0.5b")                        # doctest: +SKIP
        >>> agent.run("What is 12345 * 6789?").answer                  # doctest: +SKIP
        83810205
    """

    def __init__(
        self,
        model: str | Engine = "qwen2.5-coder-0.5b",
        tools: Sequence[Tool | Callable[..., Any]] = (),
        sandbox: str | Callable[..., Any] = "auto",
        *,
        engine: str = "auto",
        engine_kwargs: dict[str, Any] | None = None,
        checkpointer: Any = None,
        limits: Any = None,
        **config: Any,
    ) -> None:
        self.config = AgentConfig(**config)
        self.tools = as_tools(tools)
        if isinstance(model, str):
            from tinyact.models.engines import load_engine

            self.engine: Engine = load_engine(model, engine=engine, **(engine_kwargs or {}))
            self.model_name = model
        else:
            self.engine = model
            self.model_name = getattr(model, "model_name", None) or getattr(model, "model", None) or model.name
        self.system_prompt, self.prompt_version = render_system_prompt(self.config.prompt, self.tools)
        self.sessions = SessionRegistry(self._session_opener(sandbox, limits), {t.name: t for t in self.tools})
        self.checkpointer = self._checkpointer(checkpointer)
        # The in-memory default cannot survive a crash anyway: save on exit (and at
        # interrupts) only. Durable checkpointers save every step before going on.
        self._durability = "exit" if checkpointer in (None, "memory") else "sync"
        self.graph = build_graph(self.checkpointer)

    # ----------------------------------------------------------------- running

    def run(
        self,
        task: str,
        *,
        prefix: str | None = None,
        thread_id: str | None = None,
        approve: Approver | None = None,
        history: Sequence[dict] | None = None,
        setup: Sequence[str] = (),
    ) -> AgentResult:
        """Run a task to its end and return the answer with the full trajectory.

        With ``thread_id`` and a SQLite checkpointer, a run that crashed resumes
        from its last completed step (the sandbox rebuilt by replaying the
        committed code); a finished thread returns its stored result.

        ``history`` and ``setup`` continue a conversation: the earlier turns'
        messages (e.g. ``to_messages(previous)[1:]``) go between the system
        prompt and the task, and the code they committed (``committed_code``)
        runs in the fresh sandbox first, so their variables exist.
        """
        result = None
        for item in self.stream(task, prefix=prefix, thread_id=thread_id, approve=approve, history=history,
                                setup=setup):
            if isinstance(item, AgentResult):
                result = item
        assert result is not None
        return result

    def stream(
        self,
        task: str,
        *,
        prefix: str | None = None,
        thread_id: str | None = None,
        approve: Approver | None = None,
        cancel: threading.Event | None = None,
        history: Sequence[dict] | None = None,
        setup: Sequence[str] = (),
        tokens: bool = False,
    ) -> Iterator[Token | Step | AgentResult]:
        """Yield each ``Step`` as it is observed, then the ``AgentResult`` last.

        ``tokens=True``: also a ``Token`` for each piece of model text as it is
        generated (engines without streaming give a step's text in one piece).

        ``cancel``: an event another thread may set to stop the run; call
        ``agent.sessions.close(thread_id)`` too to kill code that is running.
        """
        from langgraph.types import Command

        if not isinstance(task, str) or not task.strip():
            raise ConfigError("task must be a non-empty string")
        if self.config.approve_code and approve is None:
            raise ConfigError("approve_code=True needs an approve= callback (or use .graph with interrupts)")
        thread_id = thread_id or uuid.uuid4().hex
        cfg = {"configurable": {"thread_id": thread_id}, "recursion_limit": 4 * self.config.max_steps + 10}
        ctx = AgentContext(self.engine, self.sessions, self.config, self.system_prompt, cancel=cancel, tokens=tokens)
        modes = ["updates", "custom"] if tokens else ["updates"]
        started = time.time()
        snapshot = self.graph.get_state(cfg) if self.checkpointer is not None else None
        if snapshot is not None and snapshot.values and not snapshot.next:
            yield self._result(snapshot.values, started)  # finished already
            return
        payload: Any = None if snapshot is not None and snapshot.next else {
            "task": task, "prefix": prefix, "run_id": thread_id, "steps": [],
            "history": [dict(m) for m in history or ()], "setup": list(setup),
        }
        while True:
            interrupted = None
            for mode, chunk in self.graph.stream(payload, cfg, context=ctx, stream_mode=modes,
                                                 durability=self._durability):
                if mode == "custom":
                    if isinstance(chunk, dict) and "token" in chunk:
                        yield Token(chunk["step"], chunk["token"], chunk["candidate"], chunk["of"])
                    continue
                if "__interrupt__" in chunk:
                    interrupted = chunk["__interrupt__"][0].value
                    continue
                update = chunk.get("observe")
                if update and update.get("steps"):
                    yield Step.model_validate(update["steps"][-1])
            if interrupted is None:
                break
            if approve is None:
                raise ConfigError("the run is waiting for approval but no approve= callback was given")
            payload = Command(resume=approve(interrupted))
        yield self._result(self.graph.get_state(cfg).values, started)

    def close(self) -> None:
        self.sessions.close_all()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- internals

    def _result(self, values: dict, started: float) -> AgentResult:
        cfg = self.config
        trajectory = Trajectory(
            id=values.get("run_id") or uuid.uuid4().hex,
            task=values["task"],
            model=str(self.model_name),
            engine=getattr(self.engine, "name", type(self.engine).__name__),
            sampling=cfg.sampling(),
            samples=cfg.samples,
            prompt_version=self.prompt_version,
            system_prompt=self.system_prompt,
            prefix=values.get("prefix"),
            steps=[Step.model_validate(s) for s in values.get("steps") or []],
            final_answer=values.get("final_answer"),
            end_reason=values.get("end_reason"),
            usage=Usage.model_validate(values.get("usage") or {}),
            started_at=values.get("started_at") or started,
            seconds=round(time.time() - (values.get("started_at") or started), 3),
            metadata={"final_answer_call_output": values["final_call_output"]}
            if values.get("final_call_output") is not None else {},
        )
        return AgentResult(answer=trajectory.final_answer, trajectory=trajectory)

    @staticmethod
    def _session_opener(sandbox: str | Callable[..., Any], limits: Any) -> Callable[..., Any]:
        if callable(sandbox):
            return sandbox
        if sandbox not in ("auto", "process", "docker"):
            raise ConfigError(f"sandbox must be auto, process, docker or a callable, got {sandbox!r}")

        def opener(tools: dict[str, Any]) -> Any:
            from tinyact.sandbox import open_session

            return open_session(backend=sandbox, limits=limits, tools=tools)

        return opener

    @staticmethod
    def _checkpointer(checkpointer: Any) -> Any:
        if checkpointer is None or checkpointer == "memory":
            from langgraph.checkpoint.memory import InMemorySaver

            return InMemorySaver(serde=state_serde())
        if isinstance(checkpointer, (str, os.PathLike)):
            from langgraph.checkpoint.sqlite import SqliteSaver

            conn = sqlite3.connect(os.fspath(checkpointer), check_same_thread=False)
            return SqliteSaver(conn, serde=state_serde())
        return checkpointer


def state_serde() -> Any:
    """LangGraph's serializer, with plain JSON where msgpack gives up.

    msgpack holds integers up to 64 bits, and answers like ``7**500`` are
    common here (GSM-Hard, the code tasks). The state is JSON data only (see
    ``agents/state.py``), so JSON stores it losslessly.
    """
    import json

    import ormsgpack
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    class StateSerde(JsonPlusSerializer):
        def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
            try:
                return super().dumps_typed(obj)
            except ormsgpack.MsgpackEncodeError:
                return "json", json.dumps(obj).encode()

    return StateSerde()
