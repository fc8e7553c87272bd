"""Real processes: uvicorn over TCP, the second metrics listener, SIGTERM drain, a torch-free pod, the CLI."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import torch_blocked_env
from tests.server.conftest import engine_logits
from tests.server.process import BIN, ServerProcess, free_port
from tests.server.texts import QUERY, passages

pytestmark = pytest.mark.slow

DOCUMENTS = passages(6, max_words=40, seed=21)


def pod_env(model_dir: Path, cache_dir: Path, **overrides: str) -> dict[str, str]:
    """Every RERANKER_* env var, as the operator renders them into a pod (small k cap for speed)."""
    return {
        "RERANKER_METRICS_PORT": "0",
        "RERANKER_MODEL": str(model_dir),
        "RERANKER_REVISION": "main",
        "RERANKER_CACHE_DIR": str(cache_dir),
        "RERANKER_QUANTIZE": "none",
        "RERANKER_MAX_LENGTH": "256",
        "RERANKER_BACKEND": "cpu",
        "RERANKER_MAX_CANDIDATES": "16",
        "RERANKER_K_CAP_POLICY": "reject",
        "RERANKER_MAX_BATCH_TOKENS": "4096",
        "RERANKER_MAX_BATCH_WAIT_MS": "2",
        "RERANKER_LATENCY_SLO_MS": "1000",
        "RERANKER_REQUEST_TIMEOUT_MS": "0",
        "RERANKER_WARMUP_REQUESTS": "1",
        "RERANKER_INTRA_OP_THREADS": "0",
        "RERANKER_DRAIN_TIMEOUT_S": "20",
        "RERANKER_MAX_REQUEST_BYTES": "2097152",
        "RERANKER_LOG_FORMAT": "json",
        **overrides,
    }


@pytest.fixture(scope="module")
def server(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the HTTP-shape tests, with the second metrics listener on."""
    tmp = tmp_path_factory.mktemp("server")
    env = pod_env(test_model_dir, tmp / "cache", RERANKER_METRICS_PORT=str(free_port()))
    with ServerProcess(env, tmp / "server.log") as process:
        process.wait_ready()
        yield process


@pytest.mark.timeout(120)
def test_ready_is_503_until_warm_up_is_done_then_200(server: ServerProcess) -> None:
    answered = [status for status in server.readiness if status is not None]
    assert answered[-1] == 200
    assert all(status == 503 for status in answered[:-1])


@pytest.mark.timeout(120)
def test_cohere_request_over_a_real_http_client(server: ServerProcess) -> None:
    body = {
        "model": "rerank-english-v3.0",
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": 2,
        "return_documents": True,
    }
    with httpx.Client(base_url=server.base, timeout=30) as client:
        response = client.post("/v1/rerank", json=body)
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 2
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]
    assert results[0]["document"]["text"] == DOCUMENTS[results[0]["index"]]


@pytest.mark.timeout(120)
def test_tei_request_over_a_real_http_client(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        response = client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "return_text": True})
    assert response.status_code == 200
    assert sorted(r["index"] for r in response.json()) == list(range(len(DOCUMENTS)))


@pytest.mark.timeout(120)
def test_a_curl_style_form_content_type_is_read_as_json(server: ServerProcess) -> None:
    body = json.dumps({"query": QUERY, "documents": DOCUMENTS})
    response = httpx.post(
        f"{server.base}/v2/rerank",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200


@pytest.mark.timeout(120)
def test_metrics_are_served_on_both_ports(server: ServerProcess) -> None:
    httpx.post(f"{server.base}/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS}, timeout=30)
    main = httpx.get(f"{server.base}/metrics", timeout=10).text
    second = httpx.get(f"http://127.0.0.1:{server.env['RERANKER_METRICS_PORT']}/metrics", timeout=10).text
    for text in (main, second):
        families = {family.name for family in text_string_to_metric_families(text)}
        assert "reranker_request_duration_seconds" in families
    assert 'k_bucket="1-10"' in second


@pytest.mark.timeout(120)
def test_json_logs_are_one_object_per_line(server: ServerProcess) -> None:
    lines = [line for line in server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert any("warm-up done" in record["message"] for record in records)


@pytest.mark.timeout(180)
def test_sigterm_turns_ready_503_and_lets_in_flight_requests_finish(
    test_model_dir: Path, tmp_path: Path
) -> None:
    env = pod_env(
        test_model_dir,
        tmp_path / "cache",
        RERANKER_MAX_LENGTH="512",
        RERANKER_MAX_CANDIDATES="100",
        RERANKER_MAX_BATCH_TOKENS="16384",
        # Six k=100 x 512 requests take seconds: an SLO and deadline that admit them all.
        RERANKER_LATENCY_SLO_MS="120000",
        RERANKER_REQUEST_TIMEOUT_MS="120000",
        RERANKER_INTRA_OP_THREADS="1",
    )
    documents = passages(100, min_words=600, max_words=600)
    process = ServerProcess(env, tmp_path / "server.log").start().wait_ready()
    responses: list[httpx.Response] = []

    def send() -> None:
        responses.append(
            httpx.post(
                f"{process.base}/v1/rerank", json={"query": QUERY, "documents": documents}, timeout=120
            )
        )

    senders = [threading.Thread(target=send) for _ in range(6)]
    for sender in senders:
        sender.start()
    _wait_until(lambda: _gauge(process, "reranker_requests_in_flight") >= 6, "all requests to be in flight")
    assert process.process is not None
    process.process.send_signal(signal.SIGTERM)
    _wait_until(lambda: _ready_status(process) == "draining", "/ready to say draining")
    for sender in senders:
        sender.join(120)
    assert process.process.wait(60) == 0
    assert [response.status_code for response in responses] == [200] * 6
    assert "draining in-flight requests" in process.log()


@pytest.mark.timeout(120)
def test_a_model_that_ships_onnx_is_served_where_torch_cannot_be_imported(
    test_model_dir: Path, tmp_path: Path
) -> None:
    blocked, attempts = torch_blocked_env(tmp_path)
    env = {**pod_env(test_model_dir, tmp_path / "cache"), **blocked}
    with ServerProcess(env, tmp_path / "server.log") as process:
        process.wait_ready()
        response = httpx.post(
            f"{process.base}/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS}, timeout=30
        )
        assert response.status_code == 200
    assert not attempts.exists(), f"the server tried to import torch: {attempts.read_text()}"


@pytest.mark.timeout(120)
def test_export_cli_writes_a_graph_whose_scores_match_pytorch(test_model_dir: Path, tmp_path: Path) -> None:
    from reranker_server.engine import Engine
    from reranker_server.preparation.store import ModelStore

    checkpoint = tmp_path / "checkpoint"
    made = _cli("make-test-model", "--out", str(checkpoint), "--no-onnx", "--seed", "0")
    assert "MEANINGLESS" in made.stdout
    assert "MEANINGLESS" in json.loads((checkpoint / "config.json").read_text())["kube_reranker_note"]
    assert not (checkpoint / "onnx").exists()
    exported = _cli("export", "--model", str(checkpoint), "--cache-dir", str(tmp_path / "cache"))
    assert str(tmp_path / "cache" / "onnx") in exported.stdout
    files = ModelStore(tmp_path / "cache", offline=True).resolve(str(checkpoint), "main", "none")
    engine = Engine(files, backend="cpu", max_length=256, threads=1)
    ours = engine_logits(engine, QUERY, DOCUMENTS)
    np.testing.assert_allclose(ours, _torch_logits(checkpoint, DOCUMENTS), atol=1e-4)


@pytest.mark.timeout(120)
def test_an_uncached_hub_model_offline_fails_with_words_not_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [BIN / "reranker-server", "export", "--model", "cross-encoder/ms-marco-MiniLM-L-6-v2"],
        env={"HF_HUB_OFFLINE": "1", "RERANKER_CACHE_DIR": str(tmp_path / "cache"), "PATH": str(BIN)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "cross-encoder/ms-marco-MiniLM-L-6-v2" in result.stderr
    assert "HF_HUB_OFFLINE" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(60)
def test_serve_with_an_invalid_setting_exits_naming_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [BIN / "reranker-server", "serve", "--model", str(tmp_path)],
        env={"RERANKER_K_CAP_POLICY": "drop", "PATH": str(BIN)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "--k-cap-policy / RERANKER_K_CAP_POLICY" in result.stderr
    assert "'drop'" in result.stderr


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([BIN / "reranker-server", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result


def _torch_logits(model_dir: Path, documents: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    batch = tokenizer(
        [QUERY] * len(documents),
        documents,
        padding=True,
        truncation=True,
        max_length=256,
        return_tensors="pt",
    )
    with torch.no_grad():
        return model(**batch).logits[:, 0].numpy()


def _gauge(process: ServerProcess, name: str) -> float:
    text = httpx.get(f"{process.base}/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def _ready_status(process: ServerProcess) -> str | None:
    try:
        return httpx.get(f"{process.base}/ready", timeout=5).json()["status"]
    except httpx.TransportError:
        return None


def _wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("taken", "option"), [("RERANKER_PORT", "--port"), ("RERANKER_METRICS_PORT", "--metrics-port")]
)
def test_a_port_already_in_use_is_one_line_naming_the_setting(
    test_model_dir: Path, tmp_path: Path, taken: str, option: str
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = pod_env(test_model_dir, tmp_path / "cache", RERANKER_METRICS_PORT=str(free_port()))
        env |= {
            "RERANKER_HOST": "127.0.0.1",
            "RERANKER_PORT": str(free_port()),
            taken: str(port),
            "PATH": str(BIN),
        }
        result = subprocess.run(
            [BIN / "reranker-server", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=50,
            check=False,
        )
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert line == f"reranker-server: port {port} on 127.0.0.1 is already in use: choose another with " + (
        f"{option} / {taken}"
    )


def test_the_cohere_v1_sdk_ranks_structured_documents_on_rank_fields(server: ServerProcess) -> None:
    import cohere

    documents = [{"title": "Readiness", "text": DOCUMENTS[0]}, {"title": "Other", "text": DOCUMENTS[1]}]
    ranked = cohere.Client(api_key="unused", base_url=server.base).rerank(
        model="rerank-english-v3.0",
        query=QUERY,
        documents=documents,
        rank_fields=["title", "text"],
        return_documents=True,
    )
    assert sorted(result.index for result in ranked.results) == [0, 1]
    texts = {result.index: result.document.text for result in ranked.results if result.document}
    assert texts[0] == f"title: Readiness\ntext: {DOCUMENTS[0]}"
