"""optimum's one-call export behind FastAPI, one ONNX Runtime session per uvicorn worker.

    uvicorn --factory bench.recipes.optimum_ort:create_app --workers 2   (+ BENCH_RECIPE_* env)

The model directory is what `ORTModelForSequenceClassification.from_pretrained(..., export=True)`
saved (bench.prepare); scoring is bench.worker's contender B (all pairs in one call, padded to the
longest, ONNX Runtime fp32 with the worker's share of the threads).
"""

from __future__ import annotations

from fastapi import FastAPI

from bench.recipes.app import RecipeSettings, build_app, settings_from_environment, split_torch_threads
from bench.worker import Scorer, optimum_scorer


def load(settings: RecipeSettings) -> Scorer:
    split_torch_threads(settings.threads)
    return optimum_scorer(settings.model, settings.max_length, settings.threads)


def create_app() -> FastAPI:
    return build_app(settings_from_environment(), load, "optimum ORTModelForSequenceClassification + FastAPI")
