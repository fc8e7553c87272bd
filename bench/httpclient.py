"""Contenders C/D/E talk to our server the way a user does: JSON over HTTP on a kept-alive connection."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


class ServerError(RuntimeError):
    """The server answered something other than 200 to a request the benchmark expects to succeed."""


@dataclass(frozen=True)
class Timed:
    seconds: float
    logits: list[float]


def rerank(client: httpx.Client, query: str, passages: Sequence[str]) -> Timed:
    """POST /rerank (TEI shape) asking for raw logits; time from send to parsed JSON, end to end."""
    body = {"query": query, "texts": list(passages), "raw_scores": True, "truncate": True}
    started = time.perf_counter()
    response = client.post("/rerank", json=body)
    results = response.json()
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise ServerError(f"/rerank answered {response.status_code}: {response.text[:300]}")
    if len(results) != len(passages):
        raise ServerError(f"/rerank returned {len(results)} results for {len(passages)} passages")
    logits = [0.0] * len(passages)
    for item in results:
        logits[item["index"]] = float(item["score"])
    return Timed(seconds=seconds, logits=logits)


def metric_samples(text: str) -> dict[str, float]:
    """Prometheus text -> {'name{label="v",...}': value}, labels sorted, for diffing two scrapes."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def scrape(client: httpx.Client) -> dict[str, float]:
    response = client.get("/metrics")
    response.raise_for_status()
    return metric_samples(response.text)


def delta_total(before: dict[str, float], after: dict[str, float], name: str) -> float:
    """Increase of a counter/histogram series summed over all its label sets between two scrapes."""
    prefix = name + "{"
    keys = {key for key in after if key.startswith(prefix)}
    return sum(after[key] - before.get(key, 0.0) for key in keys)
