"""RunKeeper: a replica's side of cooperating through the runs table.

One thread per replica: every ``poll_interval`` it reads the cancel flags other
replicas raised on this replica's runs; every third of ``lease_ttl`` it renews
this replica's leases (a run whose lease another replica took over stops here
without writing); every five polls it takes over the runs of replicas that died
(lease expired) or stopped (leases released), interrupting or resuming them as
``on_restart`` says. The database hands each such run to exactly one replica.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from tinyact.serve.protocol import RunRequest
from tinyact.serve.conversations import Turn
from tinyact.serve.runs import RunHandle

if TYPE_CHECKING:
    from tinyact.serve.service import RunService

__all__ = ["RunKeeper"]

log = logging.getLogger("tinyact.serve")


class RunKeeper:
    """Leases, cancel flags and takeovers for ``service`` (see the module docstring)."""

    def __init__(self, service: RunService) -> None:
        self.service = service
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="run-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def reap(self, own: bool = False) -> None:
        """Take the runs whose owner died (lease expired; with ``own``, this replica's
        from before a restart): interrupt or resume them, as configured."""
        svc = self.service
        assert svc.store is not None
        for row in svc.store.claim_expired(svc.replica, svc.config.lease_ttl, own=own):
            if row["id"] in svc._active:  # ours and still running here (a renewal came late)
                continue
            if svc.config.on_restart == "interrupt":
                if svc.store.finish(row["id"], status="interrupted", owner=svc.replica,
                                     error="the server stopped before this run ended"):
                    svc.metrics.run_ended("interrupted")
                continue
            request = dict(row["request"])
            options = request.pop("options")
            turn = request.pop("turn", None)
            handle = RunHandle(row["id"], row["key_id"], RunRequest.model_validate(request), row["created_at"],
                               turn=Turn(**turn) if turn else None)
            handle.running = row["status"] == "running"  # still holds its slot
            log.info("resuming run %s (left by %s)", row["id"], row["owner"])
            svc.launch(handle, options)

    def _keep(self) -> None:
        """The keeper: cancel flags every ``poll_interval``; runs of dead or stopped replicas
        every 5 of those; this replica's leases every third of their length."""
        svc = self.service
        assert svc.store is not None
        cfg = svc.config
        renew_at = time.monotonic() + cfg.lease_ttl / 3
        rounds = 0
        while not self._stop.wait(cfg.poll_interval):
            rounds += 1
            try:
                for run_id in svc.store.cancel_requests(svc.replica):
                    handle = svc._active.get(run_id)
                    if handle is not None and not handle.cancel.is_set():
                        svc.cancel_local(handle)
                if time.monotonic() >= renew_at:
                    renew_at = time.monotonic() + cfg.lease_ttl / 3
                    self._renew()
                if rounds % 5 == 0:
                    self.reap()
            except Exception:
                if not self._stop.is_set():
                    log.exception("the run keeper failed a round; retrying")

    def _renew(self) -> None:
        """Extend this replica's leases; a run whose lease another replica took stops here."""
        svc = self.service
        assert svc.store is not None
        held = svc.store.renew(svc.replica, svc.config.lease_ttl)
        for handle in list(svc._active.values()):
            if handle.id not in held and not handle.done.is_set():
                row = svc.store.get(handle.id)
                if row is not None and row["owner"] != svc.replica:
                    handle.lost = True
                    svc.cancel_local(handle)
