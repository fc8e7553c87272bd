"""The `helm test` script (charts/kube-reranker/files/check_endpoint.py) passes against a real
reranker-server and fails, saying why, when the endpoint is not one."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.chart.rendering import CHART
from tests.conftest import free_port, stop_process

SCRIPT = CHART / "files" / "check_endpoint.py"
SERVER = Path(sys.executable).parent / "reranker-server"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_endpoint", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_check(url: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-B", str(SCRIPT), f"--url={url}", f"--timeout-s={timeout_s}"],
        capture_output=True,
        text=True,
        timeout=timeout_s + 60,
        check=False,
    )


def test_a_ranking_with_top_n_sorted_results_passes() -> None:
    check = load_script()
    answer = {"results": [{"index": 0, "relevance_score": 0.9}, {"index": 2, "relevance_score": 0.1}]}
    assert check.check_ranking(answer) == [(0, 0.9), (2, 0.1)]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            {"results": [{"index": 0, "relevance_score": 0.1}, {"index": 1, "relevance_score": 0.9}]},
            "not sorted",
        ),
        ({"results": [{"index": 0, "relevance_score": 0.9}]}, "expected 2 results"),
        (
            {"results": [{"index": 7, "relevance_score": 0.9}, {"index": 1, "relevance_score": 0.1}]},
            "index 7",
        ),
        (
            {"results": [{"index": 0, "relevance_score": "high"}, {"index": 1, "relevance_score": 0.1}]},
            "number",
        ),
        ({"detail": "not found"}, "expected 2 results"),
    ],
    ids=["unsorted", "short", "bad-index", "non-numeric-score", "no-results"],
)
def test_an_answer_a_client_cannot_use_is_rejected_with_the_reason(answer: dict, reason: str) -> None:
    check = load_script()
    with pytest.raises(check.EndpointError, match=reason):
        check.check_ranking(answer)


def test_an_endpoint_that_never_answers_fails_with_the_last_error() -> None:
    result = run_check(f"http://127.0.0.1:{free_port()}", timeout_s=1)
    assert result.returncode == 1
    assert "/ready not 200 after 1 s; last answer: unreachable" in result.stderr


@pytest.fixture(scope="module")
def reranker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real reranker-server process on a small local test model."""
    if not SERVER.exists():
        pytest.fail(f"{SERVER} is missing: `pip install -e .[server]` (make venv)", pytrace=False)
    model = tmp_path_factory.mktemp("model") / "test-model"
    made = subprocess.run(
        [str(SERVER), "make-test-model", "--out", str(model)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    port = free_port()
    process = subprocess.Popen(
        [
            str(SERVER),
            "serve",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            f"--port={port}",
            "--metrics-port=0",
            f"--cache-dir={tmp_path_factory.mktemp('cache')}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process, grace_s=30)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_the_check_passes_against_a_real_reranker_server(reranker_server: str) -> None:
    result = run_check(reranker_server, timeout_s=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK {reranker_server} ready after" in result.stdout
    ranked = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    assert len(ranked) == 2  # top_n; the test model's scores are meaningless, so no order is expected
