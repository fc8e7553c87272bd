"""Warm-up: run the shapes production will see before /ready turns 200.

The first ONNX Runtime call of a shape pays for memory-arena growth, kernel selection and cold
caches; a first user request should not. The plan covers 1 pair and k-cap pairs, each with short
and max_length passages, through the real batcher (so admission gets its first throughput
estimate and character-per-token calibration). The last k-cap x max_length request's latency is
exported: the operator compares it with the SLO, since no later request can be slower.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Final

from reranker_server.batcher import Batcher
from reranker_server.samples import WARMUP_QUERY, WORDS

log = logging.getLogger(__name__)

SHORT_WORDS: Final = 12
#: Coprime with the number of words, so each passage visits them all in a different order.
STRIDE: Final = 7
#: Warm-up requests are not held to the request deadline: on a slow CPU a k-cap request at
#: max_length may legitimately take longer than the SLO, and that is exactly what it measures.
WARMUP_TIMEOUT_S: Final = 3600.0


@dataclass(frozen=True)
class Shape:
    pairs: int
    long: bool

    @property
    def label(self) -> str:
        return f"{self.pairs} pair(s) x {'max_length' if self.long else 'short'}"


@dataclass(frozen=True)
class WarmupReport:
    duration_s: float
    kcap_latency_s: float | None
    requests: int


def plan(max_candidates: int) -> list[Shape]:
    """The shapes of one warm-up pass, the k-cap x max_length one last so it is measured warm."""
    return [
        Shape(1, long=False),
        Shape(1, long=True),
        Shape(max_candidates, long=False),
        Shape(max_candidates, long=True),
    ]


def documents(shape: Shape, max_length: int) -> list[str]:
    """Passages for `shape`: long ones have more words than max_length has tokens, so they fill it."""
    count = max_length + 16 if shape.long else SHORT_WORDS
    return [
        " ".join(WORDS[(index + position * STRIDE) % len(WORDS)] for position in range(count))
        for index in range(shape.pairs)
    ]


async def warm_up(batcher: Batcher, *, passes: int, max_candidates: int) -> WarmupReport:
    """Run `passes` passes of the plan; report the total time and the warm k-cap latency."""
    started = time.perf_counter()
    kcap_latency: float | None = None
    count = 0
    for _ in range(passes):
        for shape in plan(max_candidates):
            texts = documents(shape, batcher.engine.max_length)
            request_started = time.perf_counter()
            await batcher.score(WARMUP_QUERY, texts, timeout_s=WARMUP_TIMEOUT_S)
            latency = time.perf_counter() - request_started
            count += 1
            log.debug("warm-up %s: %.3f s", shape.label, latency)
            if shape.pairs == max_candidates and shape.long:
                kcap_latency = latency
    report = WarmupReport(
        duration_s=time.perf_counter() - started, kcap_latency_s=kcap_latency, requests=count
    )
    log.info(
        "warm-up done: %d requests in %.2f s; one k-cap (%d) request at max_length (%d) takes %s",
        count,
        report.duration_s,
        max_candidates,
        batcher.engine.max_length,
        f"{kcap_latency:.3f} s" if kcap_latency is not None else "n/a",
    )
    return report
