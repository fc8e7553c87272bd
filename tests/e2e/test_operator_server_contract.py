"""The contract between the two packages: what the operator renders is what the real processes run.

The example's rendered preparation container (the pod's initContainer, or the Job of an example
with a shared cache) runs with exactly its command, args and env, then the rendered server
container with exactly its own, in a process where `import torch` fails, as in the server image.
Only what cannot exist outside a pod is swapped: the model id for a local checkpoint without an ONNX
graph, the /cache volume and the termination-log path for temporary paths, the ports for free ones.
The server must pass the integrity check, become ready on the rendered probe path, serve PyTorch's
scores, enforce the rendered k cap, and drain within the rendered grace period on SIGTERM.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from reranker_server.artefact import read_artefact
from reranker_server.config import DEFAULT_MAX_BATCH_TOKENS
from reranker_server.engine import sigmoid

from tests.conftest import (
    env_of,
    free_port,
    local_run,
    prepare_locally,
    pytorch_logits,
    rendered_children,
    torch_blocked_env,
)

QUERY = "How do I keep reranking latency low?"
# What the server reports in /info for the settings the operator derives from the spec.
SERVED_SETTINGS = {
    "revision": lambda env: env["RERANKER_REVISION"],
    "backend": lambda env: env["RERANKER_BACKEND"],
    "quantization": lambda env: env["RERANKER_QUANTIZE"],
    "max_length": lambda env: int(env["RERANKER_MAX_LENGTH"]),
    "max_candidates": lambda env: int(env["RERANKER_MAX_CANDIDATES"]),
    "k_cap_policy": lambda env: env["RERANKER_K_CAP_POLICY"],
    "max_batch_tokens": lambda env: (
        int(env["RERANKER_MAX_BATCH_TOKENS"]) or DEFAULT_MAX_BATCH_TOKENS[env["RERANKER_BACKEND"]]
    ),
    "intra_op_threads": lambda env: int(env["RERANKER_INTRA_OP_THREADS"]),
    "latency_slo_ms": lambda env: int(env["RERANKER_LATENCY_SLO_MS"]),
}


def probe_url(container: dict[str, Any], probe: str, ports: dict[int, int]) -> str:
    """The URL a kubelet would probe, with the container port mapped to the local one."""
    http_get = container[probe]["httpGet"]
    (container_port,) = [p["containerPort"] for p in container["ports"] if p["name"] == http_get["port"]]
    return f"http://127.0.0.1:{ports[container_port]}{http_get['path']}"


@dataclass
class Pod:
    deployment: dict[str, Any]
    container: dict[str, Any]
    env: dict[str, str]
    ports: dict[int, int]
    process: subprocess.Popen
    prepared: dict[str, Any]
    torch_attempts: Path

    def url(self, probe: str) -> str:
        return probe_url(self.container, probe, self.ports)


@pytest.fixture
def start_pod(tmp_path: Path) -> Iterator[Any]:
    """Prepare as the rendered initContainer does, then start the rendered server container."""
    started: list[subprocess.Popen] = []

    def start(model: Path, example: str = "minilm-cpu") -> Pod:
        deployment = rendered_children(example)["Deployment"]
        pod = deployment["spec"]["template"]["spec"]
        (init,), (container,) = pod["initContainers"], pod["containers"]
        prepared = prepare_locally(init, model, tmp_path)
        rendered = env_of(container)
        ports = {
            int(rendered["RERANKER_PORT"]): free_port(),
            int(rendered["RERANKER_METRICS_PORT"]): free_port(),
        }
        blocked, attempts = torch_blocked_env(tmp_path)
        swaps = {
            "RERANKER_MODEL": str(model),
            "RERANKER_HOST": "127.0.0.1",
            "RERANKER_PORT": str(ports[int(rendered["RERANKER_PORT"])]),
            "RERANKER_METRICS_PORT": str(ports[int(rendered["RERANKER_METRICS_PORT"])]),
        }
        command, env = local_run(container, tmp_path, swaps)
        process = subprocess.Popen(command, env={**env, **blocked}, cwd=tmp_path)
        started.append(process)
        return Pod(deployment, container, rendered | swaps, ports, process, prepared, attempts)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def wait_until_ready(url: str, process: subprocess.Popen, budget_s: float) -> None:
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited with {process.returncode} before it was ready"
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} was not 200 within {budget_s:.0f} s")


def ready(pod: Pod) -> None:
    startup = pod.container["startupProbe"]
    wait_until_ready(
        pod.url("readinessProbe"),
        pod.process,
        budget_s=min(240, startup["periodSeconds"] * startup["failureThreshold"]),
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("architecture", ["bert", "xlm-roberta"])
def test_the_rendered_preparation_and_server_serve_pytorchs_scores_without_torch(
    architecture: str, checkpoints: dict[str, Path], start_pod: Any
) -> None:
    checkpoint = checkpoints[architecture]
    pod = start_pod(checkpoint)
    ready(pod)
    info = httpx.get(pod.url("readinessProbe").replace("/ready", "/info")).json()
    query = "how do pods become ready?"
    documents = ["A pod is ready when its probe succeeds.", "Bananas are yellow.", "The kubelet probes it."]
    response = httpx.post(
        pod.url("readinessProbe").replace("/ready", "/v1/rerank"),
        json={"query": query, "documents": documents},
        timeout=60,
    )
    _, manifest = read_artefact(Path(pod.prepared["artefact"]))
    assert pod.prepared["digest"] == manifest.digest == info["artefact_digest"]
    assert info["integrity_check"].startswith("passed")
    assert manifest.recipe.quantization == pod.env["RERANKER_QUANTIZE"] == "int8"
    assert not pod.torch_attempts.exists(), (
        f"the server tried to import torch: {pod.torch_attempts.read_text()}"
    )
    # The example serves int8: its scores stay within the integrity bound of PyTorch's, and in PyTorch's
    # order wherever PyTorch's logits are further apart than twice that bound (nearer ones are ties
    # within int8's error: two of the random XLM-R test model's three differ by 0.001).
    reference = pytorch_logits(checkpoint)(query, documents, int(pod.env["RERANKER_MAX_LENGTH"]))
    results = response.json()["results"]
    rank = {result["index"]: position for position, result in enumerate(results)}
    for above, below in itertools.permutations(range(len(documents)), 2):
        if reference[above] - reference[below] > 2 * manifest.canary.tolerance:
            assert rank[above] < rank[below], (reference, results)
    for result in results:
        assert (
            abs(result["relevance_score"] - float(sigmoid(reference[result["index"]])))
            <= manifest.canary.tolerance
        )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_gpu_examples_job_prepares_an_xlm_roberta_checkpoint(
    checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """examples/bge-m3-gpu.yaml's path: its Job's container on bge-reranker-v2-m3's architecture."""
    job = rendered_children("bge-m3-gpu")["Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    prepared = prepare_locally(container, checkpoints["xlm-roberta"], tmp_path)
    _, manifest = read_artefact(Path(prepared["artefact"]))
    assert manifest.recipe.backend == "gpu"
    assert not manifest.fused, "fused graphs are CPU-tuned: the gpu recipe keeps the exported graph"
    assert manifest.canary is not None
    assert json.loads((Path(prepared["artefact"]) / "config.json").read_text())["model_type"] == "xlm-roberta"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_rendered_server_enforces_the_rendered_k_cap_and_drains_on_sigterm(
    checkpoints: dict[str, Path], start_pod: Any
) -> None:
    pod = start_pod(checkpoints["bert"])
    env, container = pod.env, pod.container
    k_cap = int(env["RERANKER_MAX_CANDIDATES"])
    ready(pod)
    assert httpx.get(pod.url("livenessProbe")).status_code == 200
    info = httpx.get(pod.url("readinessProbe").replace("/ready", "/info")).json()
    rendered = env_of(container)
    assert {key: info[key] for key in SERVED_SETTINGS} == {
        key: expected(rendered) for key, expected in SERVED_SETTINGS.items()
    }
    metrics = httpx.get(f"http://127.0.0.1:{pod.ports[9090]}/metrics")
    assert metrics.status_code == 200
    assert "reranker_request_duration_seconds" in metrics.text

    rerank = pod.url("readinessProbe").replace("/ready", "/rerank")
    at_cap = httpx.post(
        rerank, json={"query": QUERY, "texts": [f"passage {i}" for i in range(k_cap)]}, timeout=60
    )
    assert at_cap.status_code == 200
    assert len(at_cap.json()) == k_cap
    over_cap = httpx.post(rerank, json={"query": QUERY, "texts": [f"passage {i}" for i in range(k_cap + 1)]})
    assert over_cap.status_code == 413
    assert str(k_cap) in over_cap.json()["error"]["message"]
    assert env["RERANKER_K_CAP_POLICY"] == "reject"

    pod.process.send_signal(signal.SIGTERM)
    assert (
        pod.process.wait(timeout=pod.deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
        == 0
    )
