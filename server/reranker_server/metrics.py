"""Prometheus metrics of one app, on a registry of its own.

Names and labels are a contract: Prometheus rules, KEDA and the HPA query them. Latency is
labelled by candidate-count bucket (`k_bucket`) so P95 can be read per k segment; labels are
bounded (three endpoints, six buckets, four reasons) so the series count is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Dense between 5 ms and 10 s (steps of at most ~25 %) so histogram_quantile reads P95 closely.
LATENCY_BUCKETS_S: Final = (
    0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03, 0.035, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09,
    0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9,
    1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.5, 10.0,
)  # fmt: skip
INNER_BUCKETS_S: Final = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
)  # fmt: skip
PAIR_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
TOKEN_BUCKETS: Final = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
RATIO_BUCKETS: Final = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 0.99, 1.0)
K_BUCKETS: Final = ((10, "1-10"), (25, "11-25"), (50, "26-50"), (100, "51-100"), (250, "101-250"))
K_BUCKET_LAST: Final = "251+"
REJECTION_REASONS: Final = ("k_cap", "overload", "deadline", "bad_request", "unauthorized")


def k_bucket(candidates: int) -> str:
    """The candidate-count segment a request falls in."""
    for upper, label in K_BUCKETS:
        if candidates <= upper:
            return label
    return K_BUCKET_LAST


@dataclass(frozen=True)
class Metrics:
    """Every metric the server exports, created on one registry per app."""

    registry: CollectorRegistry
    request_duration: Histogram
    requests: Counter
    queue_wait: Histogram
    inference: Histogram
    batch_pairs: Histogram
    batch_tokens: Histogram
    padding_efficiency: Histogram
    in_flight: Gauge
    queued_tokens: Gauge
    rejections: Counter
    ready: Gauge
    warmup_duration: Gauge
    warmup_kcap_latency: Gauge
    model_info: Gauge

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        metrics = cls(
            registry=registry,
            request_duration=Histogram(
                "reranker_request_duration_seconds",
                "Time from request received to response, for requests admitted to the model queue; a "
                "request refused at admission (429) counts at the latency it was predicted to have.",
                ["endpoint", "k_bucket"],
                buckets=LATENCY_BUCKETS_S,
                registry=registry,
            ),
            requests=Counter(
                "reranker_requests", "Rerank requests answered, by endpoint and HTTP status.",
                ["endpoint", "code"], registry=registry,
            ),
            queue_wait=Histogram(
                "reranker_queue_wait_seconds", "Time from admission to the first micro-batch of a request.",
                buckets=INNER_BUCKETS_S, registry=registry,
            ),
            inference=Histogram(
                "reranker_inference_seconds", "ONNX Runtime time of one micro-batch.",
                buckets=INNER_BUCKETS_S, registry=registry,
            ),
            batch_pairs=Histogram(
                "reranker_batch_pairs", "Pairs in one micro-batch.", buckets=PAIR_BUCKETS, registry=registry
            ),
            batch_tokens=Histogram(
                "reranker_batch_tokens", "Padded tokens (pairs x longest pair) in one micro-batch.",
                buckets=TOKEN_BUCKETS, registry=registry,
            ),
            padding_efficiency=Histogram(
                "reranker_padding_efficiency", "Real / padded tokens of one micro-batch (1 = no padding).",
                buckets=RATIO_BUCKETS, registry=registry,
            ),
            in_flight=Gauge(
                "reranker_requests_in_flight", "Rerank requests being processed right now.", registry=registry
            ),
            queued_tokens=Gauge(
                "reranker_queued_tokens", "Tokens admitted and not yet scored (the admission queue).",
                registry=registry,
            ),
            rejections=Counter(
                "reranker_rejections", "Requests refused, by reason.",
                ["reason"], registry=registry,
            ),
            ready=Gauge("reranker_ready", "1 when loaded and warmed up, else 0.", registry=registry),
            warmup_duration=Gauge(
                "reranker_warmup_duration_seconds", "How long warm-up took.", registry=registry
            ),
            warmup_kcap_latency=Gauge(
                "reranker_warmup_kcap_latency_seconds",
                "Latency of one k-cap request at max_length, measured at the end of warm-up.",
                registry=registry,
            ),
            model_info=Gauge(
                "reranker_model_info", "The served model (always 1).",
                ["model", "revision", "backend", "quantization", "max_length", "digest"], registry=registry,
            ),
        )  # fmt: skip
        for reason in REJECTION_REASONS:
            metrics.rejections.labels(reason=reason)
        return metrics
