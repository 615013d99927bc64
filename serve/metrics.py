"""Prometheus metrics of the agent API, through ``prometheus_client``.

Counters and the step histogram are updated as runs go; gauges (active
sandboxes, queue depth) are read from the service when scraped. Each service
has its own registry, so several in one process (tests) do not collide.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

__all__ = ["CONTENT_TYPE", "STEP_BUCKETS", "Metrics"]

STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text exposition format's media type (what ``render`` writes)."""


class Metrics:
    """The service's metrics: ``tinyact_runs_total``, ``tinyact_requests_rejected_total``,
    ``tinyact_step_seconds`` and the gauges given.

    Args:
        gauges: name -> (help, read): ``read()`` gives the value when scraped.
        buckets: upper bounds of the step-seconds histogram.
    """

    def __init__(
        self, gauges: Mapping[str, tuple[str, Callable[[], float]]] | None = None,
        buckets: Sequence[float] = STEP_BUCKETS,
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self._runs = Counter("tinyact_runs", "Runs ended, by end reason.", ["end_reason"], registry=self.registry)
        self._rejected = Counter("tinyact_requests_rejected", "Requests refused, by cause.", ["reason"],
                                 registry=self.registry)
        self._steps = Histogram("tinyact_step_seconds", "Seconds per agent step (model call + code execution).",
                                buckets=tuple(buckets), registry=self.registry)
        for name, (help_, read) in (gauges or {}).items():
            Gauge(name, help_, registry=self.registry).set_function(read)

    def run_ended(self, reason: str) -> None:
        """Count a finished run under its end reason (or "failed", "interrupted")."""
        self._runs.labels(end_reason=reason).inc()

    def request_rejected(self, why: str) -> None:
        """Count a refused request (queue_full, unauthorized, too_large, invalid, not_loopback)."""
        self._rejected.labels(reason=why).inc()

    def step_seconds(self, seconds: float) -> None:
        self._steps.observe(seconds)

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()
