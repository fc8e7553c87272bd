"""One interface over the four contenders: score request i of a (workload, k) stream, timed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from bench.httpclient import Timed, rerank, scrape
from bench.procs import ServerProcess, WorkerProcess
from bench.workload import Request, Workload


@dataclass
class InProcessContender:
    """A or B: the worker rebuilds the same request from its id and times only the scoring call."""

    key: str
    process: WorkerProcess
    timeout_s: float

    def score(self, workload: Workload, k: int, index: int, request: Request) -> Timed:
        answer = self.process.request(
            {"op": "score", "workload": workload, "k": k, "index": index}, self.timeout_s
        )
        return Timed(seconds=answer["seconds"], logits=answer["scores"])

    def score_pairs(self, query: str, passages: Sequence[str]) -> list[float]:
        answer = self.process.request(
            {"op": "pairs", "pairs": [[query, p] for p in passages]}, self.timeout_s
        )
        return answer["scores"]

    def close(self) -> None:
        return None


@dataclass
class HttpContender:
    """C or D: our server, end to end over HTTP from this process, as a client would see it."""

    key: str
    process: ServerProcess
    timeout_s: float
    client: httpx.Client | None = None

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.process.base_url, timeout=self.timeout_s)

    def score(self, workload: Workload, k: int, index: int, request: Request) -> Timed:
        assert self.client is not None
        return rerank(self.client, request.query, request.passages)

    def score_pairs(self, query: str, passages: Sequence[str]) -> list[float]:
        assert self.client is not None
        return rerank(self.client, query, passages).logits

    def metrics(self) -> dict[str, float]:
        assert self.client is not None
        return scrape(self.client)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


Contender = InProcessContender | HttpContender
