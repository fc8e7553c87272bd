"""`reranker-server prepare` and serving what it made: manifest, reuse, integrity, big graphs.

The preparation runs on the test model (torch present, as in the export image); the serving side
loads the artefact only through its manifest, and its warm-up recomputes the canaries.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from reranker_server.api import create_app
from reranker_server.artefact import (
    MANIFEST_NAME,
    ArtefactError,
    Manifest,
    ModelError,
    Recipe,
    file_entries,
    read_artefact,
    sha256_of,
)
from reranker_server.config import Settings
from reranker_server.preparation.collect import collect_garbage
from reranker_server.preparation.prepare import check_architecture, exit_code_for, prepare, result_line
from reranker_server.preparation.store import ModelStore

from tests.conftest import Reference
from tests.server.conftest import running_app, wait_for

QUERY = "how do pods become ready?"
DOCUMENTS = ["A pod is ready when its probe succeeds.", "Bananas are yellow.", "The kubelet probes /ready."]


def recipe_for(model: Path, quantization: str = "none") -> Recipe:
    return Recipe(model=str(model), revision="main", backend="cpu", quantization=quantization)


@pytest.fixture(scope="module")
def artefact(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test model prepared once (fp32, fused), as a Job would leave it on the cache volume."""
    tmp = tmp_path_factory.mktemp("prepared")
    out = tmp / "artefact"
    prepare(recipe_for(test_model_dir), out=out, cache_dir=tmp / "cache", offline=True)
    return out


def damaged_copy(artefact: Path, tmp_path: Path, change: Callable[[onnx.ModelProto], None]) -> Path:
    """The artefact with its graph edited and its manifest re-hashed, so only the canaries can tell."""
    copy = tmp_path / "damaged"
    shutil.copytree(artefact, copy)
    graph = onnx.load(str(copy / "model.onnx"))
    change(graph)
    onnx.save(graph, str(copy / "model.onnx"))
    manifest = json.loads((copy / MANIFEST_NAME).read_text())
    manifest["files"] = {name: vars(entry) for name, entry in file_entries(copy).items()}
    manifest.pop("digest")
    (copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    return copy


def serving_settings(settings_factory: Callable[..., Settings], artefact: Path, model: Path) -> Settings:
    return settings_factory(artefact=artefact, model=str(model))


async def ready_reason(settings: Settings) -> str:
    async with running_app(create_app(settings), wait_ready=False) as client:

        async def settled() -> bool:
            return (await client.get("/ready")).json()["status"] in {"failed", "ready"}

        await wait_for(settled, 60, "start-up to finish")
        return (await client.get("/ready")).json().get("reason", "ready")


def test_the_manifest_records_every_file_with_its_sha256_and_size(artefact: Path) -> None:
    _, manifest = read_artefact(artefact)
    on_disk = sorted(p.name for p in artefact.iterdir() if p.name != MANIFEST_NAME)
    assert sorted(manifest.files) == on_disk
    for name, entry in manifest.files.items():
        assert entry.sha256 == sha256_of(artefact / name)
        assert entry.size == (artefact / name).stat().st_size


def test_the_manifest_says_how_the_artefact_was_made(artefact: Path, test_model_dir: Path) -> None:
    _, manifest = read_artefact(artefact)
    assert manifest.recipe == recipe_for(test_model_dir)
    assert manifest.resolved_commit == "local"
    assert manifest.opset >= 14
    assert manifest.onnxruntime_version
    assert manifest.fused
    assert manifest.preparation_seconds > 0
    assert manifest.canary is not None
    assert len(manifest.canary.logits) == len(manifest.canary.pairs) == 8


def test_the_canaries_are_pytorchs_logits(artefact: Path, torch_reference: Reference) -> None:
    canary = read_artefact(artefact)[1].canary
    assert canary is not None
    expected = [float(torch_reference(q, [d], canary.max_length)[0]) for q, d in canary.pairs]
    np.testing.assert_allclose(canary.logits, expected, atol=1e-5)


def test_the_digest_covers_the_bytes_not_the_preparation_time(artefact: Path) -> None:
    manifest = read_artefact(artefact)[1]
    retimed = Manifest.from_json(manifest.to_json().replace(manifest.prepared_at, "2030-01-01T00:00:00Z"))
    assert retimed.digest == manifest.digest
    assert manifest.digest.startswith("sha256:")


def test_preparing_the_same_recipe_again_reuses_the_artefact(artefact: Path, test_model_dir: Path) -> None:
    again = prepare(
        recipe_for(test_model_dir), out=artefact, cache_dir=artefact.parent / "cache", offline=True
    )
    assert again.reused
    assert json.loads(result_line(again))["digest"] == read_artefact(artefact)[1].digest


def test_preparing_another_recipe_into_an_artefact_is_refused(artefact: Path, test_model_dir: Path) -> None:
    with pytest.raises(ArtefactError, match="another recipe") as refused:
        prepare(recipe_for(test_model_dir, "int8"), out=artefact, cache_dir=artefact.parent, offline=True)
    assert refused.value.reason == "ArtefactConflict"


def test_a_decoder_only_model_is_refused_as_unsupported() -> None:
    with pytest.raises(ModelError, match="decoder-only") as refused:
        check_architecture("Qwen/Qwen3-Reranker-0.6B", {"model_type": "qwen3"})
    assert refused.value.reason == "UnsupportedArchitecture"


def test_a_missing_model_fails_preparation_with_its_reason(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as failed:
        prepare(recipe_for(tmp_path / "nowhere"), out=tmp_path / "out", cache_dir=tmp_path, offline=True)
    assert failed.value.reason == "RepositoryNotFound"
    assert not (tmp_path / "out").exists()


def test_an_id_that_is_not_cached_offline_says_there_is_no_network(tmp_path: Path) -> None:
    recipe = Recipe(model="org/never-downloaded", revision="main", backend="cpu", quantization="none")
    with pytest.raises(ModelError) as failed:
        prepare(recipe, out=tmp_path / "out", cache_dir=tmp_path, offline=True)
    assert failed.value.reason == "NoNetworkNothingCached"


async def test_the_server_serves_the_artefact_and_reports_its_digest(
    artefact: Path,
    test_model_dir: Path,
    settings_factory: Callable[..., Settings],
    torch_reference: Reference,
) -> None:
    settings = serving_settings(settings_factory, artefact, test_model_dir)
    async with running_app(create_app(settings)) as client:
        info = (await client.get("/info")).json()
        metrics = (await client.get("/metrics")).text
        response = await client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "raw_scores": True})
    digest = read_artefact(artefact)[1].digest
    assert info["artefact_digest"] == digest
    assert info["integrity_check"].startswith("passed")
    assert f'digest="{digest}"' in metrics
    reference = torch_reference(QUERY, DOCUMENTS, 128)
    for result in response.json():
        assert result["score"] == pytest.approx(float(reference[result["index"]]), abs=1e-4)


async def test_the_server_never_prepares_when_given_an_artefact(
    artefact: Path, test_model_dir: Path, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = serving_settings(settings_factory, artefact, test_model_dir)
    assert await ready_reason(settings) == "ready"
    assert not settings.cache_dir.exists(), "serving an artefact wrote to the cache"


async def test_an_artefact_of_another_recipe_is_not_served(
    artefact: Path, test_model_dir: Path, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(artefact=artefact, model=str(test_model_dir), quantize="int8")
    reason = await ready_reason(settings)
    assert "another recipe" in reason
    assert "quantization 'none' (asked 'int8')" in reason


async def test_an_unprepared_directory_is_not_served(
    test_model_dir: Path, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    reason = await ready_reason(settings_factory(artefact=tmp_path, model=str(test_model_dir)))
    assert "holds no manifest.json" in reason


async def test_a_graph_whose_classifier_head_was_lost_does_not_turn_ready(
    artefact: Path, test_model_dir: Path, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """What loading a checkpoint with the wrong class does: the head is re-initialised."""

    def reinitialise_head(graph: onnx.ModelProto) -> None:
        for tensor in graph.graph.initializer:
            if tensor.name.startswith("classifier."):
                values = numpy_helper.to_array(tensor)
                rng = np.random.default_rng(1)
                tensor.CopyFrom(
                    numpy_helper.from_array(
                        rng.normal(0, 0.2, values.shape).astype(values.dtype), tensor.name
                    )
                )

    damaged = damaged_copy(artefact, tmp_path, reinitialise_head)
    reason = await ready_reason(serving_settings(settings_factory, damaged, test_model_dir))
    assert reason.startswith("integrity check failed")


async def test_a_refused_artefact_is_written_to_the_termination_log_for_the_kubelet(
    artefact: Path, test_model_dir: Path, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    log = tmp_path / "termination-log"
    settings = settings_factory(
        artefact=artefact, model=str(test_model_dir), quantize="int8", termination_log=log
    )
    await ready_reason(settings)
    assert log.read_text().startswith("ArtefactInvalid: the artefact at")


async def test_a_graph_with_perturbed_weights_does_not_turn_ready(
    artefact: Path, test_model_dir: Path, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    def perturb_largest_weight(graph: onnx.ModelProto) -> None:
        tensor = max(graph.graph.initializer, key=lambda t: np.prod(t.dims))
        values = numpy_helper.to_array(tensor)
        noise = np.random.default_rng(2).normal(0, 0.05, values.shape).astype(values.dtype)
        tensor.CopyFrom(numpy_helper.from_array(values + noise, tensor.name))

    damaged = damaged_copy(artefact, tmp_path, perturb_largest_weight)
    reason = await ready_reason(serving_settings(settings_factory, damaged, test_model_dir))
    assert reason.startswith("integrity check failed")
    assert "largest logit error" in reason


async def test_a_truncated_graph_is_refused_before_loading(
    artefact: Path, test_model_dir: Path, settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    copy = tmp_path / "truncated"
    shutil.copytree(artefact, copy)
    graph = copy / "model.onnx"
    graph.write_bytes(graph.read_bytes()[:1000])
    reason = await ready_reason(serving_settings(settings_factory, copy, test_model_dir))
    assert "is missing or not" in reason


@pytest.mark.slow
@pytest.mark.parametrize("quantization", ["none", "int8"])
async def test_a_graph_over_the_external_data_threshold_is_prepared_and_served(
    quantization: str,
    test_model_dir: Path,
    settings_factory: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    """XLM-R-large is over protobuf's 2 GiB: with the threshold lowered the test model takes that path."""
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(test_model_dir, checkpoint, ignore=shutil.ignore_patterns("onnx"))
    store = ModelStore(tmp_path / "cache", offline=True, external_data_threshold_bytes=1000)
    out = tmp_path / "artefact"
    recipe = recipe_for(checkpoint, quantization)
    prepare(recipe, out=out, cache_dir=tmp_path / "cache", offline=True, store=store)
    _, manifest = read_artefact(out)
    assert [name for name in manifest.files if name.startswith("model.onnx") and name != "model.onnx"]
    settings = settings_factory(artefact=out, model=str(checkpoint), quantize=quantization)
    assert await ready_reason(settings) == "ready"


def test_garbage_collection_deletes_only_old_artefacts_nobody_keeps(artefact: Path, tmp_path: Path) -> None:
    root = tmp_path / "artefacts"
    for name in ("in-use", "unused", "fresh-unused", ".unused.partial-x1"):
        shutil.copytree(artefact, root / name)
    prepared = read_artefact(root / "unused")[1].prepared_at
    stamp = (
        datetime.datetime.strptime(prepared, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()
    )
    day = 24 * 3600
    for name in ("in-use", "unused", ".unused.partial-x1"):
        manifest = json.loads((root / name / MANIFEST_NAME).read_text())
        manifest["prepared_at"] = "2020-01-01T00:00:00Z"
        (root / name / MANIFEST_NAME).write_text(json.dumps(manifest))
    deleted = collect_garbage(root, keep=["in-use"], now=stamp + 3600, older_than_s=day)
    assert deleted == ["unused"]
    assert sorted(p.name for p in root.iterdir()) == [".unused.partial-x1", "fresh-unused", "in-use"]


def test_prepare_exits_1_for_what_a_retry_cannot_fix_and_says_why(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    done = subprocess.run(
        [
            Path(sys.executable).parent / "reranker-server",
            "prepare",
            "--model",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "out"),
            "--termination-log",
            str(log),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert log.read_text().startswith("RepositoryNotFound: model directory")


def test_a_cut_off_download_is_worth_a_retry() -> None:
    assert exit_code_for("DownloadFailed") == 2
    assert exit_code_for("UnsupportedArchitecture") == 1


def test_a_full_volume_fails_preparation_with_its_reason(
    test_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from reranker_server.preparation import prepare as preparation

    def full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(preparation, "build_atomically", full)
    with pytest.raises(ModelError, match="cache volume is full") as failed:
        prepare(recipe_for(test_model_dir), out=tmp_path / "out", cache_dir=tmp_path / "cache", offline=True)
    assert failed.value.reason == "VolumeFull"
    assert exit_code_for(failed.value.reason) == 1
