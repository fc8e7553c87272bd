"""Fixtures and process helpers shared by every test area."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest
import yaml

ROOT: Final = Path(__file__).resolve().parents[1]
EXAMPLES_DIR: Final = ROOT / "examples"
#: Eager PyTorch logits for (query, documents, max_length): the ground truth scores are checked against.
Reference = Callable[[str, Sequence[str], int], np.ndarray]

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


@pytest.fixture(scope="session")
def torch_reference(test_model_dir: Path) -> Reference:
    """Eager PyTorch logits of the test model (transformers, same weights): the ground truth."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(test_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        test_model_dir, attn_implementation="eager"
    ).eval()

    def logits(query: str, documents: Sequence[str], max_length: int) -> np.ndarray:
        batch = tokenizer(
            [query] * len(documents),
            list(documents),
            padding=True,
            truncation="longest_first",
            max_length=max_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            return model(**batch).logits[:, 0].numpy()

    return logits


def rendered_children(example: str, *, namespace: str = "search") -> dict[str, dict[str, Any]]:
    """The children the operator applies for `examples/<example>.yaml`, by kind, with owner references."""
    from reranker_operator import api
    from reranker_operator.config import OperatorConfig
    from reranker_operator.plan import Capabilities, owned, plan_children
    from reranker_operator.resources.common import ChildRef

    cr = yaml.safe_load((EXAMPLES_DIR / f"{example}.yaml").read_text())
    cr["metadata"] |= {"namespace": namespace, "uid": str(uuid.uuid4())}
    ref = ChildRef(cr_name=cr["metadata"]["name"], namespace=namespace)
    plan = plan_children(api.parse_spec(cr["spec"]), ref, OperatorConfig(), Capabilities())
    return {child["kind"]: child for child in owned(plan.children, cr)}


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
