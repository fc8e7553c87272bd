"""The `server` image, run as the operator's rendered pod runs it: read-only, uid 10001, its volumes.

The container gets the rendered Deployment's command, args, env, securityContext, resources and
volume mounts (`pod_run_options`); only the model id (a local directory instead of a hub id) and
the ports (free loopback ports, the host's network) are swapped, and, where a test compares scores
with eager PyTorch, the example's int8 for fp32.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from reranker_server.engine import sigmoid

from tests.conftest import Reference, free_port, rendered_children
from tests.images.conftest import POD_UID, owned_by_pod
from tests.images.podman import Container, Images, pod_run_options, podman, poll_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

MODEL_MOUNT = "/models/test-model"
QUERY = "how do pods become ready?"
DOCUMENTS = [
    "A pod becomes ready once its readiness probe succeeds.",
    "Bananas are rich in potassium.",
    "The kubelet probes /ready until the model is warmed up.",
]


@dataclass
class ServerPod:
    """A server container started from the rendered pod, with the URLs its probes would use."""

    container: Container
    spec: dict[str, Any]
    env: dict[str, str]
    base: str
    metrics: str
    readiness: list[int]
    prepared: dict[str, Any]

    def probe(self, name: str) -> str:
        return f"{self.base}{self.spec[name]['httpGet']['path']}"


def run_preparation(
    images: Images,
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    model: Path,
    model_mount: str,
    volumes: dict[str, Path],
    swaps: dict[str, str],
) -> dict[str, Any]:
    """The rendered preparation container (initContainer or Job) in the export image, to completion."""
    assert container["image"] == images.tag("export"), "the operator renders the tag build-images.sh builds"
    log = volumes["tmp"].parent / "termination-log"
    log.touch()
    os.chown(log, POD_UID, POD_UID)
    options = pod_run_options(
        pod, container, volumes=volumes, env_swaps={"RERANKER_MODEL": model_mount, **swaps}
    )
    options += [
        "--volume",
        f"{model}:{model_mount}:ro",
        "--volume",
        f"{log}:{container['terminationMessagePath']}",
    ]
    done = podman("run", "--rm", *options, container["image"], *container["args"], timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(log.read_text())


def start_server_pod(
    images: Images,
    *,
    model: Path,
    volumes: dict[str, Path],
    model_mount: str = MODEL_MOUNT,
    spec_fields: dict[str, Any] | None = None,
    **env_swaps: str,
) -> ServerPod:
    """The rendered pod: its initContainer prepares into the cache volume, then the server starts."""
    deployment = rendered_children("minilm-cpu", spec=spec_fields)["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (init,), (spec,) = pod["initContainers"], pod["containers"]
    prepared = run_preparation(
        images, pod, init, model=model, model_mount=model_mount, volumes=volumes, swaps=env_swaps
    )
    assert spec["image"] == images.tag("server"), "the operator renders the tag build-images.sh builds"
    http, metrics = free_port(), free_port()
    swaps = {
        "RERANKER_MODEL": model_mount,
        "RERANKER_PORT": str(http),
        "RERANKER_METRICS_PORT": str(metrics),
        **env_swaps,
    }
    options = pod_run_options(pod, spec, volumes=volumes, env_swaps=swaps)
    options += ["--volume", f"{model}:{model_mount}:ro"]
    container = Container.start(spec["image"], options, spec["args"])
    env = {item["name"]: item["value"] for item in spec["env"]} | swaps
    base = f"http://127.0.0.1:{http}"
    pod_ready = ServerPod(container, spec, env, base, f"http://127.0.0.1:{metrics}/metrics", [], prepared)
    budget = spec["startupProbe"]["periodSeconds"] * spec["startupProbe"]["failureThreshold"]
    try:
        pod_ready.readiness = poll_ready(pod_ready.probe("readinessProbe"), container, min(budget, 300))
    except BaseException:
        container.remove()
        raise
    return pod_ready


@pytest.fixture(scope="module")
def fp32_pod(
    images: Images, served_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerPod]:
    volumes = {name: owned_by_pod(tmp_path_factory.mktemp(name)) for name in ("cache", "tmp")}
    pod = start_server_pod(images, model=served_model, volumes=volumes, RERANKER_QUANTIZE="none")
    yield pod
    pod.container.remove()


def rerank(pod: ServerPod, documents: list[str]) -> list[dict[str, Any]]:
    response = httpx.post(f"{pod.base}/v1/rerank", json={"query": QUERY, "documents": documents}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_ready_answers_503_while_warming_up_then_200(fp32_pod: ServerPod) -> None:
    assert fp32_pod.readiness[-1] == 200
    assert 503 in fp32_pod.readiness, "the first answers came after warm-up: no 503 was seen"
    assert set(fp32_pod.readiness[:-1]) == {503}


def test_the_image_serves_the_eager_pytorch_scores(fp32_pod: ServerPod, torch_reference: Reference) -> None:
    reference = sigmoid(torch_reference(QUERY, DOCUMENTS, int(fp32_pod.env["RERANKER_MAX_LENGTH"])))
    results = rerank(fp32_pod, DOCUMENTS)
    assert [r["index"] for r in results] == np.argsort(-reference, kind="stable").tolist()
    for result in results:
        assert result["relevance_score"] == pytest.approx(float(reference[result["index"]]), abs=1e-4)


def test_liveness_and_metrics_answer_on_the_rendered_paths(fp32_pod: ServerPod) -> None:
    assert httpx.get(fp32_pod.probe("livenessProbe"), timeout=10).status_code == 200
    rerank(fp32_pod, DOCUMENTS)
    metrics = httpx.get(fp32_pod.metrics, timeout=10)
    assert metrics.status_code == 200
    assert "reranker_request_duration_seconds_bucket" in metrics.text


def test_the_server_serves_the_artefact_its_init_container_prepared(fp32_pod: ServerPod) -> None:
    info = httpx.get(f"{fp32_pod.base}/info", timeout=10).json()
    assert info["artefact_digest"] == fp32_pod.prepared["digest"]
    assert info["integrity_check"].startswith("passed")
    assert fp32_pod.env["RERANKER_ARTEFACT"] == fp32_pod.prepared["artefact"]


def test_the_server_cannot_write_to_the_cache_it_serves(fp32_pod: ServerPod) -> None:
    """The cache is mounted read-only in the server container, as the operator renders it."""
    touched = fp32_pod.container.exec("sh", "-c", "touch /cache/probe")
    assert touched.returncode != 0


def test_the_image_quantises_to_int8_at_start_up_as_the_example_asks(
    images: Images, served_model: Path, pod_volume: Callable[[str], Path]
) -> None:
    volumes = {"cache": pod_volume("cache"), "tmp": pod_volume("tmp")}
    pod = start_server_pod(images, model=served_model, volumes=volumes)
    assert pod.env["RERANKER_QUANTIZE"] == "int8"
    try:
        info = httpx.get(f"{pod.base}/info", timeout=10).json()
        results = rerank(pod, DOCUMENTS)
    finally:
        pod.container.remove()
    assert info["quantization"] == "int8"
    assert sorted(r["index"] for r in results) == list(range(len(DOCUMENTS)))
    assert all(0.0 < r["relevance_score"] < 1.0 for r in results)


def test_behind_api_keys_from_its_mounted_secret_the_image_refuses_calls_without_one(
    images: Images, served_model: Path, pod_volume: Callable[[str], Path]
) -> None:
    keys = pod_volume("api-keys")
    (keys / "api-keys").write_text("rk-image-test-31a7\n")
    (keys / "api-keys").chmod(0o440)
    os.chown(keys / "api-keys", 0, POD_UID)  # a Secret volume: root's file, readable by the fsGroup
    volumes = {"cache": pod_volume("cache"), "tmp": pod_volume("tmp"), "api-keys": keys}
    pod = start_server_pod(
        images,
        model=served_model,
        volumes=volumes,
        spec_fields={"auth": {"secretName": "reranker-api-keys"}},
        RERANKER_QUANTIZE="none",
    )
    body = {"query": QUERY, "documents": DOCUMENTS}
    try:
        without = httpx.post(f"{pod.base}/v1/rerank", json=body, timeout=60)
        keyed = httpx.post(
            f"{pod.base}/v1/rerank",
            json=body,
            headers={"Authorization": "Bearer rk-image-test-31a7"},
            timeout=60,
        )
        ready = httpx.get(pod.probe("readinessProbe"), timeout=10)
        logs = pod.container.logs()
    finally:
        pod.container.remove()
    assert without.status_code == 401
    assert without.json()["error"]["code"] == "unauthorized"
    assert keyed.status_code == 200, keyed.text
    assert ready.status_code == 200, "the kubelet's probe needs no key"
    assert "rk-image-test-31a7" not in logs


def test_sigterm_after_the_rendered_pre_stop_drains_and_exits_0(
    images: Images, served_model: Path, pod_volume: Callable[[str], Path]
) -> None:
    volumes = {"cache": pod_volume("cache"), "tmp": pod_volume("tmp")}
    pod = start_server_pod(images, model=served_model, volumes=volumes, RERANKER_QUANTIZE="none")
    grace = rendered_children("minilm-cpu")["Deployment"]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    try:
        pre_stop = pod.container.exec(*pod.spec["lifecycle"]["preStop"]["exec"]["command"])
        pod.container.signal("TERM")
        exit_code = pod.container.wait_exit(timeout_s=grace)
        logs = pod.container.logs()
    finally:
        pod.container.remove()
    assert pre_stop.returncode == 0, f"the rendered preStop command fails in the image: {pre_stop.stderr}"
    assert exit_code == 0, logs[-3000:]
