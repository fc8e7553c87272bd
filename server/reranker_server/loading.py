"""What a server process loads: a prepared artefact, or, for local use, a model prepared on the spot.

A pod always gets `--artefact` (the operator renders it): the export image prepared the directory,
and the server only reads it through its manifest. Without `--artefact` (a laptop, a test) the server
prepares `--model` itself into `--cache-dir`, which needs the `export` extra for checkpoints that
ship no ONNX graph.
"""

from __future__ import annotations

from reranker_server.artefact import ArtefactError, ModelFiles, Recipe, read_artefact
from reranker_server.config import Settings
from reranker_server.cpus import container_cpus
from reranker_server.engine import Engine


def served_files(settings: Settings) -> ModelFiles:
    if settings.artefact is not None:
        files, manifest = read_artefact(settings.artefact)
        check_recipe(manifest.recipe, settings)
        return files
    from reranker_server.preparation.store import ModelStore

    return ModelStore(settings.cache_dir, offline=settings.hub_offline).resolve(
        settings.model, settings.revision, settings.quantize, fuse=settings.backend == "cpu"
    )


def check_recipe(recipe: Recipe, settings: Settings) -> None:
    """An artefact prepared for another model, revision, backend or quantisation is never served."""
    asked = settings.recipe
    if recipe != asked:
        differing = [
            f"{name} {getattr(recipe, name)!r} (asked {getattr(asked, name)!r})"
            for name in ("model", "revision", "backend", "quantization")
            if getattr(recipe, name) != getattr(asked, name)
        ]
        raise ArtefactError(
            f"the artefact at {settings.artefact} was prepared for another recipe: {', '.join(differing)}; "
            "prepare this recipe or point --artefact at its directory"
        )


def load_engine(settings: Settings) -> Engine:
    """The slow part of a pod's start: read (or prepare) the model, then open its session."""
    return Engine(
        served_files(settings),
        backend=settings.backend,
        max_length=settings.max_length,
        threads=settings.intra_op_threads or container_cpus(),
    )
