"""Where the server is in its life, as /ready reports it, and how many requests are in flight.

    loading -> warming_up -> ready -> draining          (or failed, with a reason, from loading/warming_up)

Kubernetes routes traffic by /ready: it must say 503 until the first request would be as fast as
the hundredth, and say 503 again as soon as SIGTERM arrives, while in-flight requests finish.
"""

from __future__ import annotations

import asyncio
import enum

from reranker_server.metrics import Metrics


class Phase(enum.StrEnum):
    LOADING = "loading"
    WARMING_UP = "warming_up"
    READY = "ready"
    FAILED = "failed"
    DRAINING = "draining"


#: Phases in which rerank requests are served: draining still finishes what load balancers send
#: in the seconds before they notice the pod is going away.
SERVING = frozenset({Phase.READY, Phase.DRAINING})


class Lifecycle:
    """Phase, reason and in-flight count of one app; lives on the app's state, touched by its loop."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.phase = Phase.LOADING
        self.reason: str | None = "loading the model"
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def is_ready(self) -> bool:
        return self.phase is Phase.READY

    @property
    def serving(self) -> bool:
        return self.phase in SERVING

    def warming_up(self) -> None:
        self._move(Phase.WARMING_UP, "warming up: running the production shapes once before taking traffic")

    def ready(self) -> None:
        self._move(Phase.READY, None)

    def failed(self, reason: str) -> None:
        self._move(Phase.FAILED, reason)

    def drain(self) -> None:
        """Turn /ready to 503 for good; a failed server stays failed (its reason is more useful)."""
        if self.phase is not Phase.FAILED:
            self._move(Phase.DRAINING, "shutting down: finishing in-flight requests")

    def _move(self, phase: Phase, reason: str | None) -> None:
        if self.phase is Phase.DRAINING:
            return
        self.phase = phase
        self.reason = reason
        self.metrics.ready.set(1 if phase is Phase.READY else 0)

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()
        self.metrics.in_flight.inc()

    def leave(self) -> None:
        self.in_flight -= 1
        self.metrics.in_flight.dec()
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is in flight; False when `timeout_s` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True
