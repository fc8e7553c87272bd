"""The `export` image prepares a checkpoint without an ONNX graph; the `server` image then serves it.

The export container runs with the rendered server pod's security context, env and volumes (the
cache volume is where a preparation writes), with `export` for `serve`. The server container that
follows mounts the same cache and checkpoint, has no torch, and must serve the PyTorch scores.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from reranker_server.engine import sigmoid

from tests.conftest import Reference, rendered_children
from tests.images.podman import Images, pod_run_options, podman
from tests.images.test_server_image import DOCUMENTS, QUERY, start_server_pod

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

CHECKPOINT_MOUNT = "/models/checkpoint"


def test_an_exported_checkpoint_is_served_by_the_torch_free_server_image(
    images: Images,
    checkpoint_without_graph: Path,
    pod_volume: Callable[[str], Path],
    torch_reference: Reference,
) -> None:
    volumes = {"cache": pod_volume("cache"), "tmp": pod_volume("tmp")}
    pod = rendered_children("minilm-cpu")["Deployment"]["spec"]["template"]["spec"]
    (spec,) = pod["containers"]
    swaps = {"RERANKER_MODEL": CHECKPOINT_MOUNT, "RERANKER_QUANTIZE": "none"}
    options = pod_run_options(pod, spec, volumes=volumes, env_swaps=swaps)
    options += ["--volume", f"{checkpoint_without_graph}:{CHECKPOINT_MOUNT}:ro"]
    exported = podman("run", "--rm", *options, images.tag("export"), "export", timeout=600, check=False)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert "is ready to serve" in exported.stdout

    server = start_server_pod(
        images.tag("server"),
        model=checkpoint_without_graph,
        volumes=volumes,
        model_mount=CHECKPOINT_MOUNT,
        RERANKER_QUANTIZE="none",
    )
    try:
        response = httpx.post(
            f"{server.base}/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS}, timeout=60
        )
        logs = server.container.logs()
    finally:
        server.container.remove()
    assert response.status_code == 200, response.text
    assert "exporting it once" not in logs, "the server exported again instead of reading the cache"
    reference = sigmoid(torch_reference(QUERY, DOCUMENTS, int(server.env["RERANKER_MAX_LENGTH"])))
    results = response.json()["results"]
    assert [r["index"] for r in results] == np.argsort(-reference, kind="stable").tolist()
    for result in results:
        assert result["relevance_score"] == pytest.approx(float(reference[result["index"]]), abs=1e-4)
