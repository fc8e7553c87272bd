"""Admission by queued tokens: refuse work that cannot finish before its deadline.

Counting requests says nothing about work (k=1 and k=100 at 512 tokens differ 100x), so the queue
is measured in tokens and drained at a measured rate. Warm-up gives the first measurement, every
micro-batch refines it. A request is refused (429 + Retry-After) when the tokens ahead of it plus
its own would take longer than its deadline; the queue therefore never grows beyond what the
server can finish in one timeout, however hard the burst.
"""

from __future__ import annotations

import math
import threading
from typing import Final

#: Admit only what is predicted to finish within this share of the deadline: the rate is an
#: average, and a request that finishes just before its deadline has already failed its SLO.
DEADLINE_HEADROOM: Final = 0.8
#: How much of the previous measurements survives each new one (about the last ten batches count).
DECAY: Final = 0.9


class Rate:
    """Seconds per token over recent work, weighted by tokens: a tiny batch's noisy timing
    (dominated by per-call overhead) moves it little, a big batch's a lot."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.tokens = 0.0

    def observe(self, tokens: int, seconds: float) -> None:
        self.seconds = DECAY * self.seconds + seconds
        self.tokens = DECAY * self.tokens + tokens

    @property
    def per_token(self) -> float | None:
        return self.seconds / self.tokens if self.tokens > 0 else None


class ThroughputEstimate:
    """Seconds of pipeline work per real token, from measured micro-batches and tokenisation.

    Tokenising and inference overlap but share the same CPUs, so the estimate adds both:
    conservative, and right when the two contend for cores.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inference = Rate()
        self._tokenize = Rate()

    def observe_inference(self, tokens: int, seconds: float) -> None:
        if tokens > 0 and seconds > 0:
            with self._lock:
                self._inference.observe(tokens, seconds)

    def observe_tokenize(self, tokens: int, seconds: float) -> None:
        if tokens > 0 and seconds > 0:
            with self._lock:
                self._tokenize.observe(tokens, seconds)

    @property
    def seconds_per_token(self) -> float | None:
        with self._lock:
            inference = self._inference.per_token
            if inference is None:
                return None
            return inference + (self._tokenize.per_token or 0.0)


def retry_after_s(
    queued_tokens: int,
    request_tokens: int,
    seconds_per_token: float | None,
    deadline_s: float,
) -> int | None:
    """None to admit; otherwise whole seconds until enough of the queue has drained.

    An empty queue always admits (a request bigger than one deadline's worth is still served when
    it is alone: refusing it forever would help nobody), as does a server with no measurement yet.
    """
    if queued_tokens <= 0 or seconds_per_token is None:
        return None
    budget_s = deadline_s * DEADLINE_HEADROOM
    finish_s = (queued_tokens + request_tokens) * seconds_per_token
    if finish_s <= budget_s:
        return None
    return max(1, math.ceil(finish_s - budget_s))
