"""The gpu backend on a real GPU: ONNX Runtime's CUDA execution provider serves the same scores.

These run only where onnxruntime-gpu finds CUDA (a GPU node, or a GPU machine lent to a session);
elsewhere they skip, and the gpu backend's refusal without CUDA is covered by the server tests.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from reranker_server.config import DEFAULT_MAX_BATCH_TOKENS
from reranker_server.engine import CUDA_PROVIDER
from reranker_server.loading import load_engine

from tests.server.conftest import engine_logits, make_settings
from tests.server.process import ServerProcess
from tests.server.texts import QUERY, passages

pytestmark = pytest.mark.skipif(
    CUDA_PROVIDER not in ort.get_available_providers(),
    reason="needs onnxruntime-gpu with CUDA (a GPU machine)",
)
#: ONNX Runtime's CUDA kernels may use TF32 for fp32 products: scores agree to about 1e-3.
GPU_TOLERANCE = 2e-2


def test_the_gpu_backend_runs_on_cuda_and_scores_like_the_cpu(test_model_dir: Path, tmp_path: Path) -> None:
    documents = passages(64, max_words=300, seed=7)
    gpu = load_engine(make_settings(test_model_dir, tmp_path / "gpu", backend="gpu"))
    cpu = load_engine(make_settings(test_model_dir, tmp_path / "cpu", backend="cpu"))
    assert gpu.providers[0] == CUDA_PROVIDER
    np.testing.assert_allclose(
        engine_logits(gpu, QUERY, documents), engine_logits(cpu, QUERY, documents), atol=GPU_TOLERANCE, rtol=0
    )


@pytest.mark.timeout(300)
def test_a_gpu_server_warms_up_and_serves_a_full_k_cap_request(test_model_dir: Path, tmp_path: Path) -> None:
    documents = passages(100, max_words=400, seed=11)
    env = {
        "RERANKER_MODEL": str(test_model_dir),
        "RERANKER_CACHE_DIR": str(tmp_path / "cache"),
        "RERANKER_BACKEND": "gpu",
        "RERANKER_MAX_CANDIDATES": str(len(documents)),
        "RERANKER_MAX_LENGTH": "512",
        "RERANKER_METRICS_PORT": "0",
    }
    with ServerProcess(env, tmp_path / "server.log") as server:
        server.wait_ready(timeout_s=240)
        with httpx.Client(base_url=server.base, timeout=60) as client:
            info = client.get("/info").json()
            body = {"query": QUERY, "documents": documents, "raw_scores": True}
            response = client.post("/v1/rerank", json=body)
    assert info["execution_providers"][0] == CUDA_PROVIDER
    assert info["max_batch_tokens"] == DEFAULT_MAX_BATCH_TOKENS["gpu"]
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    cpu = load_engine(make_settings(test_model_dir, tmp_path / "cpu", backend="cpu", max_length=512))
    expected = engine_logits(cpu, QUERY, documents)
    assert sorted(result["index"] for result in results) == list(range(len(documents)))
    served = np.array([result["relevance_score"] for result in sorted(results, key=lambda r: r["index"])])
    np.testing.assert_allclose(served, expected, atol=GPU_TOLERANCE, rtol=0)
