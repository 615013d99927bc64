"""FleetEngine: one engine over several model servers (vLLM replicas), spreading and failing over.

``load_engine("openai", base_url="http://a:8000/v1,http://b:8000/v1")`` (or a list)
gives a ``FleetEngine`` of one ``OpenAIEngine`` per URL. Each conversation of a
``generate`` call goes to the member with the fewest requests in flight (ties:
round robin), so a batch of proposals is spread over the servers; a member
whose call fails (``EngineError``, after its own retries) is benched for
``cooldown`` seconds and that part of the call is retried on another member.
Only when every member failed does the call fail.

Why a wrapper rather than a gateway: the agent API, evaluation and collection
already run in Python next to the engine, so client-side spreading needs no
extra service to deploy, and per-server retries stay in ``OpenAIEngine``. A
gateway (nginx, Envoy, LiteLLM) in front of the servers works too: give its
single URL.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tinyact.errors import ConfigError, EngineError
from tinyact.models.engines.base import Conversation, Engine, prefixes_for
from tinyact.schema import Completion, SamplingParams

__all__ = ["FleetEngine", "split_urls"]

log = logging.getLogger("tinyact.engines")


def split_urls(base_url: str | Sequence[str] | None) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (empty items dropped)."""
    if base_url is None:
        return []
    items = base_url.split(",") if isinstance(base_url, str) else list(base_url)
    return [u.strip() for u in items if u and u.strip()]


class FleetEngine:
    """Spreads ``generate`` calls over ``members`` and retries a failed part on another one.

    Args:
        members: engines of the same model (typically one ``OpenAIEngine`` per server).
        cooldown: seconds a member that failed is skipped while others are healthy.
    """

    name = "fleet"

    def __init__(self, members: Sequence[Engine], *, cooldown: float = 10.0) -> None:
        if not members:
            raise ConfigError("a fleet needs at least one engine")
        self.members = list(members)
        self.cooldown = cooldown
        first = self.members[0]
        self.model_name = getattr(first, "model_name", None) or getattr(first, "model", None) or first.name
        self.in_flight = [0] * len(self.members)
        self.calls = [0] * len(self.members)
        """Conversations sent to each member (for metrics and tests)."""
        self._benched_until = [0.0] * len(self.members)
        self._turn = itertools.count()
        self._lock = threading.Lock()

    @classmethod
    def openai(cls, urls: Sequence[str], model: str = "", **kwargs: Any) -> FleetEngine:
        """One ``OpenAIEngine`` per URL. Without ``model``, the first server that answers names it
        (servers that are down now are still members: they are tried when they come back)."""
        from tinyact.models.engines.openai import OpenAIEngine  # type: ignore[import-not-found]

        if not model:
            errors = []
            for url in urls:
                try:
                    with OpenAIEngine(url, base_url=url, **kwargs) as probe:
                        model = probe.model_name
                    break
                except EngineError as e:
                    errors.append(str(e))
            else:
                raise EngineError(f"no model server answered: {'; '.join(errors)}")
        return cls([OpenAIEngine(model, base_url=url, **kwargs) for url in urls])

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
        prefixes = prefixes_for(prefix, len(convs))
        groups: dict[int, list[int]] = {}
        for i in range(len(convs)):
            groups.setdefault(self._pick(set(), 1), []).append(i)
        out: list[list[Completion] | None] = [None] * len(convs)

        def run(member: int, idx: list[int]) -> None:
            tried: set[int] = set()
            while True:
                tried.add(member)
                try:
                    rows = self.members[member].generate([convs[i] for i in idx], n=n, sampling=sampling, stop=stop,
                                                         prefix=[prefixes[i] for i in idx])
                except EngineError as e:
                    self._done(member, len(idx), failed=True)
                    if len(tried) == len(self.members):
                        raise
                    log.warning("model server %d failed (%s); retrying on another", member, e)
                    member = self._pick(tried, len(idx))
                    continue
                self._done(member, len(idx))
                for i, row in zip(idx, rows, strict=True):
                    out[i] = row
                return

        if len(groups) == 1:
            (member, idx), = groups.items()
            run(member, idx)
        else:
            with ThreadPoolExecutor(len(groups)) as pool:
                for f in [pool.submit(run, m, idx) for m, idx in groups.items()]:
                    f.result()
        return out  # type: ignore[return-value]

    def close(self) -> None:
        for m in self.members:
            close = getattr(m, "close", None)
            if close is not None:
                close()

    # ---------------------------------------------------------------- private

    def _pick(self, exclude: set[int], count: int) -> int:
        """The healthy member with the fewest conversations in flight (round robin among equals);
        benched ones only when no other is left. It is charged ``count`` conversations."""
        with self._lock:
            now = time.monotonic()
            turn = next(self._turn)
            order = [(i + turn) % len(self.members) for i in range(len(self.members))]
            candidates = [i for i in order if i not in exclude] or order
            best = min(candidates, key=lambda i: (self._benched_until[i] > now, self.in_flight[i]))
            self.in_flight[best] += count
            self.calls[best] += count
            return best

    def _done(self, member: int, count: int, failed: bool = False) -> None:
        with self._lock:
            self.in_flight[member] -= count
            if failed:
                self._benched_until[member] = time.monotonic() + self.cooldown
