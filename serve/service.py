"""RunService: the agent API's logic, with the engine and tools injected.

Each run executes in its own worker thread (the ``Agent`` API is synchronous)
with its own sandbox; one engine serves every run, behind a ``BatchingEngine``
so concurrent proposals share engine calls. A run publishes its events
(``step``, then ``final`` or ``error``) to any number of asyncio readers; the
streaming route, the waiting route and the chat facade all read the same
events, so there is one body for every way of asking. Runs are persisted in
SQLite or PostgreSQL (runs table + LangGraph checkpoints) and survive a restart.

Replicas on one PostgreSQL database cooperate through it (see ``store.py``):
each holds a lease on the runs it executes and renews it from a keeper
thread, which also polls the cancel flags other replicas raise and takes over
runs whose lease expired (their owner died), resuming them from their last
checkpoint. Per-key limits are counted in the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from tinyact.agents import Agent, AgentConfig
from tinyact.errors import ConfigError
from tinyact.serve.config import ServerConfig
from tinyact.serve.conversations import ConversationStore, Turn
from tinyact.serve.execution import RunExecution
from tinyact.serve.keeper import RunKeeper
from tinyact.serve.limits import QueueFull
from tinyact.serve.metrics import Metrics
from tinyact.serve.pool import SandboxPool
from tinyact.serve.protocol import (
    FinalEvent,
    ModelCard,
    ModelList,
    Readiness,
    RunEvent,
    RunInfo,
    RunList,
    RunRequest,
    RunSummary,
)
from tinyact.serve.runs import TERMINAL, Event, RunHandle
from tinyact.serve.store import RunStore, decode_cursor, encode_cursor, is_postgres, open_store
from tinyact.models.engines.base import Engine
from tinyact.tools.base import Tool, as_tools
from tinyact.schema import Trajectory

__all__ = ["ApiError", "RunService"]

log = logging.getLogger("tinyact.serve")

MODEL_ALIAS = "tinyact"
"""A model name every server accepts for the model it serves (clients need not know which)."""


class ApiError(Exception):
    """A request the service refuses; app.py turns it into an ``ErrorResponse``."""

    def __init__(
        self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
        code: str | None = None, headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}


class RunService(RunExecution):
    """Runs agent tasks for the API.

    Args:
        engine: an ``Engine``, or a zero-argument callable that loads one (called
            in the background at ``start()``; ``/readyz`` turns ready after it).
        tools: tools runs may use, by name (a request's ``tools`` picks a subset).
        config: limits, persistence and defaults.
        model_name: the served model's name (taken from the engine when omitted).
        batch: wrap the engine in a ``BatchingEngine`` (concurrent proposals merged).
        sandbox: override ``config.sandbox`` with a session factory (tests).
    """

    def __init__(
        self,
        engine: Engine | Callable[[], Engine],
        *,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        config: ServerConfig | None = None,
        model_name: str | None = None,
        batch: bool = True,
        sandbox: str | Callable[..., Any] | None = None,
    ) -> None:
        self.config = config or ServerConfig()
        self.tools = {t.name: t for t in as_tools(tools)}
        self._loader = None if hasattr(engine, "generate") else engine
        self._given_engine = engine if self._loader is None else None
        self.engine: Engine | None = None
        self._named = model_name
        self.model_name = model_name or (_engine_model(engine) if self._loader is None else None) or "loading"
        self.batch = batch
        self.sandbox = sandbox or self.config.sandbox
        self.metrics = Metrics({
            "tinyact_active_sandboxes": ("Sandbox sessions open (one per running run).", lambda: self.active_sandboxes),
            "tinyact_active_runs": ("Runs executing now in this replica.",
                                    lambda: sum(h.running for h in list(self._active.values()))),
            "tinyact_queue_depth": ("Runs of this replica waiting for a slot of their key.",
                                    lambda: sum(not h.running for h in list(self._active.values()))),
            "tinyact_engine_ready": ("1 once the model is loaded.", lambda: 1 if self.ready else 0),
            "tinyact_sandboxes_ready": ("Fresh sandboxes started ahead, waiting for a run.",
                                        lambda: len(self.pool) if self.pool is not None else 0),
            "tinyact_sandboxes_kept": ("Sandboxes kept for a key's next run (--sandbox-reuse).",
                                       lambda: self.pool.kept if self.pool is not None else 0),
        })
        self.replica = self.config.replica_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.load_error: str | None = None
        self.store: RunStore | None = None
        self.conversations: ConversationStore | None = None
        self.saver: Any = None
        self._active: dict[str, RunHandle] = {}
        self._ready = threading.Event()
        self._closing = False
        self._slots = threading.Condition()  # notified when a run of this process ends
        self.keeper: RunKeeper | None = None
        self._agents: dict[str, Agent] = {}
        self._agents_lock = threading.Lock()
        self.pool: SandboxPool | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Open the database, take back the runs this replica left, load the engine,
        start the keeper (leases, cancel flags, takeovers)."""
        self.store, self.saver = open_store(self.config.db, pool_size=self.config.max_active_per_key * 2 + 8)
        self.conversations = ConversationStore(self.store)
        if isinstance(self.sandbox, str) and (self.config.sandbox_pool > 0 or self.config.sandbox_reuse):
            self.pool = SandboxPool(self.sandbox, self.config.sandbox_pool, reuse=self.config.sandbox_reuse)
            self.pool.prime(dict(self.tools))  # the tool set of requests that name none
        if self._loader is None:
            self._set_engine(self._given_engine)
        else:
            threading.Thread(target=self._load, name="engine-load", daemon=True).start()
        self.keeper = RunKeeper(self)
        self.keeper.reap(own=True)
        self.keeper.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop: kill the sandboxes of running runs and leave them unfinished in the
        database (the next start interrupts or resumes them, as configured)."""
        self._closing = True
        if self.keeper is not None:
            self.keeper.stop()
        handles = list(self._active.values())
        for agent in list(self._agents.values()):
            agent.sessions.close_all()
        deadline = time.monotonic() + timeout
        for h in handles:
            if h.thread is not None:
                h.thread.join(max(0.0, deadline - time.monotonic()))
        if self.keeper is not None:
            self.keeper.join(max(0.0, deadline - time.monotonic()))
        if self.store is not None:
            try:  # other replicas (or this one, restarted) take the runs over at once
                self.store.release(self.replica)
            except Exception:
                log.exception("releasing the leases failed")
            if is_postgres(self.config.db):
                self.store.close()  # the pool (the checkpointer's too)
        if self.pool is not None:
            self.pool.close()
        close = getattr(self.engine, "close", None)
        if self.batch and close is not None:
            close()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def readiness(self) -> Readiness:
        return Readiness(
            ready=self.ready, model=self.model_name, engine=getattr(self.engine, "name", None),
            detail=self.load_error or (None if self.ready else "the model is loading"),
        )

    def models(self) -> ModelList:
        return ModelList(data=[ModelCard(id=self.model_name)])

    # --------------------------------------------------------------------- runs

    def submit(self, request: RunRequest, key_id: str, turn: Turn | None = None) -> RunHandle:
        """Validate against the server's limits, admit (or 429), start the run's thread.

        ``turn``: the conversation turn this run is (the chat facade resolves it
        from the history); by default ``request.conversation`` names it."""
        if self.load_error is not None:
            raise ApiError(503, f"the model failed to load: {self.load_error}", type="unavailable_error")
        if not self.ready:
            raise ApiError(503, "the model is still loading; retry shortly", type="unavailable_error",
                           headers={"Retry-After": str(self.config.retry_after)})
        options = self._options(request)
        self._tools_for(request)
        run_id = "run_" + uuid.uuid4().hex
        assert self.store is not None and self.conversations is not None
        if turn is None and request.conversation is not None:
            turn = self.conversations.resolve(key_id, request.conversation, [])
        cfg = self.config
        try:
            created = self.store.create(run_id, key_id, request.task, self.model_name,
                                        {**request.model_dump(), "options": options,
                                         "turn": turn.to_json() if turn else None}, owner=self.replica,
                                        lease=cfg.lease_ttl, max_total=cfg.max_active_per_key + cfg.max_queued_per_key)
        except QueueFull:
            self.metrics.request_rejected("queue_full")
            raise ApiError(
                429, f"too many runs for this key: {cfg.max_active_per_key} running and "
                f"{cfg.max_queued_per_key} queued; retry later", type="rate_limit_error",
                code="queue_full", headers={"Retry-After": str(cfg.retry_after)},
            ) from None
        handle = RunHandle(run_id, key_id, request, created, turn=turn)
        self.launch(handle, options)
        return handle

    async def events(self, handle: RunHandle) -> AsyncIterator[Event]:
        """``run``, then each ``step``, then ``final`` or ``error`` (from the start, whenever called)."""
        yield "run", RunEvent(id=handle.id, status="queued").model_dump()
        queue = handle.subscribe()
        try:
            while True:
                kind, data = await queue.get()
                yield kind, data
                if kind in TERMINAL:
                    return
        finally:
            handle.unsubscribe(queue)

    def watch(self, run_id: str, key_id: str) -> AsyncIterator[Event]:
        """The events of any run of this key (404 when unknown, raised now): live from the handle
        when this replica executes it; else from the store, polled every ``poll_interval`` until the
        run ends, so a client behind a load balancer can follow a run another replica executes (or
        takes over) from any replica."""
        handle = self._active.get(run_id)
        if handle is not None and handle.key_id == key_id:
            return self.events(handle)
        info = self.info(run_id, key_id)

        async def stored(info: RunInfo) -> AsyncIterator[Event]:
            yield "run", RunEvent(id=info.id, status=info.status).model_dump()
            sent = 0
            while True:
                for step in info.steps[sent:]:
                    yield "step", step.model_dump(mode="json")
                sent = max(sent, len(info.steps))
                if info.status in ("finished", "failed", "interrupted"):
                    end = (info.finished_at or info.created_at) - info.created_at
                    final = FinalEvent(id=info.id, status=info.status, answer=info.answer,
                                       end_reason=info.end_reason, steps=len(info.steps), seconds=round(end, 3),
                                       error=info.error)
                    yield ("final" if info.status == "finished" else "error"), final.model_dump(mode="json")
                    return
                await asyncio.sleep(self.config.poll_interval)
                info = await asyncio.to_thread(self.info, run_id, key_id)

        return stored(info)

    async def run(self, request: RunRequest, key_id: str, turn: Turn | None = None) -> RunInfo:
        """Submit and wait for the end; the answer with the whole trajectory."""
        handle = self.submit(request, key_id, turn)
        async for _ in self.events(handle):
            pass
        return self.info(handle.id, key_id)

    def info(self, run_id: str, key_id: str) -> RunInfo:
        assert self.store is not None
        row = self.store.get(run_id)
        if row is None or row["key_id"] != key_id:  # another key's run does not exist for you
            raise ApiError(404, f"no run {run_id!r}", type="not_found_error", param="path.run_id")
        return RunInfo(
            id=row["id"], status=row["status"], task=row["task"], model=row["model"],
            created_at=row["created_at"], finished_at=row["finished_at"], end_reason=row["end_reason"],
            answer=row["answer"], error=row["error"], steps=row["steps"],
            trajectory=Trajectory.model_validate(row["trajectory"]) if row["trajectory"] else None,
        )

    def list_runs(self, key_id: str, limit: int = 20, cursor: str | None = None) -> RunList:
        assert self.store is not None
        try:
            position = decode_cursor(cursor) if cursor else None
        except ValueError:
            raise ApiError(422, "cursor is not one this server gave out", param="query.cursor") from None
        rows = self.store.page(key_id, limit + 1, position)
        more = len(rows) > limit
        rows = rows[:limit]
        data = [RunSummary(id=r["id"], status=r["status"], task=r["task"], created_at=r["created_at"],
                           finished_at=r["finished_at"], end_reason=r["end_reason"], answer=r["answer"],
                           steps=r["n"] or 0) for r in rows]
        next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more and rows else None
        return RunList(data=data, next_cursor=next_cursor)

    async def cancel(self, run_id: str, key_id: str, wait: float = 15.0) -> RunInfo:
        """Cancel a queued or running run: its sandbox is killed, it ends with reason "cancelled".

        A run another replica executes gets its cancel flag raised in the database;
        its owner sees it within ``poll_interval`` and cancels it there."""
        assert self.store is not None
        handle = self._active.get(run_id)
        if handle is None or handle.key_id != key_id:
            info = self.info(run_id, key_id)  # 404 when unknown
            if info.status not in ("queued", "running") or not self.store.request_cancel(run_id):
                raise ApiError(409, f"run {run_id!r} is already {info.status}", type="conflict_error",
                               code="run_not_active")
            deadline = time.monotonic() + wait
            while info.status in ("queued", "running") and time.monotonic() < deadline:
                await asyncio.sleep(self.config.poll_interval / 2)
                info = self.info(run_id, key_id)
            return info
        self.cancel_local(handle)
        queue = handle.subscribe()
        deadline = time.monotonic() + wait
        try:  # until its end event, or its thread is done (the end is in the store), or ``wait``
            while not handle.done.is_set() and (left := deadline - time.monotonic()) > 0:
                try:
                    async with asyncio.timeout(min(left, self.config.poll_interval)):
                        if (await queue.get())[0] in TERMINAL:
                            break
                except TimeoutError:
                    pass
        finally:
            handle.unsubscribe(queue)
        return self.info(run_id, key_id)

    # ------------------------------------------------------------------ metrics

    def metrics_text(self) -> str:
        return self.metrics.render()

    @property
    def active_sandboxes(self) -> int:
        return sum(len(a.sessions) for a in list(self._agents.values()))

    # ---------------------------------------------------------------- internals

    def _options(self, request: RunRequest) -> dict[str, Any]:
        cfg = self.config
        if request.model is not None and request.model not in (self.model_name, MODEL_ALIAS):
            raise ApiError(422, f"model {request.model!r} is not served here; this server serves "
                           f"{self.model_name!r}", param="body.model", code="model_not_found")
        if request.samples is not None and request.samples > cfg.max_samples:
            raise ApiError(422, f"samples must be <= {cfg.max_samples} on this server, got {request.samples}",
                           param="body.samples")
        if request.max_steps is not None and request.max_steps > cfg.max_steps_limit:
            raise ApiError(422, f"max_steps must be <= {cfg.max_steps_limit} on this server, got "
                           f"{request.max_steps}", param="body.max_steps")
        options = {
            **cfg.agent_options, "max_steps": cfg.default_max_steps, "samples": cfg.default_samples,
            "time_budget": cfg.run_timeout, "exec_timeout": min(cfg.exec_timeout, cfg.run_timeout),
            **request.to_overrides(),
        }
        try:
            AgentConfig(**options)
        except ConfigError as e:
            raise ApiError(422, str(e), param="body") from None
        return options

    def _tools_for(self, request: RunRequest) -> list[Tool]:
        if request.tools is None:
            return list(self.tools.values())
        for i, name in enumerate(request.tools):
            if name not in self.tools:
                known = ", ".join(sorted(self.tools)) or "none"
                raise ApiError(422, f"unknown tool {name!r}; this server has: {known}", param=f"body.tools.{i}",
                               code="unknown_tool")
        return [self.tools[name] for name in dict.fromkeys(request.tools)]

    def _set_engine(self, engine: Engine) -> None:
        if self.batch:
            from tinyact.models.engines.batching import BatchingEngine

            cfg = self.config
            engine = BatchingEngine(engine, max_batch=cfg.batch_max, window_ms=cfg.batch_window_ms,
                                    parallel=cfg.engine_parallel)
        self.model_name = self._named or _engine_model(engine) or "tinyact"
        self.engine = engine
        self._ready.set()

    def _load(self) -> None:
        try:
            assert self._loader is not None
            self._set_engine(self._loader())
        except Exception as e:
            log.exception("loading the engine failed")
            self.load_error = f"{type(e).__name__}: {e}"


def _engine_model(engine: Any) -> str | None:
    return getattr(engine, "model_name", None) or getattr(engine, "model", None) or getattr(engine, "name", None)
