"""How a run executes inside one replica: its thread, its key's slot, the agent, the end.

``RunExecution`` is the worker half of ``RunService`` (``service.py`` holds the
request half: validation, submission, reading, cancelling). A run waits for the
model, takes a slot of its key (counted in the database, across replicas),
streams its steps into the store (each write fenced by the run's lease) and its
events to readers, and records its end once, unless another replica took it over.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tinyact.agents import Agent, Token, committed_code, to_messages
from tinyact.schema import Step
from tinyact.serve.pool import RUN_KEY
from tinyact.serve.protocol import FinalEvent, RunRequest
from tinyact.serve.runs import RunHandle

__all__ = ["RunExecution"]

log = logging.getLogger("tinyact.serve")


class _LeaseLost(Exception):
    """Another replica owns the run now."""


class RunExecution:
    """The execution methods of ``RunService`` (a mixin: it uses the service's
    store, config, metrics, engine, pool, conversations and run table)."""

    store: Any
    config: Any
    metrics: Any
    engine: Any
    pool: Any
    sandbox: Any
    saver: Any
    replica: str
    conversations: Any
    _active: dict[str, RunHandle]
    _ready: threading.Event
    _closing: bool
    _slots: threading.Condition
    _agents: dict[str, Agent]
    _agents_lock: threading.Lock

    def launch(self, handle: RunHandle, options: dict[str, Any]) -> None:
        self._active[handle.id] = handle
        handle.thread = threading.Thread(target=self._execute, args=(handle, options), name=f"run-{handle.id[-8:]}",
                                         daemon=True)
        handle.thread.start()

    def _execute(self, handle: RunHandle, options: dict[str, Any]) -> None:
        assert self.store is not None
        try:
            stopped = lambda: handle.cancel.is_set() or self._closing  # noqa: E731
            while not self._ready.wait(0.1):
                if stopped():
                    break
            if not handle.running and not self._acquire(handle, stopped):
                if not self._closing and not handle.lost:  # cancelled while queued: it never ran
                    self._end(handle, "finished", end_reason="cancelled")
                return
            self._drive(handle, options)
        finally:
            self._active.pop(handle.id, None)
            handle.done.set()
            with self._slots:
                self._slots.notify_all()

    def _acquire(self, handle: RunHandle, stopped: Callable[[], bool]) -> bool:
        """Wait for a slot of the run's key (counted in the database, across replicas)."""
        assert self.store is not None
        while not stopped():
            if self.store.start(handle.id, handle.key_id, self.replica, self.config.max_active_per_key):
                handle.running = True
                return True
            with self._slots:
                self._slots.wait(self.config.poll_interval)
        return False

    def cancel_local(self, handle: RunHandle) -> None:
        handle.cancel.set()
        if handle.agent is not None:
            handle.agent.sessions.close(handle.id)  # kills the code that is running

    def _drive(self, handle: RunHandle, options: dict[str, Any]) -> None:
        assert self.store is not None
        if self._closing:
            return
        RUN_KEY.set(handle.key_id)  # this thread's runs: a kept sandbox is reused within the key only
        try:
            agent = self._agent_for(handle.request, options)
            handle.agent = agent
            result = None
            last = time.monotonic()
            turn = handle.turn
            try:
                for item in agent.stream(handle.request.task, thread_id=handle.id, cancel=handle.cancel,
                                         history=turn.history if turn else None, setup=turn.setup if turn else (),
                                         tokens=handle.request.tokens):
                    if isinstance(item, Token):
                        handle.publish("token", {"step": item.step, "text": item.text, "candidate": item.candidate,
                                                 "of": item.of}, keep=False)
                    elif isinstance(item, Step):
                        now = time.monotonic()
                        self.metrics.step_seconds(now - last)
                        last = now
                        data = item.model_dump(mode="json")
                        if not self.store.add_step(handle.id, item.index, data, self.replica):
                            raise _LeaseLost(handle.id)
                        handle.publish("step", data)
                    else:
                        result = item
            finally:
                agent.sessions.close(handle.id)  # this run's sandbox; the agent serves other runs
            assert result is not None
            t = result.trajectory
            if turn is not None and self.conversations is not None:  # before the end event: the next turn finds it
                self.conversations.record(handle.key_id, turn, handle.id, t.task, result.answer,
                                          to_messages(t)[1:], committed_code(t))
            self._end(handle, "finished", end_reason=t.end_reason, answer=result.answer,
                      trajectory=t.model_dump(mode="json"))
        except Exception as e:
            if self._closing:
                return  # the process is stopping: the next start interrupts or resumes it
            if handle.lost or isinstance(e, _LeaseLost):
                log.warning("run %s: another replica took it over; stopping here", handle.id)
                return
            log.exception("run %s failed", handle.id)
            self._end(handle, "failed", end_reason="error", error=f"{type(e).__name__}: {e}")

    def _agent_for(self, request: RunRequest, options: dict[str, Any]) -> Agent:
        """One ``Agent`` (compiled graph, prompt, session registry) per distinct options and
        tools, shared by the runs that ask for the same: building one costs more than a run."""
        tools = self._tools_for(request)
        key = json.dumps([options, [t.name for t in tools]], sort_keys=True, default=repr)
        with self._agents_lock:
            agent = self._agents.get(key)
            if agent is None:
                sandbox = self.sandbox if self.pool is None else self.pool.open
                agent = Agent(self.engine, tools=tools, sandbox=sandbox, checkpointer=self.saver, **options)
                if len(self._agents) >= 64:  # forget the oldest idle one
                    for old_key, old in list(self._agents.items()):
                        if not len(old.sessions):
                            del self._agents[old_key]
                            break
                self._agents[key] = agent
            return agent

    def _end(self, handle: RunHandle, status: str, *, end_reason: str | None = None, answer: Any = None,
             error: str | None = None, trajectory: dict | None = None) -> None:
        assert self.store is not None
        if handle.lost or not self.store.finish(handle.id, status=status, end_reason=end_reason, answer=answer,
                                                error=error, trajectory=trajectory, owner=self.replica):
            log.warning("run %s: another replica took it over; its end here is not recorded", handle.id)
            return
        self.metrics.run_ended(end_reason or status)
        self._active.pop(handle.id, None)  # ended: from now on DELETE is a 409, GET reads the store
        steps = len(trajectory["steps"]) if trajectory else sum(k == "step" for k, _ in handle.events)
        final = FinalEvent(id=handle.id, status=status, answer=answer, end_reason=end_reason, steps=steps,  # type: ignore[arg-type]
                           seconds=round(time.time() - handle.created_at, 3), error=error)
        handle.publish("final" if status == "finished" else "error", final.model_dump(mode="json"))
