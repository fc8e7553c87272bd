"""The SLO conditions as a pure function of the spec and what Prometheus reported.

SLOMet compares the P95 users felt over the last rate window with latencySLO; SLOFeasible
compares the latency of ONE request at the k cap and maxLength, measured by the pods during
warm-up, with the same SLO. When a single such request on an idle pod is already slower than
the SLO, no number of replicas meets it: only a smaller k cap, shorter inputs, int8 or a GPU
do, and the condition says which of those are left for this spec.
"""

from __future__ import annotations

from reranker_operator.api import RerankerDeploymentSpec
from reranker_operator.prometheus import SLOReading
from reranker_operator.resources import promql
from reranker_operator.status import SLO_FEASIBLE, SLO_MET, StatusUpdate, Verdict


def measured(spec: RerankerDeploymentSpec, reading: SLOReading, generation: int | None) -> StatusUpdate:
    """Status fields and both conditions from one Prometheus reading."""
    kcap = reading.kcap_latency_seconds
    fields = {
        # Idle (0) or unscraped (None): no latency to show; "0 ms" would read as a fast service.
        "p95Milliseconds": _milliseconds(reading.p95_seconds) if reading.p95_seconds else None,
        "kCapLatencyMilliseconds": _milliseconds(kcap) if kcap is not None else None,
    }
    verdicts = (slo_met(spec, reading.p95_seconds), slo_feasible(spec, reading.kcap_latency_seconds))
    return StatusUpdate(fields=fields, verdicts=verdicts, generation=generation)


def unmeasured(problem: str, generation: int | None) -> StatusUpdate:
    """Prometheus did not answer: both conditions are Unknown, and old numbers are not shown as current."""
    message = f"cannot read latency from Prometheus: {problem}"
    verdicts = (
        Verdict(SLO_MET, None, "PrometheusUnavailable", message),
        Verdict(SLO_FEASIBLE, None, "PrometheusUnavailable", message),
    )
    fields = {"p95Milliseconds": None, "kCapLatencyMilliseconds": None}
    return StatusUpdate(fields=fields, verdicts=verdicts, generation=generation)


def slo_met(spec: RerankerDeploymentSpec, p95_seconds: float | None) -> Verdict:
    slo_ms = spec.latency_slo.p95_milliseconds
    window = promql.RATE_WINDOW
    if p95_seconds is None:
        return Verdict(
            SLO_MET,
            None,
            "NoMetrics",
            f"Prometheus has no {promql.REQUEST_DURATION} series for this RerankerDeployment: check that it "
            f"scrapes the pods (the ServiceMonitor, or the prometheus.io/* pod annotations) and keeps the "
            f"{promql.NAMESPACE_LABEL} and {promql.INSTANCE_LABEL} labels",
        )
    if p95_seconds == 0:
        return Verdict(SLO_MET, True, "Idle", f"no requests in the last {window}")
    p95_ms = _milliseconds(p95_seconds)
    if p95_seconds * 1000 <= slo_ms:
        return Verdict(SLO_MET, True, "WithinSLO", f"P95 {p95_ms} ms over the last {window}, SLO {slo_ms} ms")
    return Verdict(
        SLO_MET,
        False,
        "AboveSLO",
        f"P95 {p95_ms} ms over the last {window} exceeds the {slo_ms} ms SLO: the autoscaler adds replicas "
        f"up to replicas.max ({spec.replicas.max})",
    )


def slo_feasible(spec: RerankerDeploymentSpec, kcap_seconds: float | None) -> Verdict:
    slo_ms = spec.latency_slo.p95_milliseconds
    if kcap_seconds is None:
        return Verdict(
            SLO_FEASIBLE,
            None,
            "NotMeasured",
            f"no pod has reported {promql.WARMUP_KCAP_LATENCY} yet (pods set it when warm-up finishes)",
        )
    kcap_ms = _milliseconds(kcap_seconds)
    at = f"at k={spec.max_candidates} on {spec.backend}"
    if kcap_seconds * 1000 <= slo_ms:
        return Verdict(
            SLO_FEASIBLE, True, "KCapWithinSLO", f"SLO {slo_ms} ms, measured {kcap_ms} ms {at} during warm-up"
        )
    return Verdict(
        SLO_FEASIBLE,
        False,
        "KCapSlowerThanSLO",
        f"SLO {slo_ms} ms, measured {kcap_ms} ms {at}: {_remedies(spec)}",
    )


def _remedies(spec: RerankerDeploymentSpec) -> str:
    """What is left to make one k-cap request faster, for this backend and quantization."""
    if spec.backend == "gpu":
        return "lower maxCandidates or maxLength, or raise the SLO"
    if spec.model.quantization == "none":
        return "lower maxCandidates or maxLength, use int8 or gpu"
    return "lower maxCandidates or maxLength, or use gpu"


def _milliseconds(seconds: float) -> int:
    return round(seconds * 1000)
