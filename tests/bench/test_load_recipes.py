"""The baselines' FastAPI app, with a stand-in scorer (no model, no torch threads touched)."""

from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from asgi_lifespan import LifespanManager

from bench.recipes.app import RecipeSettings, RecipeSettingsError, build_app


def by_length(settings: RecipeSettings):
    def score(pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [float(len(passage)) for _, passage in pairs]

    return score


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(RecipeSettings(model="unused", max_length=256, threads=1), by_length, "test")
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as http,
    ):
        yield http


def test_recipe_settings_travel_through_the_environment() -> None:
    settings = RecipeSettings(model="/m", max_length=128, threads=1)
    assert RecipeSettings.from_env(settings.to_env()) == settings


def test_missing_recipe_settings_name_the_variables() -> None:
    with pytest.raises(RecipeSettingsError, match="BENCH_RECIPE_MODEL"):
        RecipeSettings.from_env({})


async def test_the_recipe_ranks_passages_by_score(client: httpx.AsyncClient) -> None:
    body = {"query": "q", "texts": ["aa", "aaaa", "a"], "raw_scores": True, "truncate": True}
    response = await client.post("/rerank", json=body)
    assert response.status_code == 200
    assert [item["index"] for item in response.json()] == [1, 0, 2]


async def test_ready_names_the_worker_that_answered(client: httpx.AsyncClient) -> None:
    import os

    assert (await client.get("/ready")).json() == {"pid": os.getpid()}
