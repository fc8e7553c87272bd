"""The P95 the autoscaler sees is the P95 users feel: a real server, a real Prometheus, a known load.

A reranker-server runs the rendered Deployment's container (test model); a real Prometheus on
loopback scrapes it every second with the relabelling the Prometheus Operator derives from the
rendered ServiceMonitor. A load client drives a light phase (small k, paced) and then a heavy
phase (k at the cap, concurrent, with some requests over the cap) and times every request
itself. Prometheus is then asked the EXACT PromQL strings of the rendered ScaledObject, of the
shipped prometheus-adapter rules (template holes filled as the adapter fills them) and of the
rendered PrometheusRule; its P95 must agree with the client's within the histogram's bucket
resolution, and the HPA algorithm replayed on its series must hold under the SLO and scale up
over it.

The SLO under test is chosen after the load, between the two phases' client P95s (the server
itself runs with a generous SLO, since its request deadline is derived from it): only the
thresholds depend on it, every query string is the same for any SLO.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import yaml
from reranker_operator import api, slo
from reranker_operator.prometheus import PrometheusClient, SLOReading
from reranker_operator.resources import promql
from reranker_operator.resources.common import ChildRef

from tests.autoscaling import adapter_template
from tests.autoscaling.hpa import TOLERANCE, Autoscaler
from tests.autoscaling.load import Result, drive, p95
from tests.autoscaling.prom import Prometheus, running_prometheus
from tests.autoscaling.rendering import ADAPTER_ONLY, ROOT, children, cr
from tests.autoscaling.scrape import pod_annotations_scrape_config, servicemonitor_scrape_config
from tests.autoscaling.server import Server, running_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NAME, NAMESPACE = "minilm", "search"
POD_TEMPLATE_HASH = "6d5f7c9b8"
POD = f"{NAME}-{POD_TEMPLATE_HASH}-x2x9z"
K_CAP, MAX_LENGTH = 100, 128
SERVING_SPEC: Final = {
    "model": {"id": "cross-encoder/ms-marco-MiniLM-L-6-v2", "maxLength": MAX_LENGTH},
    "maxCandidates": K_CAP,
    # Generous: the server's request deadline is 4 x this; the SLO under test is chosen later.
    "latencySLO": {"p95Milliseconds": 10_000},
    "replicas": {"min": 1, "max": 10},
    "warmup": {"requests": 1},
    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
}
ADAPTER_VALUES: Final = ROOT / "charts" / "kube-reranker" / "docs" / "prometheus-adapter-values.yaml"
SCRAPE_INTERVAL_S: Final = 1
WORDS: Final = ("query", "document", "passage", "search", "rerank", "latency", "token", "model", "cache")
# Light requests take ~40 ms: the client's own HTTP time (2-3 ms on a busy 2-core machine) has to
# stay under one bucket, and below 20 ms the buckets are only 2.5 ms wide.
LIGHT_REQUESTS, LIGHT_K, LIGHT_WORDS, LIGHT_PACE_S = 150, 50, 120, 0.05
HEAVY_REQUESTS, HEAVY_CONCURRENCY, HEAVY_WORDS = 120, 8, 120
OVER_CAP_EVERY = 5  # one request over the k cap after every 5 heavy ones
LOAD_BUDGET_S: Final = 90.0
# The whole run must fit the queries' rate window, so that Prometheus' P95 at the end covers
# exactly the requests the client timed.
RUN_LIMIT_S: Final = 100.0


def text(words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(words))


def body(k: int, words: int) -> dict[str, Any]:
    return {"query": "how to keep reranking latency low", "texts": [text(words)] * k}


@dataclass(frozen=True)
class Run:
    """What happened: the client's results per phase and when each phase was fully scraped."""

    prometheus: Prometheus
    server: Server
    primers: int
    light: list[Result]
    heavy: list[Result]
    over_cap: list[Result]
    started: float  # Unix time the light phase started
    light_scraped: float  # Unix time Prometheus held every light request
    heavy_scraped: float  # ... and every heavy request

    @property
    def light_p95(self) -> float:
        return p95([result.latency_s for result in self.light])

    @property
    def all_p95(self) -> float:
        return p95([result.latency_s for result in self.light + self.heavy])

    @property
    def slo_ms(self) -> int:
        """The SLO under test: its autoscaling target sits at the geometric middle of the two P95s."""
        target_s = math.sqrt(self.light_p95 * self.all_p95)
        return math.ceil(target_s * 1000 * 100 / api.AutoscalingSpec().slo_headroom_percent)

    def rendered(self, capabilities: Any = None) -> dict[str, dict[str, Any]]:
        spec = {**SERVING_SPEC, "latencySLO": {"p95Milliseconds": self.slo_ms}}
        if capabilities is ADAPTER_ONLY:
            spec["autoscaling"] = {"metricsSource": "prometheus-adapter"}
            return children(cr(NAME, spec, NAMESPACE), ADAPTER_ONLY)
        return children(cr(NAME, spec, NAMESPACE))


def requests_scraped(prometheus: Prometheus) -> float:
    selector = promql.selector(NAMESPACE, NAME)
    return prometheus.value(f"sum({promql.REQUESTS_TOTAL}{{{selector}}})") or 0.0


def scraped(prometheus: Prometheus, count: int, what: str) -> float:
    """Wait until Prometheus' latest scrape holds `count` answered requests; the Unix time it did."""
    prometheus.wait_for(lambda: requests_scraped(prometheus) == count, f"{what}: {count} requests scraped")
    return time.time()


@pytest.fixture(scope="module")
def run(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("prometheus-p95")
    serving = children(cr(NAME, SERVING_SPEC, NAMESPACE))
    template = serving["Deployment"]["spec"]["template"]
    with running_server(serving["Deployment"], test_model_dir, workdir) as server:
        target = server.metrics_url.removeprefix("http://").removesuffix("/metrics")
        scrape = servicemonitor_scrape_config(
            serving["ServiceMonitor"],
            pod_name=POD,
            pod_labels={**template["metadata"]["labels"], "pod-template-hash": POD_TEMPLATE_HASH},
            container=template["spec"]["containers"][0]["name"],
            target=target,
            scrape_interval=f"{SCRAPE_INTERVAL_S}s",
        )
        config = {"global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s"}, "scrape_configs": [scrape]}
        with running_prometheus(config, workdir / "prometheus") as prometheus:
            yield drive_load(prometheus, server)


def drive_load(prometheus: Prometheus, server: Server) -> Run:
    rerank = f"{server.url}/rerank"
    prometheus.wait_for(lambda: prometheus.value("up") == 1, "the server is scraped")
    # One request per series first (k buckets, a 413), scraped before the load: rate() then counts
    # exactly the load's requests, and every series has the same samples to extrapolate from.
    primers = [body(LIGHT_K, LIGHT_WORDS), body(K_CAP, HEAVY_WORDS), body(K_CAP + 1, LIGHT_WORDS)]
    asyncio.run(drive(rerank, primers, concurrency=1, budget_s=LOAD_BUDGET_S))
    scraped(prometheus, len(primers), "primers")
    started = time.time()
    light = asyncio.run(
        drive(
            rerank,
            [body(LIGHT_K, LIGHT_WORDS)] * LIGHT_REQUESTS,
            concurrency=2,
            pace_s=LIGHT_PACE_S,
            budget_s=LOAD_BUDGET_S,
        )
    )
    light_scraped = scraped(prometheus, len(primers) + len(light), "light phase")
    bodies = []
    for index in range(HEAVY_REQUESTS):
        bodies.append(body(K_CAP, HEAVY_WORDS))
        if index % OVER_CAP_EVERY == OVER_CAP_EVERY - 1:
            bodies.append(body(K_CAP + 1, LIGHT_WORDS))
    mixed = asyncio.run(drive(rerank, bodies, concurrency=HEAVY_CONCURRENCY, budget_s=LOAD_BUDGET_S))
    heavy_scraped = scraped(prometheus, len(primers) + len(light) + len(mixed), "heavy phase")
    heavy = [result for result in mixed if result.status != 413]
    over_cap = [result for result in mixed if result.status == 413]
    assert {result.status for result in light + heavy} == {200}
    assert len(over_cap) == HEAVY_REQUESTS // OVER_CAP_EVERY
    assert heavy_scraped - started < RUN_LIMIT_S, (
        "the load outlasted the 2m rate window: the machine is overloaded"
    )
    return Run(
        prometheus, server, len(primers), light, heavy, over_cap, started, light_scraped, heavy_scraped
    )


def bucket_edges(prometheus: Prometheus) -> list[float]:
    """The histogram's finite bucket bounds, as Prometheus stores them."""
    series = prometheus.series(f"{promql.REQUEST_DURATION_BUCKET}{{{promql.selector(NAMESPACE, NAME)}}}")
    return sorted({float(item["le"]) for item in series if item["le"] != "+Inf"})


def bucket(edges: list[float], seconds: float) -> int:
    """Index of the bucket (edges[i-1], edges[i]] holding `seconds`."""
    return bisect.bisect_left(edges, seconds)


def adapter_rules() -> dict[str, dict[str, Any]]:
    rules = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"]
    return {rule["name"]["as"]: rule for rule in rules}


def adapter_p95_query() -> str:
    rule = adapter_rules()[promql.HPA_P95_METRIC]
    return adapter_template.query_for(rule, namespace=NAMESPACE, names=[NAME])


def adapter_in_flight_query() -> str:
    rule = adapter_rules()[promql.HPA_IN_FLIGHT_METRIC]
    return adapter_template.query_for(rule, namespace=NAMESPACE, names=[POD])


def keda_queries(run: Run) -> tuple[str, str]:
    p95_trigger, in_flight_trigger = run.rendered()["ScaledObject"]["spec"]["triggers"]
    return p95_trigger["metadata"]["query"], in_flight_trigger["metadata"]["query"]


def test_prometheus_p95_agrees_with_the_client_p95_within_a_bucket(run):
    keda_p95, _ = keda_queries(run)
    edges = bucket_edges(run.prometheus)
    measured = []
    for phase, at, client in (
        ("light", run.light_scraped, run.light_p95),
        ("light + heavy", run.heavy_scraped, run.all_p95),
    ):
        from_keda = run.prometheus.value(keda_p95, at)
        (from_adapter,) = run.prometheus.query(adapter_p95_query(), at)
        assert from_adapter["metric"] == {promql.INSTANCE_LABEL: NAME}  # the adapter can name the Service
        assert float(from_adapter["value"][1]) == from_keda
        measured.append((phase, client, from_keda))
        assert abs(bucket(edges, from_keda) - bucket(edges, client)) <= 1, (
            f"{phase}: Prometheus P95 {from_keda * 1000:.1f} ms, client P95 {client * 1000:.1f} ms: "
            "more than one bucket apart"
        )
    print(
        "\nP95 (client-measured vs Prometheus, exact ScaledObject/adapter query): "
        + "; ".join(
            f"{phase}: {client * 1000:.1f} ms vs {prom * 1000:.1f} ms" for phase, client, prom in measured
        )
    )


def test_the_adapter_rules_discover_the_series_of_the_service_and_the_pod(run):
    for metric, resource_label, name in (
        (promql.HPA_P95_METRIC, promql.INSTANCE_LABEL, NAME),
        (promql.HPA_IN_FLIGHT_METRIC, promql.POD_LABEL, POD),
    ):
        found = run.prometheus.series(adapter_rules()[metric]["seriesQuery"])
        assert {(item["namespace"], item[resource_label]) for item in found} == {(NAMESPACE, name)}


def test_the_in_flight_queries_see_the_concurrent_load(run):
    _, keda_in_flight = keda_queries(run)
    series = run.prometheus.query_range(keda_in_flight, run.started, run.heavy_scraped, SCRAPE_INTERVAL_S)
    assert 0 < max(value for _, value in series) <= HEAVY_CONCURRENCY
    (per_pod,) = run.prometheus.query(adapter_in_flight_query(), run.heavy_scraped)
    assert per_pod["metric"] == {promql.POD_LABEL: POD}
    assert float(per_pod["value"][1]) == run.prometheus.value(keda_in_flight, run.heavy_scraped)


def test_the_alert_expressions_hold_exactly_when_the_load_says_so(run):
    alerts = {
        rule["alert"]: rule["expr"]
        for group in run.rendered()["PrometheusRule"]["spec"]["groups"]
        for rule in group["rules"]
    }
    slo_s = run.slo_ms / 1000
    for at in (run.light_scraped, run.heavy_scraped):
        p95_now = run.prometheus.value(keda_queries(run)[0], at)
        above = run.prometheus.value(alerts["RerankerP95AboveSLO"], at)
        assert above == (p95_now if p95_now > slo_s else None)
        far_above = run.prometheus.value(alerts["RerankerP95FarAboveSLO"], at)
        assert far_above == (p95_now if p95_now > 2 * slo_s else None)
    assert run.prometheus.value(alerts["RerankerP95AboveSLO"], run.heavy_scraped) is not None
    # 24 of 294 requests went over the k cap: ~8 % > 5 %. rate() extrapolates all series alike.
    k_cap_ratio = run.prometheus.value(alerts["RerankerKCapRejectionsRising"], run.heavy_scraped)
    expected_ratio = len(run.over_cap) / (len(run.light) + len(run.heavy) + len(run.over_cap))
    assert k_cap_ratio == pytest.approx(expected_ratio, rel=0.05)
    # No 5xx although requests flowed, and no pod stuck while the pod reports ready.
    failed, answered = alerts["RerankerErrorRatioHigh"].rsplit(" > ", 1)[0].split(" / ")
    assert run.prometheus.value(answered, run.heavy_scraped) > 0
    assert run.prometheus.value(failed, run.heavy_scraped) is None  # no 5xx series at all
    assert run.prometheus.value(alerts["RerankerErrorRatioHigh"], run.heavy_scraped) is None
    assert run.prometheus.value(f"sum({promql.READY}{{{promql.selector(NAMESPACE, NAME)}}})") == 1
    assert run.prometheus.query(alerts["RerankerPodStuckWarmingUp"]) == []


@pytest.mark.parametrize("path", ["keda", "prometheus-adapter"])
def test_the_hpa_algorithm_on_the_real_series_holds_under_the_slo_and_scales_up_over_it(run, path):
    if path == "keda":
        scaled_object = run.rendered()["ScaledObject"]
        autoscaler = Autoscaler.for_scaled_object(scaled_object, replicas=SERVING_SPEC["replicas"]["min"])
        queries = [trigger["metadata"]["query"] for trigger in scaled_object["spec"]["triggers"]]
    else:
        hpa = run.rendered(ADAPTER_ONLY)["HorizontalPodAutoscaler"]
        autoscaler = Autoscaler.for_hpa(hpa, replicas=SERVING_SPEC["replicas"]["min"])
        queries = [adapter_p95_query(), adapter_in_flight_query()]
    series = [
        dict(run.prometheus.query_range(query, run.started, run.heavy_scraped, SCRAPE_INTERVAL_S))
        for query in queries
    ]
    p95_signal, in_flight_signal = autoscaler.signals
    replays = []
    for at in sorted(series[0]):
        values = {p95_signal.name: series[0][at], in_flight_signal.name: series[1].get(at)}
        replays.append((at, values, autoscaler.step(at, values)))
    under = [replicas for at, _, replicas in replays if at <= run.light_scraped]
    assert set(under) == {SERVING_SPEC["replicas"]["min"]}, "scaled while P95 was under the target"
    assert replays[-1][2] > SERVING_SPEC["replicas"]["min"], "did not scale up while P95 was over the target"
    first_up = next(values for _, values, replicas in replays if replicas > SERVING_SPEC["replicas"]["min"])
    assert first_up[p95_signal.name] > p95_signal.target * (1 + TOLERANCE)


async def read_slo(url: str) -> SLOReading:
    client = PrometheusClient(url)
    try:
        return await client.read_slo(ChildRef(cr_name=NAME, namespace=NAMESPACE))
    finally:
        await client.close()


def test_the_operator_reads_the_same_p95_and_the_warm_up_k_cap_latency(run):
    reading = asyncio.run(read_slo(run.prometheus.url))
    now_p95 = run.prometheus.value(keda_queries(run)[0])
    assert reading.p95_seconds == pytest.approx(now_p95, rel=0.05)
    gauge = next(
        line
        for line in httpx.get(run.server.metrics_url).text.splitlines()
        if line.startswith(promql.WARMUP_KCAP_LATENCY + " ")
    )
    assert reading.kcap_latency_seconds == float(gauge.split()[1]) > 0
    spec = api.parse_spec({**SERVING_SPEC, "latencySLO": {"p95Milliseconds": run.slo_ms}})
    update = slo.measured(spec, reading, generation=1).applied_to({}, "2026-01-01T00:00:00Z")
    (met, _) = update["conditions"]
    assert (met["type"], met["status"], met["reason"]) == ("SLOMet", "False", "AboveSLO")


def test_the_pod_annotations_label_series_for_the_same_queries_without_a_servicemonitor(run, tmp_path):
    """Scrape configs without the Prometheus Operator find the pod by its annotations."""
    template = children(cr(NAME, SERVING_SPEC, NAMESPACE))["Deployment"]["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    (container,) = template["spec"]["containers"]
    metrics_port = next(port for port in container["ports"] if port["name"] == "metrics")["containerPort"]
    assert annotations["prometheus.io/port"] == str(metrics_port)
    scrape = pod_annotations_scrape_config(
        namespace=NAMESPACE,
        pod_name=POD,
        pod_labels={**template["metadata"]["labels"], "pod-template-hash": POD_TEMPLATE_HASH},
        # The pod's port 9090 is a free loopback port here; everything else is as rendered.
        pod_annotations={**annotations, "prometheus.io/port": run.server.env["RERANKER_METRICS_PORT"]},
        pod_ip="127.0.0.1",
        scrape_interval=f"{SCRAPE_INTERVAL_S}s",
    )
    config = {"global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s"}, "scrape_configs": [scrape]}
    with running_prometheus(config, tmp_path) as prometheus:
        keda_p95, _ = keda_queries(run)
        # Two scrapes of counters that no longer move: the deployment is idle, and reads 0, not NaN.
        idle = prometheus.wait_for(lambda: prometheus.query(keda_p95), "two scrapes for rate()")
        answered = requests_scraped(prometheus)
        discovered = {
            metric: prometheus.series(rule["seriesQuery"]) for metric, rule in adapter_rules().items()
        }
    assert [float(sample["value"][1]) for sample in idle] == [0.0]
    assert answered == run.primers + len(run.light) + len(run.heavy) + len(run.over_cap)
    assert {
        (item["namespace"], item[promql.INSTANCE_LABEL]) for item in discovered[promql.HPA_P95_METRIC]
    } == {(NAMESPACE, NAME)}
    assert {item[promql.POD_LABEL] for item in discovered[promql.HPA_IN_FLIGHT_METRIC]} == {POD}
