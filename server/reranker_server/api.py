"""The FastAPI app: routes, lifespan, and the one rerank path both API families share.

`create_app` builds everything from a Settings object and does no work: the lifespan starts a
background start-up (load, batcher, warm-up, ready) and yields at once, so /health answers and
/ready says 503 with a reason while the model loads and warms up. After the server stops
accepting work, the lifespan marks the app not ready, waits for in-flight requests (bounded), and
stops the batcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server
from pydantic import BaseModel
from starlette.responses import Response

from reranker_server import __doc__ as package_doc
from reranker_server.artefact import ArtefactError, ModelError
from reranker_server.auth import ApiKeyGuard, KeyFile
from reranker_server.batcher import Batcher, Scored
from reranker_server.config import Settings
from reranker_server.engine import BackendUnavailable, Engine, EngineError, Truncation, check_engine_canary
from reranker_server.errors import (
    JSON_MEDIA_TYPE,
    KCapExceeded,
    NotReady,
    Overloaded,
    RerankerError,
    install_error_handlers,
)
from reranker_server.int8weights import saturation_warning
from reranker_server.lifecycle import Lifecycle
from reranker_server.loading import load_engine
from reranker_server.metrics import Metrics
from reranker_server.middleware import BodyGuard, RequestMetrics, note_admitted, note_candidates, note_shed
from reranker_server.schemas import (
    Health,
    InfinityRerankRequest,
    InfinityRerankResponse,
    Info,
    Readiness,
    RerankRequest,
    RerankResponse,
    SlashRerankRequest,
    TEIRerankResponse,
)
from reranker_server.warmup import WarmupReport, warm_up

log = logging.getLogger(__name__)

VERSION: Final = "0.1.0"
TEI_PATH: Final = "/rerank"
COHERE_V1_PATH: Final = "/v1/rerank"
COHERE_V2_PATH: Final = "/v2/rerank"
RERANK_PATHS: Final = (TEI_PATH, COHERE_V1_PATH, COHERE_V2_PATH)
#: The termination-log reason of a gpu server that found no usable CUDA provider (the operator shows it).
GPU_UNAVAILABLE: Final = "GPUUnavailable"
INFO_PATH: Final = "/info"
#: What an API key guards: the routes that spend the model, and what they serve. The probes must answer
#: the kubelet, which has no key; /metrics answers Prometheus (the NetworkPolicy limits who reaches it).
KEYED_PATHS: Final = (*RERANK_PATHS, INFO_PATH)
#: Response headers under the truncate k-cap policy: how many candidates came and how many were scored.
RECEIVED_HEADER: Final = "X-Reranker-Candidates-Received"
SCORED_HEADER: Final = "X-Reranker-Candidates-Scored"
ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: {"description": "The body is not JSON or not UTF-8 (`invalid_body`)."},
    401: {"description": "API keys are on and the request has no valid `Authorization: Bearer` key."},
    413: {"description": "More documents than the k cap (`k_cap_exceeded`) or a body over the size limit."},
    422: {"description": "A field is missing, has the wrong type or is out of range (`invalid_request`)."},
    429: {"description": "Queued work cannot finish before the deadline (`overloaded`); see Retry-After."},
    503: {
        "description": "Not ready or shutting down (`not_ready`), or past the deadline (`deadline_exceeded`)."
    },
}

T = TypeVar("T")


@dataclass
class Services:
    """Everything the routes need, built by create_app and kept on `app.state.services`."""

    settings: Settings
    metrics: Metrics
    lifecycle: Lifecycle
    engine: Engine | None = None
    batcher: Batcher | None = None
    warmup: WarmupReport | None = None
    #: How the warm-up integrity check went; None when the model has no canaries (prepared on the spot).
    integrity: str | None = None


def services(request: Request) -> Services:
    return app_services(request.app)


def app_services(app: FastAPI) -> Services:
    return app.state.services


def create_app(settings: Settings, *, engine: Engine | None = None) -> FastAPI:
    """Build the app; `engine` lets tests (and embedders) pass an already loaded model.

    Raises ApiKeyError when --api-keys-file is set but unusable: never serve open by accident.
    """
    keys = KeyFile(settings.api_keys_file) if settings.api_keys_file is not None else None
    metrics = Metrics.create()
    state = Services(settings=settings, metrics=metrics, lifecycle=Lifecycle(metrics), engine=engine)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        listener = (
            start_http_server(settings.metrics_port, settings.host, metrics.registry)
            if settings.metrics_port
            else None
        )
        starting = asyncio.create_task(start(state), name="reranker-start")
        try:
            yield
        finally:
            state.lifecycle.drain()
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            await state.lifecycle.wait_idle(settings.drain_timeout_s)
            if state.batcher is not None:
                await asyncio.to_thread(state.batcher.stop, settings.drain_timeout_s)
            if listener is not None:
                listener[0].shutdown()
                listener[0].server_close()

    app = FastAPI(
        title="kube-reranker server",
        version=VERSION,
        summary=(package_doc or "").strip(),
        description=(
            "Cross-encoder reranking with ONNX Runtime. `/rerank` speaks text-embeddings-inference's API, "
            "`/v1/rerank` and `/v2/rerank` Cohere's (and Jina's/Infinity's). Errors share one envelope: "
            '`{"error": {"code", "message", "param"}}`.'
        ),
        lifespan=lifespan,
    )
    app.state.services = state

    def count_rejection(error: RerankerError) -> None:
        if error.rejection is not None:
            metrics.rejections.labels(reason=error.rejection).inc()

    install_error_handlers(app, on_error=count_rejection)
    app.add_middleware(
        BodyGuard, max_bytes=settings.max_request_bytes, paths=RERANK_PATHS, on_reject=count_rejection
    )
    if keys is not None:
        app.add_middleware(ApiKeyGuard, keys=keys, paths=KEYED_PATHS, on_reject=count_rejection)
    app.add_middleware(RequestMetrics, metrics=metrics, lifecycle=state.lifecycle, endpoints=RERANK_PATHS)
    app.include_router(tei_router)
    app.include_router(cohere_router)
    app.include_router(ops_router)
    return app


async def start(state: Services) -> None:
    """Load, start the batcher, warm up, mark ready; any failure leaves /ready 503 with its reason."""
    settings, lifecycle, metrics = state.settings, state.lifecycle, state.metrics
    try:
        if state.engine is None:
            state.engine = await in_daemon_thread(lambda: load_engine(settings))
        engine = state.engine
        metrics.model_info.labels(
            model=settings.model,
            revision=settings.revision,
            backend=settings.backend,
            quantization=settings.quantize,
            max_length=str(engine.max_length),
            digest=engine.files.digest or "",
        ).set(1)
        if engine.files.canary is not None:
            state.integrity = await in_daemon_thread(lambda: verify_integrity(engine))
        state.batcher = Batcher(
            engine,
            max_batch_tokens=settings.batch_tokens,
            max_wait_s=settings.max_batch_wait_s,
            metrics=metrics,
        )
        state.batcher.start()
        lifecycle.warming_up()
        state.warmup = await warm_up(
            state.batcher, passes=settings.warmup_requests, max_candidates=settings.max_candidates
        )
        metrics.warmup_duration.set(state.warmup.duration_s)
        if state.warmup.kcap_latency_s is not None:
            metrics.warmup_kcap_latency.set(state.warmup.kcap_latency_s)
        lifecycle.ready()
        log.info("ready: serving %s on %s", settings.model, ", ".join(engine.providers))
    except (ModelError, EngineError) as exc:
        log.error("not ready: %s", exc)
        lifecycle.failed(str(exc))
        if isinstance(exc, ModelError):
            report_refusal(settings, f"{exc.reason}: {exc}")
        elif isinstance(exc, BackendUnavailable):
            report_refusal(settings, f"{GPU_UNAVAILABLE}: {exc}")
    except Exception as exc:
        log.exception("start-up failed")
        lifecycle.failed(f"start-up failed: {type(exc).__name__}; see the server log")


def report_refusal(settings: Settings, line: str) -> None:
    """The kubelet shows this file's text once the container restarts: the operator reads it from there."""
    if settings.termination_log is None:
        return
    try:
        settings.termination_log.write_text(line)
    except OSError as exc:
        log.warning("could not write the start-up failure to %s: %s", settings.termination_log, exc)


def verify_integrity(engine: Engine) -> str:
    """The artefact's canaries, scored by this pod's graph on this pod's CPU, against PyTorch's logits."""
    canary = engine.files.canary
    assert canary is not None
    check = check_engine_canary(engine, canary)
    if not check.passed:
        cause = saturation_warning(engine.files.graph) if engine.files.quantization == "int8" else None
        raise ArtefactError(
            f"integrity check failed: {check.describe(canary)}; the artefact does not score as its "
            "checkpoint did (damaged volume, or a graph prepared for another runtime): re-prepare it"
            + (f"; likely cause: {cause}" if cause else ""),
            reason="IntegrityCheckFailed",
        )
    log.info("integrity check passed: %s", check.describe(canary))
    return f"passed: {check.describe(canary)}"


async def in_daemon_thread(work: Callable[[], T]) -> T:
    """Run blocking work off the loop on a daemon thread: a SIGTERM during a long download must not
    wait for it (the default executor's threads would keep the process alive until it ends)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            result, error = work(), None
        except BaseException as exc:
            result, error = None, exc
        # The loop is gone when the server stopped while this ran: nobody waits for the result.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, result, error)

    threading.Thread(target=run, name="reranker-load", daemon=True).start()
    return await future


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# -- the shared rerank path ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    scored: Scored
    documents: Sequence[str]
    received: int

    def headers(self) -> dict[str, str]:
        if len(self.documents) == self.received:
            return {}
        return {RECEIVED_HEADER: str(self.received), SCORED_HEADER: str(len(self.documents))}


async def rerank(
    request: Request,
    query: str,
    documents: Sequence[str],
    *,
    param: str,
    max_tokens_per_doc: int | None = None,
    truncation: Truncation = "right",
) -> Outcome:
    """Admission (readiness, k cap, queue room) before any work, then the batcher."""
    state = services(request)
    settings = state.settings
    if not state.lifecycle.serving or state.batcher is None:
        raise NotReady(f"the model is not ready: {state.lifecycle.reason}")
    received = len(documents)
    cap = settings.max_candidates
    if received > cap:
        if settings.k_cap_policy == "reject":
            raise KCapExceeded(
                f"{received} documents exceed the k cap of {cap} (max_candidates); send at most {cap}",
                param=param,
            )
        documents = documents[:cap]
    note_candidates(request.scope, len(documents))
    batcher = state.batcher
    estimated = batcher.estimate(query, documents)
    try:
        batcher.admit(estimated, settings.admission_budget_s)
    except Overloaded as refused:
        note_shed(request.scope, refused.predicted_s)
        raise
    note_admitted(request.scope)
    scored = await batcher.score(
        query,
        documents,
        timeout_s=settings.request_timeout_s,
        max_tokens_per_doc=max_tokens_per_doc,
        truncation=truncation,
        estimated_tokens=estimated,
    )
    return Outcome(scored=scored, documents=documents, received=received)


def json_response(response: BaseModel, headers: dict[str, str]) -> Response:
    """Fields left unset (`text`, `document` when not asked for) are omitted, as TEI and Cohere omit them."""
    return Response(
        response.model_dump_json(exclude_none=True).encode(), media_type=JSON_MEDIA_TYPE, headers=headers
    )


tei_router = APIRouter(tags=["text-embeddings-inference"])
cohere_router = APIRouter(tags=["Cohere / Jina"])
ops_router = APIRouter(tags=["operations"])


@tei_router.post(
    TEI_PATH,
    response_model=TEIRerankResponse | InfinityRerankResponse,
    operation_id="rerank",
    responses=ERROR_RESPONSES,
    summary="Rerank texts against a query (text-embeddings-inference or Infinity shape)",
)
async def rerank_tei(body: SlashRerankRequest, request: Request) -> Response:
    """Score each text against the query; results sorted by score, best first.

    Example (TEI, answers a list): `{"query": "What is Deep Learning?", "texts": ["Deep Learning", "hi"]}`
    Example (Infinity, answers `{"object": "rerank", "results": [...]}`): `{"query": "q", "documents": [...]}`
    """
    if isinstance(body, InfinityRerankRequest):
        outcome = await rerank(request, body.query, body.documents, param="documents")
        infinity = InfinityRerankResponse.build(
            body,
            outcome.scored.logits,
            outcome.documents,
            model=services(request).settings.model,
            tokens=outcome.scored.tokens,
        )
        return json_response(infinity, outcome.headers())
    outcome = await rerank(
        request, body.query, body.texts, param="texts", truncation=body.truncation_direction.lower()
    )
    response = TEIRerankResponse.build(
        outcome.scored.logits, outcome.documents, raw_scores=body.raw_scores, return_text=body.return_text
    )
    return json_response(response, outcome.headers())


async def rerank_cohere(body: RerankRequest, request: Request, *, api_version: str) -> Response:
    outcome = await rerank(
        request, body.query, body.documents, param="documents", max_tokens_per_doc=body.max_tokens_per_doc
    )
    if len(outcome.documents) != len(body.documents):
        body = body.model_copy(update={"documents": list(outcome.documents)})
    response = RerankResponse.build(
        body,
        outcome.scored.logits,
        model=services(request).settings.model,
        tokens=outcome.scored.tokens,
        api_version=api_version,
    )
    return json_response(response, outcome.headers())


@cohere_router.post(
    COHERE_V1_PATH,
    response_model=RerankResponse,
    operation_id="rerank_v1",
    responses=ERROR_RESPONSES,
    summary="Rerank documents (Cohere v1 / Jina shape)",
)
async def rerank_v1(body: RerankRequest, request: Request) -> Response:
    """Documents may be strings or `{"text": ...}` objects; `top_n` and `return_documents` as in Cohere v1.

    Example: `{"query": "capital of the US?", "documents": ["Carson City ...", {"text": "Washington"}]}`
    """
    return await rerank_cohere(body, request, api_version="1")


@cohere_router.post(
    COHERE_V2_PATH,
    response_model=RerankResponse,
    operation_id="rerank_v2",
    responses=ERROR_RESPONSES,
    summary="Rerank documents (Cohere v2 shape)",
)
async def rerank_v2(body: RerankRequest, request: Request) -> Response:
    """As /v1/rerank, plus `max_tokens_per_doc` (each document cut to that many tokens first).

    Example: `{"model": "rerank-v3.5", "query": "capital of the US?", "documents": ["...", "..."]}`
    """
    return await rerank_cohere(body, request, api_version="2")


@ops_router.get("/health", response_model=Health, operation_id="health", summary="Liveness")
async def health() -> Health:
    """200 while the process is alive; never depends on the model. Example: `GET /health`"""
    return Health()


@ops_router.get(
    "/ready",
    response_model=Readiness,
    operation_id="ready",
    summary="Readiness: model loaded and warmed up",
    responses={
        503: {"model": Readiness, "description": "Loading, warming up, failed (with reason) or draining."}
    },
)
async def ready(request: Request) -> Response:
    """200 once the model is loaded and warm-up has finished; 503 with the phase and reason otherwise.

    Example: `GET /ready` -> `{"status": "warming_up", "reason": "..."}` (503)
    """
    lifecycle = services(request).lifecycle
    body = Readiness(status=lifecycle.phase.value, reason=lifecycle.reason)
    status = 200 if lifecycle.is_ready else 503
    return Response(body.model_dump_json(exclude_none=True), status_code=status, media_type=JSON_MEDIA_TYPE)


@ops_router.get(INFO_PATH, response_model=Info, operation_id="info", summary="What is served, and how")
async def info(request: Request) -> Info:
    """Model, revision, backend, providers, limits, quantisation and warm-up results. Example: `GET /info`"""
    state = services(request)
    settings, engine, warmup = state.settings, state.engine, state.warmup
    return Info(
        model=settings.model,
        revision=settings.revision,
        resolved_revision=engine.files.revision if engine else None,
        artefact_digest=engine.files.digest if engine else None,
        integrity_check=state.integrity,
        backend=settings.backend,
        execution_providers=engine.providers if engine else [],
        quantization=settings.quantize,
        fused_attention=engine.files.fused if engine else None,
        max_length=engine.max_length if engine else settings.max_length,
        max_candidates=settings.max_candidates,
        k_cap_policy=settings.k_cap_policy,
        max_batch_tokens=settings.batch_tokens,
        intra_op_threads=engine.threads if engine else None,
        latency_slo_ms=settings.latency_slo_ms,
        request_timeout_ms=round(settings.request_timeout_s * 1000),
        status=state.lifecycle.phase.value,
        warmup_seconds=warmup.duration_s if warmup else None,
        warmup_kcap_latency_seconds=warmup.kcap_latency_s if warmup else None,
        test_model_note=engine.files.config.get("kube_reranker_note") if engine else None,
    )


@ops_router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}},
)
async def prometheus_metrics(request: Request) -> Response:
    """The app's registry in Prometheus text format (also on --metrics-port). Example: `GET /metrics`"""
    return Response(generate_latest(services(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)
