"""Fixtures and process helpers shared by every test area."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

#: The shared test model's shape: tiny, so every area's tests stay fast on two cores.
TEST_MODEL_LAYERS = 2
TEST_MODEL_HIDDEN = 32
TEST_MODEL_SEED = 0
#: A machine without the export stack (torch, transformers), such as a GPU machine lent for the gpu
#: tests, points this at the test model built elsewhere (`python -m tests.build_test_model DIR`).
PREBUILT_TEST_MODEL_ENV = "KUBE_RERANKER_TEST_MODEL"


def build_test_model(out: Path) -> Path:
    """The shared test model, built into `out` (torch and transformers needed)."""
    from reranker_server.testmodel import ModelShape, make_test_model

    shape = ModelShape(layers=TEST_MODEL_LAYERS, hidden=TEST_MODEL_HIDDEN, seed=TEST_MODEL_SEED)
    return make_test_model(out, shape)


@pytest.fixture(scope="session")
def test_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded BERT cross-encoder built locally, laid out like a hub reranker.

    Holds config.json, model.safetensors, tokenizer.json and onnx/model.onnx, so
    `reranker-server serve --model <dir>` needs neither the hub nor torch. Scores are meaningless.
    """
    if prebuilt := os.environ.get(PREBUILT_TEST_MODEL_ENV):
        return Path(prebuilt)
    return build_test_model(tmp_path_factory.mktemp("test-model"))


def free_port() -> int:
    """A loopback port nobody listens on now, for a process a test starts (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen, *, grace_s: float) -> None:
    """SIGTERM, then SIGKILL after `grace_s`: a hung child must not outlive (or hang) the test run."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
