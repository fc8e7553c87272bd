"""A load client that measures its own latencies: a known number of requests, bounded in time.

Each request is timed from just before it is sent to when its whole response is read, the
latency a caller of the Service feels. The client-side P95 is the nearest-rank 95th percentile
of those times, computed without Prometheus, so it can judge what Prometheus reports.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Result:
    started: float  # Unix time, for lining requests up with Prometheus samples
    latency_s: float
    status: int


async def drive(
    url: str,
    bodies: Sequence[dict[str, Any]],
    *,
    concurrency: int,
    pace_s: float = 0.0,
    budget_s: float,
) -> list[Result]:
    """POST every body to `url` with at most `concurrency` in flight, starting one every `pace_s`.

    Fails when the whole load takes longer than `budget_s`: a load that does not finish is a
    broken server, not a slow test.
    """
    results: list[Result] = []
    gate = asyncio.Semaphore(concurrency)

    async def send(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        async with gate:
            started, clock = time.time(), time.perf_counter()
            response = await client.post(url, json=body)
            response.read()
            results.append(Result(started, time.perf_counter() - clock, response.status_code))

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with asyncio.timeout(budget_s), httpx.AsyncClient(timeout=budget_s, limits=limits) as client:
        tasks = []
        for body in bodies:
            tasks.append(asyncio.create_task(send(client, body)))
            if pace_s:
                await asyncio.sleep(pace_s)
        await asyncio.gather(*tasks)
    return results


def p95(latencies: Sequence[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(latencies)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]
