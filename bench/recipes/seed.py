"""The seed's recipe: sentence-transformers `CrossEncoder` behind FastAPI, one per uvicorn worker.

    uvicorn --factory bench.recipes.seed:create_app --workers 2   (+ BENCH_RECIPE_* env)

Scoring is bench.worker's contender A (CrossEncoder.predict, eager PyTorch fp32, batch 32).
"""

from __future__ import annotations

from fastapi import FastAPI

from bench.recipes.app import RecipeSettings, build_app, settings_from_environment, split_torch_threads
from bench.worker import Scorer, sentence_transformers_scorer


def load(settings: RecipeSettings) -> Scorer:
    split_torch_threads(settings.threads)
    return sentence_transformers_scorer(settings.model, settings.max_length)


def create_app() -> FastAPI:
    return build_app(settings_from_environment(), load, "sentence-transformers CrossEncoder + FastAPI")
