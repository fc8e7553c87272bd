"""The FastAPI app both baselines share: load one scorer per worker, score each request in one call.

This is the recipe the usual guides give, kept plain on purpose: a sync `def` route (FastAPI runs it
in its thread pool, as its docs advise for blocking libraries), no batching across requests, no
admission, no deadline; one model per uvicorn worker, its threads split so the workers together
use the pod's cores. The route speaks our server's TEI shape (`query`, `texts` -> `[{index,
score}]`) so one load generator drives every contender; unknown fields are ignored.

Each worker builds its settings from BENCH_RECIPE_* env vars in the uvicorn factory (the edge):
uvicorn --workers starts fresh processes and passes nothing else.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

from fastapi import FastAPI, Request
from pydantic import BaseModel

from bench.worker import Scorer

ENV_PREFIX: Final = "BENCH_RECIPE_"
Loader = Callable[["RecipeSettings"], Scorer]


class RecipeSettingsError(ValueError):
    """A BENCH_RECIPE_* variable is missing or malformed."""


@dataclass(frozen=True)
class RecipeSettings:
    model: str
    max_length: int
    threads: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RecipeSettings:
        try:
            return cls(
                model=env[ENV_PREFIX + "MODEL"],
                max_length=int(env[ENV_PREFIX + "MAX_LENGTH"]),
                threads=int(env[ENV_PREFIX + "THREADS"]),
            )
        except (KeyError, ValueError) as exc:
            raise RecipeSettingsError(f"set {ENV_PREFIX}MODEL, MAX_LENGTH and THREADS: {exc}") from None

    def to_env(self) -> dict[str, str]:
        return {
            ENV_PREFIX + "MODEL": self.model,
            ENV_PREFIX + "MAX_LENGTH": str(self.max_length),
            ENV_PREFIX + "THREADS": str(self.threads),
        }


class RerankRequest(BaseModel):
    query: str
    texts: list[str]


class Ranked(BaseModel):
    index: int
    score: float


class Ready(BaseModel):
    pid: int


def build_app(settings: RecipeSettings, load: Loader, title: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.scorer = load(settings)
        yield

    app = FastAPI(title=title, lifespan=lifespan)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", response_model=Ready)
    def ready() -> Ready:
        """Served only once this worker's lifespan loaded its model; the pid tells workers apart."""
        return Ready(pid=os.getpid())

    @app.post("/rerank", response_model=list[Ranked])
    def rerank(body: RerankRequest, request: Request) -> list[Ranked]:
        scorer: Scorer = request.app.state.scorer
        scores = scorer([(body.query, text) for text in body.texts])
        ranked = sorted(enumerate(scores), key=lambda item: item[1], reverse=True)
        return [Ranked(index=index, score=score) for index, score in ranked]

    return app


def split_torch_threads(threads: int) -> None:
    """Both recipes run torch (the optimum one for its tensors): its threads, like ONNX Runtime's,
    are this worker's share of the cores."""
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)


def settings_from_environment() -> RecipeSettings:
    return RecipeSettings.from_env(os.environ)
