"""Batch work on a Ray cluster: items spread over Ray actors, results streamed back in order.

Evaluation (``tinyact eval run --ray``) and teacher collection (``tinyact
distill collect --ray``) use it the same way: a picklable zero-argument
*factory* builds the worker's solver once per actor (its engine, e.g. an
``OpenAIEngine`` pointed at vLLM servers, and its own sandboxes), each item is
one call, and the driver writes each result to the same resumable file a local
run writes, as it arrives. Results come back in submission order
(``ActorPool.map``), so a Ray run writes the same file as a local one.

``address``: ``"local"`` starts a Ray instance in this process
(``ray.init(num_cpus=...)`` on 127.0.0.1, no dashboard); ``"auto"`` joins the
cluster of ``RAY_ADDRESS`` or the one running on this machine; otherwise
``host:port`` of a head node (``ray start --head``) or a ``ray://`` client URL.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from tinyact.errors import ConfigError

__all__ = ["RaySolve", "connect", "ray_map"]


def connect(address: str, *, num_cpus: int | None = None) -> bool:
    """Join (or start, for ``"local"``) a Ray cluster; True when this call started Ray."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs the ray extra: pip install 'tinyact[ray]'") from None
    if ray.is_initialized():
        return False
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     _node_ip_address="127.0.0.1")
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConfigError(f"cannot join the Ray cluster at {address}: {e}") from None
    return True


def ray_map(factory: Callable[[], Callable[[Any], Any]], items: Sequence[Any], *, address: str = "local",
            workers: int | None = None) -> Iterator[Any]:
    """``factory()(item)`` for each item on Ray actors (one CPU each), yielded in item order.

    ``workers``: actors to start (default: the cluster's CPUs, at most one per item).
    """
    if not items:
        return
    import ray
    from ray.util import ActorPool

    started = connect(address)

    @ray.remote(num_cpus=1)
    class Worker:
        def __init__(self, make: Callable[[], Callable[[Any], Any]]) -> None:
            self.fn = make()

        def run(self, item: Any) -> Any:
            return self.fn(item)

    n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    actors = [Worker.remote(factory) for _ in range(min(n, len(items)))]
    try:
        yield from ActorPool(actors).map(lambda actor, item: actor.run.remote(item), items)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


class _SolveOnWorker:
    """A worker's side of ``RaySolve``: predictions and (agent runs) their trajectories."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory

    def __call__(self) -> Callable[[Any], Any]:
        solver = self.factory()

        def solve(batch: Sequence[Any]) -> tuple[list[Any], list[str], float, float]:
            started, started_at = time.perf_counter(), time.time()
            preds = list(solver(batch))
            trajectories = [t.to_jsonl() for t in getattr(solver, "last_trajectories", None) or []]
            return preds, trajectories, started_at, time.perf_counter() - started

        return solve


class RaySolve:
    """A ``SolveBatch`` whose batches run on Ray actors (see ``run_eval``'s ``map_batches`` use).

    Args:
        factory: picklable, builds the solver on each worker (e.g. a ``functools.partial``).
        address: the cluster (see the module docstring).
        workers: actors (default: the cluster's CPUs).
        trajectories: a JSONL file the driver appends the workers' trajectories to.
        config: what the run folder records about the solver (model, samples, ...).
    """

    def __init__(self, factory: Callable[[], Any], *, address: str = "local", workers: int | None = None,
                 trajectories: str | os.PathLike[str] | None = None, config: dict[str, Any] | None = None) -> None:
        self.factory = factory
        self.address = address
        self.workers = workers
        self.trajectories = trajectories
        self.config = dict(config or {})

    def map_batches(self, batches: Sequence[Sequence[Any]]) -> Iterable[tuple[list[Any], float, float]]:
        """(predictions, batch start time, seconds) per batch, in order, as they finish."""
        for preds, trajectories, started_at, seconds in ray_map(_SolveOnWorker(self.factory), batches,
                                                                address=self.address, workers=self.workers):
            if self.trajectories is not None and trajectories:
                with open(self.trajectories, "a", encoding="utf-8") as f:
                    f.write("".join(line + "\n" for line in trajectories))
                    f.flush()
                    os.fsync(f.fileno())
            yield preds, started_at, seconds

    def __call__(self, batch: Sequence[Any]) -> list[Any]:
        return next(iter(self.map_batches([batch])))[0]
