"""The contract between the two packages: the Deployment the operator renders runs the real server.

The server container of an example's rendered Deployment is started as a local process with
exactly its command, args and env; only what cannot exist outside a pod is swapped (the model
id for the locally built test model, the cache and home paths for temporary directories, the
ports for free ones). It must become ready on the rendered readiness probe's path, answer the
rendered liveness path and metrics port, enforce the rendered k cap, and drain within the
rendered grace period on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reranker_server.config import DEFAULT_MAX_BATCH_TOKENS

from tests.conftest import EXAMPLES_DIR, free_port, rendered_children

EXAMPLE = EXAMPLES_DIR / "minilm-cpu.yaml"
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


def rendered_deployment() -> dict[str, Any]:
    """The Deployment exactly as the operator applies it for the example."""
    return rendered_children(EXAMPLE.stem)["Deployment"]


def probe_url(container: dict[str, Any], probe: str, ports: dict[int, int]) -> str:
    """The URL a kubelet would probe, with the container port mapped to the local one."""
    http_get = container[probe]["httpGet"]
    (container_port,) = [p["containerPort"] for p in container["ports"] if p["name"] == http_get["port"]]
    return f"http://127.0.0.1:{ports[container_port]}{http_get['path']}"


@pytest.fixture
def server(
    test_model_dir: Path, tmp_path: Path
) -> Iterator[tuple[dict[str, Any], dict[int, int], subprocess.Popen]]:
    deployment = rendered_deployment()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    ports = {int(env["RERANKER_PORT"]): free_port(), int(env["RERANKER_METRICS_PORT"]): free_port()}
    swapped = {
        "RERANKER_MODEL": str(test_model_dir),
        "RERANKER_CACHE_DIR": str(tmp_path / "cache"),
        "RERANKER_HOST": "127.0.0.1",
        "RERANKER_PORT": str(ports[int(env["RERANKER_PORT"])]),
        "RERANKER_METRICS_PORT": str(ports[int(env["RERANKER_METRICS_PORT"])]),
        "HOME": str(tmp_path / "home"),
        "HF_HOME": str(tmp_path / "hf"),
    }
    assert set(swapped) <= set(env), "the swap may only replace variables the operator rendered"
    bin_dir = Path(sys.executable).parent
    process = subprocess.Popen(
        [*container["command"], *container["args"]],
        env={**env, **swapped, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        cwd=tmp_path,
    )
    try:
        yield deployment, ports, process
    finally:
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


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_rendered_deployment_runs_a_server_that_enforces_the_rendered_k_cap(server):
    deployment, ports, process = server
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    k_cap = int(env["RERANKER_MAX_CANDIDATES"])
    startup = container["startupProbe"]

    wait_until_ready(
        probe_url(container, "readinessProbe", ports),
        process,
        budget_s=min(240, startup["periodSeconds"] * startup["failureThreshold"]),
    )
    assert httpx.get(probe_url(container, "livenessProbe", ports)).status_code == 200
    info = httpx.get(probe_url(container, "readinessProbe", ports).replace("/ready", "/info")).json()
    assert {key: info[key] for key in SERVED_SETTINGS} == {
        key: expected(env) for key, expected in SERVED_SETTINGS.items()
    }
    metrics = httpx.get(f"http://127.0.0.1:{ports[9090]}/metrics")
    assert metrics.status_code == 200
    assert "reranker_request_duration_seconds" in metrics.text

    rerank = probe_url(container, "readinessProbe", ports).replace("/ready", "/rerank")
    at_cap = httpx.post(
        rerank, json={"query": QUERY, "texts": [f"passage {i}" for i in range(k_cap)]}, timeout=60
    )
    assert at_cap.status_code == 200
    assert len(at_cap.json()) == k_cap
    over_cap = httpx.post(rerank, json={"query": QUERY, "texts": [f"passage {i}" for i in range(k_cap + 1)]})
    assert over_cap.status_code == 413
    assert str(k_cap) in over_cap.json()["error"]["message"]
    assert env["RERANKER_K_CAP_POLICY"] == "reject"

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=pod["terminationGracePeriodSeconds"]) == 0
