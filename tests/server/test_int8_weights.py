"""int8 weights: signed where the CPU sums u8 x s8 products into int32, unsigned where it saturates."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from reranker_server import int8weights
from reranker_server.api import verify_integrity
from reranker_server.artefact import ArtefactError, Canary, ModelFiles
from reranker_server.engine import Engine
from reranker_server.int8weights import (
    Int8Weights,
    cpu_flags,
    graph_weights,
    saturation_warning,
    weights_for,
    weights_for_this_cpu,
)
from reranker_server.preparation.quantize import quantize_int8
from reranker_server.preparation.store import ModelStore

from tests.server.conftest import engine_logits
from tests.server.texts import QUERY, passages

ZEN3_FLAGS = frozenset({"sse4_2", "avx", "avx2", "fma"})
ZEN4_FLAGS = ZEN3_FLAGS | {"avx512f", "avx512bw", "avx512_vnni"}


def quantised(model_dir: Path, target: Path, weights: Int8Weights) -> Path:
    quantize_int8(
        model_dir / "onnx" / "model.onnx",
        target,
        tokenizer=model_dir / "tokenizer.json",
        max_length=64,
        weights=weights,
    )
    return target


@pytest.fixture(scope="module")
def signed_graph(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test model quantised with signed weights, as a VNNI node prepares it."""
    return quantised(test_model_dir, tmp_path_factory.mktemp("signed") / "model.onnx", "s8")


def signed_files(model_dir: Path, graph: Path) -> ModelFiles:
    """The signed graph as a pod serves an int8 artefact."""
    return ModelFiles(
        name="signed",
        revision="main",
        graph=graph,
        tokenizer=model_dir / "tokenizer.json",
        config=json.loads((model_dir / "config.json").read_text()),
        quantization="int8",
    )


def test_cpu_flags_are_read_from_proc_cpuinfo_text() -> None:
    text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 avx512_vnni\n\nprocessor\t: 1\n"
    assert cpu_flags(text) == {"fpu", "avx2", "avx512_vnni"}
    assert cpu_flags("processor\t: 0\n") is None


def test_vnni_cpus_get_signed_weights_and_older_x86_unsigned_ones() -> None:
    assert weights_for("x86_64", ZEN4_FLAGS) == "s8"
    assert weights_for("x86_64", ZEN3_FLAGS | {"avx_vnni"}) == "s8"
    assert weights_for("x86_64", ZEN3_FLAGS) == "u8"
    assert weights_for("x86_64", ZEN3_FLAGS | {"avx512f", "avx512bw"}) == "u8"


def test_an_x86_cpu_whose_flags_cannot_be_read_gets_the_weights_that_are_exact_everywhere() -> None:
    assert weights_for("x86_64", None) == "u8"


def test_arm_cpus_sum_into_int32_and_get_signed_weights() -> None:
    assert weights_for("aarch64", frozenset({"asimd", "asimddp"})) == "s8"
    assert weights_for("arm64", None) == "s8"


def test_the_quantised_graph_carries_the_weight_type_it_was_asked_for(
    test_model_dir: Path, signed_graph: Path, tmp_path: Path
) -> None:
    unsigned = quantised(test_model_dir, tmp_path / "model.onnx", "u8")
    assert graph_weights(signed_graph) == "s8"
    assert graph_weights(unsigned) == "u8"
    assert graph_weights(test_model_dir / "onnx" / "model.onnx") is None


def test_the_model_store_quantises_with_this_cpus_weights_and_keys_its_cache_by_them(
    test_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore(tmp_path / "cache", offline=True)
    here = store.resolve(str(test_model_dir), "main", "int8")
    assert graph_weights(here.graph) == weights_for_this_cpu()
    other = "u8" if weights_for_this_cpu() == "s8" else "s8"
    monkeypatch.setattr(int8weights, "weights_for_this_cpu", lambda: other)
    there = store.resolve(str(test_model_dir), "main", "int8")
    assert there.graph.parent != here.graph.parent
    assert graph_weights(there.graph) == other


def test_int8_on_this_cpu_scores_close_to_fp32(test_model_dir: Path, tmp_path: Path) -> None:
    """Whatever CPU runs the suite, its own int8 weights keep the test model's logits near fp32."""
    store = ModelStore(tmp_path / "cache", offline=True)
    documents = passages(16, max_words=100)
    logits = {
        quantization: engine_logits(
            Engine(
                store.resolve(str(test_model_dir), "main", quantization),
                backend="cpu",
                max_length=128,
                threads=1,
            ),
            QUERY,
            documents,
        )
        for quantization in ("none", "int8")
    }
    assert np.abs(logits["int8"] - logits["none"]).max() < 0.1 * np.ptp(logits["none"])


def test_signed_weights_on_a_saturating_cpu_are_named_with_the_fix(
    signed_graph: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(int8weights, "this_cpu", lambda: ("x86_64", ZEN3_FLAGS))
    warning = saturation_warning(signed_graph)
    assert warning is not None
    assert "no VNNI" in warning
    assert "prepare int8 on this node's CPU type" in warning


def test_signed_weights_on_a_vnni_cpu_are_fine(signed_graph: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(int8weights, "this_cpu", lambda: ("x86_64", ZEN4_FLAGS))
    assert saturation_warning(signed_graph) is None


def test_loading_signed_weights_on_a_saturating_cpu_logs_the_warning(
    test_model_dir: Path,
    signed_graph: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(int8weights, "this_cpu", lambda: ("x86_64", ZEN3_FLAGS))
    files = signed_files(test_model_dir, signed_graph)
    with caplog.at_level(logging.WARNING, logger="reranker_server.engine"):
        Engine(files, backend="cpu", max_length=64, threads=1)
    assert any("saturating int16" in record.getMessage() for record in caplog.records)


def test_a_failed_integrity_check_of_signed_weights_on_a_saturating_cpu_names_the_likely_cause(
    test_model_dir: Path, signed_graph: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(int8weights, "this_cpu", lambda: ("x86_64", ZEN3_FLAGS))
    pairs = [[QUERY, document] for document in passages(4)]
    files = signed_files(test_model_dir, signed_graph)
    far_off = Canary(
        pairs=pairs, logits=[5.0, -5.0, 5.0, -5.0], max_length=64, tolerance=0.01, min_spearman=0.99
    )
    engine = Engine(dataclasses.replace(files, canary=far_off), backend="cpu", max_length=64, threads=1)
    with pytest.raises(ArtefactError, match=r"likely cause: .*no VNNI"):
        verify_integrity(engine)
