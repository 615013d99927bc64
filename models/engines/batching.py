"""BatchingEngine: merges concurrent ``generate`` calls into one inner call.

An API server runs many agents at once, each in its own thread, each calling
``engine.generate([one conversation], n=k, ...)``. Served one by one, a vLLM
engine would see one conversation per call and its continuous batching would
have nothing to batch. This wrapper collects the calls that arrive within a
short window, groups those with equal ``(n, sampling, stop)``, sends each group
as one call (conversations concatenated) and routes the results back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from tinyact.errors import ConfigError, EngineError
from tinyact.models.engines.base import Conversation, Engine, OnToken, generate_streaming, prefixes_for
from tinyact.schema import Completion, SamplingParams

__all__ = ["BatchingEngine"]


@dataclass
class _Request:
    conversations: list[Conversation]
    prefixes: list[str | None]
    n: int
    sampling: SamplingParams | None
    stop: tuple[str, ...]
    future: Future = field(default_factory=Future)

    @property
    def key(self) -> tuple:
        sampling = self.sampling.model_dump_json() if self.sampling is not None else None
        return (self.n, sampling, self.stop)


class BatchingEngine:
    """An ``Engine`` that batches concurrent callers into shared inner calls.

    Args:
        inner: the engine that generates (vLLM, OpenAI-compatible, transformers, ...).
        max_batch: most conversations in one inner call.
        window_ms: how long the first waiting call waits for others to join.
        parallel: inner calls in flight at once (1 for engines that are not
            thread-safe, such as an offline ``vllm.LLM``; more for HTTP engines).

    Calls that arrive while an inner call runs form the next batch, so under
    load batches fill up without waiting for the window.

    Example:
        >>> engine = BatchingEngine(ReplayEngine(["a", "b"]))          # doctest: +SKIP
    """

    def __init__(self, inner: Engine, *, max_batch: int = 32, window_ms: float = 5.0, parallel: int = 1) -> None:
        if max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1, got {max_batch}")
        if window_ms < 0:
            raise ConfigError(f"window_ms must be >= 0, got {window_ms}")
        if parallel < 1:
            raise ConfigError(f"parallel must be >= 1, got {parallel}")
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self.model = getattr(inner, "model_name", None) or getattr(inner, "model", None) or self.name
        self.max_batch = max_batch
        self.window = window_ms / 1000
        self._pending: list[_Request] = []
        self._cond = threading.Condition()
        self._slots = threading.Semaphore(parallel)
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="batching-engine")
        self._closed = False
        self.inner_calls = 0
        """Inner ``generate`` calls made so far (for tests and metrics)."""
        self.batched_conversations = 0
        self._dispatcher = threading.Thread(target=self._dispatch, name="batching-dispatch", daemon=True)
        self._dispatcher.start()

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        n: int = 1,
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        prefix: str | Sequence[str | None] | None = None,
    ) -> list[list[Completion]]:
        convs = list(conversations)
        if not convs:
            return []
        request = _Request(convs, prefixes_for(prefix, len(convs)), n, sampling, tuple(stop))
        with self._cond:
            if self._closed:
                raise ConfigError("the BatchingEngine is closed")
            self._pending.append(request)
            self._cond.notify()
        return request.future.result()

    def generate_stream(
        self, conversation: Conversation, *, n: int = 1, sampling: SamplingParams | None = None,
        stop: Sequence[str] = (), prefix: str | None = None, on_token: OnToken,
    ) -> list[Completion]:
        """A streamed call goes to the inner engine on its own (not merged), in one of
        the ``parallel`` slots; engines without streaming report the text at the end."""
        with self._slots:
            with self._cond:
                self.inner_calls += 1
                self.batched_conversations += 1
            return generate_streaming(self.inner, conversation, n=n, sampling=sampling, stop=stop, prefix=prefix,
                                      on_token=on_token)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._dispatcher.join(timeout=5)
        self._pool.shutdown(wait=True)

    # --------------------------------------------------------------- internals

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed and not self._pending:
                    return
            # Wait for a free slot first: while the inner engine is busy, more
            # callers arrive and join this batch at no extra latency.
            self._slots.acquire()
            deadline = time.monotonic() + self.window
            with self._cond:
                while sum(len(r.conversations) for r in self._pending) < self.max_batch and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = self._take_batch()
            if not batch:
                self._slots.release()
                continue
            self._pool.submit(self._run, batch)

    def _take_batch(self) -> list[_Request]:
        """The oldest request's group, up to max_batch conversations (called under the lock)."""
        key = self._pending[0].key
        batch: list[_Request] = []
        size = 0
        rest: list[_Request] = []
        for request in self._pending:
            fits = size == 0 or size + len(request.conversations) <= self.max_batch
            if request.key == key and fits:
                batch.append(request)
                size += len(request.conversations)
            else:
                rest.append(request)
        self._pending = rest
        return batch

    def _run(self, batch: list[_Request]) -> None:
        try:
            first = batch[0]
            convs = [c for r in batch for c in r.conversations]
            prefixes = [p for r in batch for p in r.prefixes]
            try:
                with self._cond:
                    self.inner_calls += 1
                    self.batched_conversations += len(convs)
                out = self.inner.generate(
                    convs,
                    n=first.n,
                    sampling=first.sampling,
                    stop=list(first.stop),
                    prefix=None if all(p is None for p in prefixes) else prefixes,
                )
                if len(out) != len(convs):
                    raise EngineError(f"inner engine returned {len(out)} results for {len(convs)} conversations")
            except BaseException as e:  # every caller of the batch gets the failure
                for r in batch:
                    r.future.set_exception(e)
                return
            start = 0
            for r in batch:
                r.future.set_result(out[start : start + len(r.conversations)])
                start += len(r.conversations)
        finally:
            self._slots.release()
