"""The `export` image runs the operator's rendered preparation: the pod's initContainer and the Job.

A checkpoint without an ONNX graph (what bge-reranker-v2-m3's repository is) is prepared by the
rendered container in the export image, into the cache volume; the torch-free `server` image then
serves it with PyTorch's scores.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from reranker_server.engine import sigmoid

from tests.conftest import Reference, rendered_children
from tests.images.conftest import readable_copy
from tests.images.podman import Images
from tests.images.test_server_image import DOCUMENTS, QUERY, run_preparation, start_server_pod

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

CHECKPOINT_MOUNT = "/models/checkpoint"


def test_a_checkpoint_without_a_graph_is_prepared_then_served_by_the_torch_free_image(
    images: Images,
    checkpoint_without_graph: Path,
    pod_volume: Callable[[str], Path],
    torch_reference: Reference,
) -> None:
    volumes = {"cache": pod_volume("cache"), "tmp": pod_volume("tmp")}
    server = start_server_pod(
        images,
        model=checkpoint_without_graph,
        volumes=volumes,
        model_mount=CHECKPOINT_MOUNT,
        RERANKER_QUANTIZE="none",
    )
    try:
        response = httpx.post(
            f"{server.base}/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS}, timeout=60
        )
    finally:
        server.container.remove()
    assert response.status_code == 200, response.text
    reference = sigmoid(torch_reference(QUERY, DOCUMENTS, int(server.env["RERANKER_MAX_LENGTH"])))
    results = response.json()["results"]
    assert [r["index"] for r in results] == np.argsort(-reference, kind="stable").tolist()
    for result in results:
        assert result["relevance_score"] == pytest.approx(float(reference[result["index"]]), abs=1e-4)


def test_the_gpu_examples_job_prepares_xlm_roberta_in_the_export_image(
    images: Images,
    checkpoints: dict[str, Path],
    pod_volume: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    """examples/bge-m3-gpu.yaml's Job, run as its pod would run, on bge-reranker-v2-m3's architecture."""
    job = rendered_children("bge-m3-gpu")["Job"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {"cache": pod_volume("cache"), "tmp": pod_volume("tmp")}
    checkpoint = readable_copy(checkpoints["xlm-roberta"], tmp_path / "xlm-roberta")
    prepared = run_preparation(
        images, pod, container, model=checkpoint, model_mount=CHECKPOINT_MOUNT, volumes=volumes, swaps={}
    )
    artefact = volumes["cache"] / Path(prepared["artefact"]).relative_to("/cache")
    manifest = json.loads((artefact / "manifest.json").read_text())
    assert manifest["digest"] == prepared["digest"]
    assert manifest["recipe"]["backend"] == "gpu"
    assert manifest["canary"]["tolerance"] == 1e-3
    assert json.loads((artefact / "config.json").read_text())["model_type"] == "xlm-roberta"
