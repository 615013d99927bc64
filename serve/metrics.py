"""Prometheus text exposition, written by hand (no client library needed).

Counters and histograms live here; gauges (active sandboxes, queue depth) are
read from the service when scraped.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

__all__ = ["Metrics"]

STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, buckets: Sequence[float] = STEP_BUCKETS) -> None:
        self._lock = threading.Lock()
        self.runs: dict[str, int] = {}
        """end reason (or "failed", "interrupted") -> finished runs."""
        self.rejected: dict[str, int] = {}
        """why (queue_full, unauthorized, too_large, invalid) -> requests refused."""
        self.buckets = tuple(buckets)
        self._counts = [0] * (len(self.buckets) + 1)
        self._sum = 0.0

    def run_ended(self, reason: str) -> None:
        with self._lock:
            self.runs[reason] = self.runs.get(reason, 0) + 1

    def request_rejected(self, why: str) -> None:
        with self._lock:
            self.rejected[why] = self.rejected.get(why, 0) + 1

    def step_seconds(self, seconds: float) -> None:
        with self._lock:
            self._sum += seconds
            for i, bound in enumerate(self.buckets):
                if seconds <= bound:
                    self._counts[i] += 1
                    break
            else:
                self._counts[-1] += 1

    def render(self, gauges: Mapping[str, tuple[str, float]]) -> str:
        """The exposition text; ``gauges``: name -> (help, value)."""
        with self._lock:
            lines = ["# HELP tinyact_runs_total Runs ended, by end reason.", "# TYPE tinyact_runs_total counter"]
            lines += [f'tinyact_runs_total{{end_reason="{k}"}} {v}' for k, v in sorted(self.runs.items())]
            lines += ["# HELP tinyact_requests_rejected_total Requests refused, by cause.",
                      "# TYPE tinyact_requests_rejected_total counter"]
            lines += [f'tinyact_requests_rejected_total{{reason="{k}"}} {v}' for k, v in sorted(self.rejected.items())]
            lines += ["# HELP tinyact_step_seconds Seconds per agent step (model call + code execution).",
                      "# TYPE tinyact_step_seconds histogram"]
            cumulative = 0
            for bound, count in zip(self.buckets, self._counts):
                cumulative += count
                lines.append(f'tinyact_step_seconds_bucket{{le="{bound}"}} {cumulative}')
            cumulative += self._counts[-1]
            lines += [f'tinyact_step_seconds_bucket{{le="+Inf"}} {cumulative}',
                      f"tinyact_step_seconds_sum {self._sum:.6f}", f"tinyact_step_seconds_count {cumulative}"]
        for name, (help_, value) in gauges.items():
            lines += [f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"
