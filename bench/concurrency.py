"""Contender E: our server under N concurrent clients, each sending its share of k=10 requests.

Every level sends the same requests in total, so pairs/s across levels compare the server's
ability to merge concurrent requests into batches (and overlap HTTP and tokenising with
inference) rather than different work. Levels run in interleaved rounds (1, 4, 16 clients, then
16, 4, 1, ...), and the gain over one client is paired within each round: a shared VM's speed
drifts by tens of percent over minutes, which would otherwise read as a concurrency effect.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np

from bench.httpclient import rerank
from bench.workload import Request


def _client_loop(
    base_url: str, requests: Sequence[Request], start: threading.Barrier, timeout_s: float
) -> list[float]:
    latencies = []
    with httpx.Client(base_url=base_url, timeout=timeout_s) as client:
        client.get("/health")
        start.wait()
        for request in requests:
            latencies.append(rerank(client, request.query, request.passages).seconds)
    return latencies


def run_level(base_url: str, requests: Sequence[Request], clients: int, timeout_s: float) -> dict[str, Any]:
    """All `requests`, split round-robin over `clients` threads that start together; wall time to the last."""
    shares = [list(requests[i::clients]) for i in range(clients)]
    start = threading.Barrier(clients + 1)
    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(_client_loop, base_url, share, start, timeout_s) for share in shares]
        start.wait()
        started = time.perf_counter()
        latencies = [seconds for future in futures for seconds in future.result()]
        wall = time.perf_counter() - started
    pairs = sum(request.k for request in requests)
    return {
        "clients": clients,
        "requests": len(requests),
        "pairs": pairs,
        "wall_s": round(wall, 4),
        "pairs_per_s": round(pairs / wall, 2),
        "latencies_s": latencies,
    }


def round_orders(levels: Sequence[int], rounds: int) -> list[list[int]]:
    """Client counts per round, reversed every other round so linear drift cancels out."""
    return [list(levels) if index % 2 == 0 else list(reversed(levels)) for index in range(rounds)]


def summarize(runs: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One level over its rounds: median pairs/s, pooled latency percentiles, gain paired per round.

    `runs` and `baseline` (the one-client runs) are in round order; the gain of round i divides
    this level's pairs/s by the one-client pairs/s of the same round.
    """
    latencies = np.asarray([seconds for run in runs for seconds in run["latencies_s"]])
    rates = [run["pairs_per_s"] for run in runs]
    gains = [run["pairs_per_s"] / one["pairs_per_s"] for run, one in zip(runs, baseline, strict=True)]
    return {
        "clients": runs[0]["clients"],
        "rounds": len(runs),
        "requests": sum(run["requests"] for run in runs),
        "pairs_per_s": round(float(np.median(rates)), 2),
        "pairs_per_s_per_round": rates,
        "gain_vs_one_client": round(float(np.median(gains)), 3),
        "gain_per_round": [round(gain, 3) for gain in gains],
        "median_s": round(float(np.median(latencies)), 4),
        "p95_s": round(float(np.percentile(latencies, 95)), 4),
        "p99_s": round(float(np.percentile(latencies, 99)), 4),
    }
