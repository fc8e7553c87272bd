"""A small local HTTP server speaking Prometheus' instant-query API (/api/v1/query), for the operator loop.

It answers each query from a table the test sets (an expression -> a value, or no series), in
Prometheus' JSON shapes, and records every query it received so tests can assert the operator
asked for exactly the PromQL the autoscaler and alerts use. `failing` makes it answer like a
Prometheus that is up but broken (HTTP 503 with an error body).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class FakePrometheus:
    url: str = ""
    answers: dict[str, float] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    failing: bool = False

    async def handle(self, request: web.Request) -> web.Response:
        expression = request.query.get("query", "")
        self.queries.append(expression)
        if self.failing:
            return web.json_response(
                {"status": "error", "errorType": "unavailable", "error": "TSDB not ready"}, status=503
            )
        result = []
        if expression in self.answers:
            result = [{"metric": {}, "value": [time.time(), str(self.answers[expression])]}]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})


@contextlib.asynccontextmanager
async def serve_fake_prometheus() -> AsyncIterator[FakePrometheus]:
    fake = FakePrometheus()
    app = web.Application()
    app.router.add_get("/api/v1/query", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host="127.0.0.1", port=0)
    await site.start()
    (host, port) = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()
