"""Model resolution: shipped ONNX used as is, exports and int8 built once and atomically, clear hub errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from reranker_server.artefact import ModelError, ModelFiles
from reranker_server.engine import Engine
from reranker_server.preparation.store import ModelStore, build_atomically

from tests.server.conftest import engine_logits
from tests.server.texts import QUERY, passages

HUB_ID = "cross-encoder/ms-marco-MiniLM-L-6-v2"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def checkpoint_dir(test_model_dir: Path, tmp_path: Path) -> Path:
    """The test model without its ONNX graph: a plain transformers checkpoint."""
    target = tmp_path / "checkpoint"
    shutil.copytree(test_model_dir, target, ignore=shutil.ignore_patterns("onnx"))
    return target


def scores(files: ModelFiles) -> np.ndarray:
    engine = Engine(files, backend="cpu", max_length=128, threads=1)
    return engine_logits(engine, QUERY, passages(16, max_words=100))


def test_a_directory_with_an_onnx_graph_is_served_as_is(test_model_dir: Path, tmp_path: Path) -> None:
    files = ModelStore(tmp_path / "cache", offline=True).resolve(str(test_model_dir), "main", "none")
    assert files.graph == test_model_dir / "onnx" / "model.onnx"
    assert files.tokenizer == test_model_dir / "tokenizer.json"
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_checkpoint_is_exported_once_into_the_cache(
    test_model_dir: Path, checkpoint_dir: Path, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "cache", offline=True)
    exported = store.resolve(str(checkpoint_dir), "main", "none")
    assert exported.graph.is_relative_to(tmp_path / "cache" / "onnx")
    written = exported.graph.stat().st_mtime_ns
    assert store.resolve(str(checkpoint_dir), "main", "none").graph.stat().st_mtime_ns == written
    shipped = ModelStore(tmp_path / "other", offline=True).resolve(str(test_model_dir), "main", "none")
    np.testing.assert_allclose(scores(exported), scores(shipped), atol=1e-5)


def test_int8_is_cached_apart_from_fp32_and_ranks_alike(test_model_dir: Path, tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "cache", offline=True)
    fp32 = store.resolve(str(test_model_dir), "main", "none")
    int8 = store.resolve(str(test_model_dir), "main", "int8")
    assert int8.graph.is_relative_to(tmp_path / "cache" / "int8")
    assert int8.graph != fp32.graph
    assert fp32.graph.is_file()
    assert np.corrcoef(scores(fp32), scores(int8))[0, 1] > 0.95


def test_cpu_graphs_are_fused_once_into_the_cache_and_score_the_same(
    test_model_dir: Path, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "cache", offline=True)
    fused = store.resolve(str(test_model_dir), "main", "none", fuse=True)
    assert fused.fused
    assert fused.graph.is_relative_to(tmp_path / "cache" / "fused")
    written = fused.graph.stat().st_mtime_ns
    assert store.resolve(str(test_model_dir), "main", "none", fuse=True).graph.stat().st_mtime_ns == written
    np.testing.assert_allclose(
        scores(fused), scores(store.resolve(str(test_model_dir), "main", "none")), atol=1e-5
    )


def op_types(graph: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(graph), load_external_data=False).graph.node}


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_cpu_fusion_leaves_layer_norm_and_gelu_to_their_faster_plain_operators(
    test_model_dir: Path, tmp_path: Path, quantize: str
) -> None:
    files = ModelStore(tmp_path / "cache", offline=True).resolve(
        str(test_model_dir), "main", quantize, fuse=True
    )
    ops = op_types(files.graph)
    assert {"LayerNormalization", "Gelu"} <= ops
    assert ops & {"Attention", "QAttention"}
    assert not ops & {"SkipLayerNormalization", "BiasGelu"}


def test_a_cpu_session_does_not_fuse_layer_norm_and_gelu_back(test_model_dir: Path, tmp_path: Path) -> None:
    import onnxruntime as ort
    from reranker_server.engine import CPU_DISABLED_OPTIMIZERS

    files = ModelStore(tmp_path / "cache", offline=True).resolve(
        str(test_model_dir), "main", "int8", fuse=True
    )
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "as-run.onnx")
    ort.InferenceSession(
        str(files.graph),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(CPU_DISABLED_OPTIMIZERS),
    )
    assert not op_types(tmp_path / "as-run.onnx") & {"SkipLayerNormalization", "BiasGelu"}


def test_an_architecture_without_attention_fusion_is_served_unfused(
    test_model_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-architecture"
    shutil.copytree(test_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "deberta-v2"}))
    files = ModelStore(tmp_path / "cache", offline=True).resolve(str(other), "main", "none", fuse=True)
    assert not files.fused
    assert files.graph == other / "onnx" / "model.onnx"


def test_a_crashed_build_leaves_nothing_a_later_start_would_load(tmp_path: Path) -> None:
    final = tmp_path / "int8" / "model-0123"

    def crash(scratch: Path) -> None:
        (scratch / "model.onnx").write_bytes(b"half a graph")
        raise MemoryError("killed mid-write")

    with pytest.raises(MemoryError):
        build_atomically(final, crash)
    assert not final.exists()
    assert list(final.parent.iterdir()) == []
    build_atomically(final, lambda scratch: (scratch / "model.onnx").write_bytes(b"whole graph"))
    assert (final / "model.onnx").read_bytes() == b"whole graph"


def test_an_uncached_model_id_offline_says_which_model_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as error:
        ModelStore(tmp_path / "cache", offline=True).resolve(HUB_ID, "main", "none")
    message = str(error.value)
    assert HUB_ID in message
    assert "HF_HUB_OFFLINE" in message
    assert "reranker-server export" in message
    assert "local directory" in message


def test_a_model_id_already_in_the_cache_is_served_offline(test_model_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "cache" / "hub" / ("models--" + HUB_ID.replace("/", "--"))
    shutil.copytree(test_model_dir, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    files = ModelStore(tmp_path / "cache", offline=True).resolve(HUB_ID, "main", "none")
    assert files.revision == COMMIT
    assert files.graph == repo / "snapshots" / COMMIT / "onnx" / "model.onnx"


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        ModelStore(tmp_path, offline=True).resolve(str(tmp_path / "nope"), "main", "none")


def test_something_that_is_neither_a_directory_nor_a_model_id_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="neither an existing directory nor a valid Hugging Face model id"):
        ModelStore(tmp_path, offline=True).resolve("not a model!", "main", "none")


def test_a_model_without_tokenizer_json_says_how_to_get_one(test_model_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(test_model_dir, bare)
    (bare / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"no tokenizer\.json"):
        ModelStore(tmp_path / "cache", offline=True).resolve(str(bare), "main", "none")
