"""Contender E: our server under N concurrent clients, each sending its share of k=10 requests.

Every level sends the same requests in total, so pairs/s across levels compare the server's
ability to merge concurrent requests into batches (and overlap HTTP and tokenising with
inference) rather than different work.
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
    values = np.asarray(latencies)
    return {
        "clients": clients,
        "requests": len(requests),
        "pairs": pairs,
        "wall_s": round(wall, 4),
        "pairs_per_s": round(pairs / wall, 2),
        "median_s": round(float(np.median(values)), 4),
        "p95_s": round(float(np.percentile(values, 95)), 4),
        "p99_s": round(float(np.percentile(values, 99)), 4),
    }
