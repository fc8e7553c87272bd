"""bench.gpu's skeletons: a graph travels without its large weights and comes back servable."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.gpu import restore, strip


def test_a_skeleton_is_small_and_restores_to_a_servable_graph_of_the_same_shapes(
    test_model_dir: Path, tmp_path: Path
) -> None:
    exported = tmp_path / "exported"
    exported.mkdir()
    graph = shutil.copy(test_model_dir / "onnx" / "model.onnx", exported / "model.onnx")
    for name in ("tokenizer.json", "config.json"):
        shutil.copy(test_model_dir / name, exported / name)
    # The test model is tiny: drop everything bigger than a bias, as the real models' weights are.
    strip(graph, tmp_path / "skeleton", min_elements=128)
    assert (tmp_path / "skeleton" / "skeleton.onnx").stat().st_size < graph.stat().st_size / 5
    restore(tmp_path / "skeleton", tmp_path / "model")
    cpu = ["CPUExecutionProvider"]
    original = ort.InferenceSession(str(graph), providers=cpu)
    restored = ort.InferenceSession(str(tmp_path / "model" / "onnx" / "model.onnx"), providers=cpu)
    feeds = {i.name: np.ones((3, 17), np.int64) for i in original.get_inputs()}
    assert [i.name for i in restored.get_inputs()] == list(feeds)
    assert restored.run(None, feeds)[0].shape == original.run(None, feeds)[0].shape == (3, 1)
    assert {p.name for p in (tmp_path / "model").iterdir()} == {"onnx", "tokenizer.json", "config.json"}
