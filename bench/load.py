"""The open-loop load generator: send on a schedule, never wait for an answer before the next send.

One asyncio httpx client on loopback fires each request at its scheduled offset as its own task,
with no connection limit (a pool limit would quietly turn an open loop into a closed one). Each
request has a deadline counted from when it was *due*; past it the client gives up and records a
timeout. Latency is measured from the scheduled time too, so when this process falls behind (it
shares the cores with the server) the delay is charged to the contender rather than hidden, and
the lag is recorded so a run where the generator itself was the bottleneck can be told apart.

Request bodies are encoded to JSON bytes before the clock starts.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Final

import httpx

from bench.loadstats import CLIENT_TIMEOUT, TRANSPORT_ERROR, Record
from bench.workload import Request

PATH: Final = "/rerank"
HEADERS: Final = {"content-type": "application/json"}
#: The first arrival is due this long after the client is set up, so set-up never reads as lag.
LEAD_S: Final = 0.2


def encode(request: Request) -> bytes:
    """The TEI-shaped body every contender accepts (the recipes ignore the two flags)."""
    body = {"query": request.query, "texts": list(request.passages), "raw_scores": True, "truncate": True}
    return json.dumps(body).encode()


async def _send(
    client: httpx.AsyncClient, index: int, body: bytes, due: float, timeout_s: float, t0: float
) -> Record:
    loop = asyncio.get_running_loop()
    sent = loop.time()
    try:
        async with asyncio.timeout_at(due + timeout_s):
            response = await client.post(PATH, content=body, headers=HEADERS)
        status = response.status_code
    except TimeoutError:
        status = CLIENT_TIMEOUT
    except httpx.TransportError:
        status = TRANSPORT_ERROR
    return Record(
        index=index, scheduled_s=due - t0, sent_s=sent - t0, latency_s=loop.time() - due, status=status
    )


async def open_loop(
    base_url: str, bodies: Sequence[bytes], schedule: Sequence[float], timeout_s: float
) -> list[Record]:
    """Send request i (body i modulo len(bodies)) at schedule[i]; every record, in schedule order."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=None) as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time() + LEAD_S
        tasks = []
        for index, offset in enumerate(schedule):
            due = t0 + offset
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            body = bodies[index % len(bodies)]
            tasks.append(asyncio.create_task(_send(client, index, body, due, timeout_s, t0)))
        return list(await asyncio.gather(*tasks))


def run_schedule(
    base_url: str, bodies: Sequence[bytes], schedule: Sequence[float], timeout_s: float
) -> list[Record]:
    """One step in a fresh event loop; returns when the last request answered or gave up."""
    return asyncio.run(open_loop(base_url, bodies, schedule, timeout_s))


def sequential_latencies(base_url: str, bodies: Sequence[bytes], count: int, timeout_s: float) -> list[float]:
    """`count` requests one after another on one connection: the contender's unloaded latency."""
    latencies = []
    with httpx.Client(base_url=base_url, timeout=timeout_s) as client:
        for index in range(count):
            started = time.perf_counter()
            response = client.post(PATH, content=bodies[index % len(bodies)], headers=HEADERS)
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies
