"""Admission by queued tokens: refuse work that cannot finish within the latency SLO.

Counting requests says nothing about work (k=1 and k=100 at 512 tokens differ 100x), so the queue
is measured in tokens and drained at a measured rate. Warm-up gives the first measurement, every
micro-batch refines it. A request is refused (429 + Retry-After) when the tokens ahead of it plus
its own would take longer than its budget: the SLO (or the deadline, when that is shorter). The
queue therefore never holds more than one SLO of work, however hard the burst, and the answers it
does give stay within the SLO.

Why the SLO and not the deadline (4 SLOs by default): measured with open-loop load
(docs/capacity.md), admitting up to the deadline let a k=40 int8 pod at twice its capacity queue
3 SLOs of work, so nearly every answer came late: goodput fell to a third of capacity. Budgeted by
the SLO, the same pod kept its goodput at capacity and its P95 within the SLO, shedding the rest.
"""

from __future__ import annotations

import math
import threading
from typing import Final

#: Admit only what is predicted to finish within this share of the budget: the rate is an
#: average, and the P95 the SLO bounds sits above it.
BUDGET_HEADROOM: Final = 0.8
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

    The two stages run on their own threads: while one round is scored the next is tokenised, so
    the queue ahead of a request drains at the slower stage's rate, and only the newcomer's pass
    through the faster stage adds to it (nothing hides the request at the head of an idle
    pipeline). Adding both stages for every queued token counted the overlapped one twice, and each
    stage's time under load also holds the CPU the other took: open-loop snippets
    (docs/capacity.md) were refused at a P95 of 353 ms against a 600 ms SLO. Draining at the
    inference rate alone is as wrong the other way: a small model, whose tokenising is the slower
    stage, queued twice what it could finish within the deadline.
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
    def inference_per_token(self) -> float | None:
        with self._lock:
            return self._inference.per_token

    @property
    def tokenize_per_token(self) -> float:
        with self._lock:
            return self._tokenize.per_token or 0.0

    @property
    def seconds_per_token(self) -> float | None:
        """What one token of a lone request costs: tokenised, then scored."""
        inference = self.inference_per_token
        return None if inference is None else inference + self.tokenize_per_token


def predicted_finish_s(
    queued_tokens: int,
    request_tokens: int,
    seconds_per_token: float | None,
    tokenize_s_per_token: float = 0.0,
) -> float:
    """When a request admitted now would be answered: the queue ahead of it and its own tokens
    through the slower stage (tokenising or scoring, `seconds_per_token` being the scoring), plus
    its own tokens through the faster one, which no later round overlaps."""
    inference = seconds_per_token or 0.0
    bottleneck, other = max(inference, tokenize_s_per_token), min(inference, tokenize_s_per_token)
    return (queued_tokens + request_tokens) * bottleneck + request_tokens * other


def retry_after_s(
    queued_tokens: int,
    request_tokens: int,
    seconds_per_token: float | None,
    budget_s: float,
    tokenize_s_per_token: float = 0.0,
) -> int | None:
    """None to admit; otherwise whole seconds until enough of the queue has drained.

    `seconds_per_token` is the inference rate. An empty queue always admits (a request bigger than
    one budget's worth is still served when it is alone: refusing it forever would help nobody),
    as does a server with no measurement yet.
    """
    if queued_tokens <= 0 or seconds_per_token is None:
        return None
    allowed_s = budget_s * BUDGET_HEADROOM
    finish_s = predicted_finish_s(queued_tokens, request_tokens, seconds_per_token, tokenize_s_per_token)
    if finish_s <= allowed_s:
        return None
    return max(1, math.ceil(finish_s - allowed_s))
