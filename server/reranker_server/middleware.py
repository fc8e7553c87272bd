"""Pure ASGI middleware for the rerank endpoints: body guard and request metrics.

Pure ASGI (not BaseHTTPMiddleware) because both sit on the hot path and must see the final status
of every response, including error responses produced by exception handlers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reranker_server.errors import BadRequest, BodyTooLarge, RerankerError, error_response
from reranker_server.lifecycle import Lifecycle
from reranker_server.metrics import Metrics, k_bucket

#: Keys in the request's scope state through which route handlers tell RequestMetrics about a request.
STATE_CANDIDATES: Final = "reranker_candidates"
STATE_ADMITTED: Final = "reranker_admitted"
STATE_SHED_PREDICTED_S: Final = "reranker_shed_predicted_s"


def note_candidates(scope: Scope, candidates: int) -> None:
    """Record how many candidates the request will score (its k bucket)."""
    scope.setdefault("state", {})[STATE_CANDIDATES] = candidates


def note_admitted(scope: Scope) -> None:
    """Record that the request passed admission: from here on its latency is a sample."""
    scope.setdefault("state", {})[STATE_ADMITTED] = True


def note_shed(scope: Scope, predicted_s: float) -> None:
    """Record that admission refused the request, and the latency it was predicted to have.

    Admission keeps the answers within the SLO by refusing the rest, so the answers' P95 alone would
    tell the autoscaler all is well while a share of the traffic gets 429. A refused request is
    therefore a latency sample at its prediction: the P95 the HPA reads rises with the shed demand.
    """
    scope.setdefault("state", {})[STATE_SHED_PREDICTED_S] = predicted_s


class BodyGuard:
    """Read a rerank body up to the size limit and check it is UTF-8, before any parsing.

    Oversized bodies are refused from Content-Length without reading them, chunked ones as soon as
    they pass the limit. The buffered body is replayed to the app, which needs all of it anyway.
    Rerank bodies are always JSON: a missing or form Content-Type (`curl -d` sends one) is read as
    JSON rather than failing with a puzzling "not an object".
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        paths: Collection[str],
        on_reject: Callable[[RerankerError], None],
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = frozenset(paths)
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        too_large = BodyTooLarge(
            f"the request body exceeds the {self.max_bytes}-byte limit (max_request_bytes)", param="body"
        )
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(too_large, scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client disconnected before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(too_large, scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            error = BadRequest(f"the request body is not valid UTF-8 (byte {exc.start})", param="body")
            await self._refuse(error, scope, receive, send)
            return
        await self.app(_as_json(scope), _replay(body, receive), send)

    async def _refuse(self, error: RerankerError, scope: Scope, receive: Receive, send: Send) -> None:
        self.on_reject(error)
        await error_response(error)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _as_json(scope: Scope) -> Scope:
    headers = [(name, value) for name, value in scope["headers"] if name != b"content-type"]
    declared = next((value for name, value in scope["headers"] if name == b"content-type"), b"")
    if b"json" in declared:
        return scope
    return {**scope, "headers": [*headers, (b"content-type", b"application/json")]}


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class RequestMetrics:
    """Count every rerank response by status; time those admitted to the model queue by k bucket.

    Requests refused at the door (4xx, 429) are counted but are not latency samples: a fast refusal
    would pull P95 down exactly when the server is overloaded and the autoscaler must see it.
    """

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, lifecycle: Lifecycle, endpoints: Collection[str]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.lifecycle = lifecycle
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = scope.get("path")
        if scope["type"] != "http" or endpoint not in self.endpoints:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        state: dict[str, Any] = scope.setdefault("state", {})

        async def observe_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.lifecycle.enter()
        try:
            await self.app(scope, receive, observe_status)
        finally:
            self.lifecycle.leave()
            self.metrics.requests.labels(endpoint=endpoint, code=str(status)).inc()
            candidates = state.get(STATE_CANDIDATES)
            shed_predicted_s = state.get(STATE_SHED_PREDICTED_S)
            if candidates and (state.get(STATE_ADMITTED) or shed_predicted_s is not None):
                elapsed = time.perf_counter() - started
                self.metrics.request_duration.labels(
                    endpoint=endpoint, k_bucket=k_bucket(candidates)
                ).observe(elapsed if shed_predicted_s is None else max(elapsed, shed_predicted_s))
