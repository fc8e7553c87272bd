"""Fixtures and process helpers shared by every test area."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest
import yaml
from reranker_server.testmodel import ModelShape, make_test_model

ROOT: Final = Path(__file__).resolve().parents[1]
EXAMPLES_DIR: Final = ROOT / "examples"
#: Eager PyTorch logits for (query, documents, max_length): the ground truth scores are checked against.
Reference = Callable[[str, Sequence[str], int], np.ndarray]

#: The shared test model's shape: tiny, so every area's tests stay fast on two cores.
TEST_MODEL_LAYERS = 2
TEST_MODEL_HIDDEN = 32
TEST_MODEL_SEED = 0
TEST_MODEL_SHAPE = ModelShape(layers=TEST_MODEL_LAYERS, hidden=TEST_MODEL_HIDDEN, seed=TEST_MODEL_SEED)


@pytest.fixture(scope="session")
def test_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded BERT cross-encoder built locally (no torch), laid out like a hub reranker.

    Holds config.json, model.safetensors, tokenizer.json and onnx/model.onnx, so
    `reranker-server serve --model <dir>` needs neither the hub nor torch. Scores are meaningless.
    """
    return make_test_model(tmp_path_factory.mktemp("test-model"), TEST_MODEL_SHAPE)


def pytorch_logits(model_dir: Path) -> Reference:
    """Eager PyTorch logits of a checkpoint (transformers, same weights): the ground truth."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()

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


@pytest.fixture(scope="session")
def torch_reference(test_model_dir: Path) -> Reference:
    """The test model's PyTorch logits."""
    return pytorch_logits(test_model_dir)


@pytest.fixture(scope="session")
def checkpoints(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoints without an ONNX graph, as hub repos that ship only safetensors: BERT (the test model's
    weights) and XLM-R (XLMRobertaForSequenceClassification, bge-reranker-v2-m3's architecture)."""
    import shutil

    root = tmp_path_factory.mktemp("checkpoints")
    bert = root / "bert"
    shutil.copytree(test_model_dir, bert, ignore=shutil.ignore_patterns("onnx"))
    xlmr = make_test_model(
        root / "xlm-roberta", TEST_MODEL_SHAPE, with_onnx=False, architecture="xlm-roberta"
    )
    return {"bert": bert, "xlm-roberta": xlmr}


#: Blocks `import torch` in a Python process (a sitecustomize on PYTHONPATH) and records every attempt.
TORCH_BLOCKER: Final = """
import importlib.abc, os, sys

class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            with open(os.environ["TORCH_ATTEMPTS"], "a") as attempts:
                attempts.write(name + "\\n")
            raise ModuleNotFoundError("torch is blocked in this test", name=name)
        return None

sys.meta_path.insert(0, BlockTorch())
"""


def torch_blocked_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Env vars under which `import torch` fails, as in the server image, and the file of attempts."""
    blocker = tmp_path / "torch-blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(TORCH_BLOCKER)
    attempts = tmp_path / "torch-attempts.txt"
    env = {"PYTHONPATH": str(blocker), "TORCH_ATTEMPTS": str(attempts)}
    probe = subprocess.run(
        [sys.executable, "-c", "import torch"], env={**os.environ, **env}, capture_output=True, check=False
    )
    assert probe.returncode != 0, "the blocker must make `import torch` fail"
    attempts.unlink()
    return env, attempts


def rendered_children(
    example: str, *, namespace: str = "search", spec: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """What the operator applies for `examples/<example>.yaml` (children, preparation Job, claim), by kind;
    `spec` adds or replaces top-level spec fields (e.g. `auth`)."""
    from reranker_operator import api
    from reranker_operator.config import OperatorConfig
    from reranker_operator.plan import Capabilities, owned, plan_children
    from reranker_operator.resources.common import ChildRef

    cr = yaml.safe_load((EXAMPLES_DIR / f"{example}.yaml").read_text())
    cr["metadata"] |= {"namespace": namespace, "uid": str(uuid.uuid4())}
    cr["spec"] |= dict(spec or {})
    ref = ChildRef(cr_name=cr["metadata"]["name"], namespace=namespace)
    plan = plan_children(api.parse_spec(cr["spec"]), ref, OperatorConfig(), Capabilities())
    return {child["kind"]: child for child in owned((*plan.shared, *plan.children), cr)}


def env_of(container: Mapping[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def in_pod(value: str, tmp: Path) -> str:
    """A path of the pod (the cache volume, the termination log) as the test's temporary stand-in."""
    if value.startswith("/cache"):
        return str(tmp / "cache") + value.removeprefix("/cache")
    return str(tmp / "termination-log") if value == "/dev/termination-log" else value


def local_run(
    container: Mapping[str, Any], tmp: Path, swaps: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The container's command line and env as a local process, paths of the pod mapped into `tmp`."""
    env = {name: in_pod(value, tmp) for name, value in env_of(container).items()}
    assert set(swaps) <= set(env), "a swap may only replace variables the operator rendered"
    bin_dir = Path(sys.executable).parent
    env |= {**swaps, "HOME": str(tmp / "home"), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return [*container["command"], *(in_pod(arg, tmp) for arg in container["args"])], env


def prepare_locally(container: Mapping[str, Any], model: Path, tmp: Path) -> dict[str, Any]:
    """Run the rendered preparation container; its termination message is what the operator reads."""
    command, env = local_run(container, tmp, {"RERANKER_MODEL": str(model)})
    done = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads((tmp / "termination-log").read_text())


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
