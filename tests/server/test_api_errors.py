"""Bad input gets a 4xx naming the problem, in one envelope, and the server keeps serving."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from reranker_server.api import create_app
from reranker_server.config import Settings
from reranker_server.engine import Engine

from tests.server.conftest import running_app
from tests.server.texts import QUERY

BODY_LIMIT = 4096
VALID = {"query": QUERY, "documents": ["one passage", "another passage"]}

V1 = "/v1/rerank"
INVALID = "invalid_request"
BIG = b'{"query": "q", "documents": ["' + b"a" * BODY_LIMIT + b'"]}'
#: name -> (path, raw body, expected status, expected code, expected param, words the message must hold)
BAD_INPUTS: dict[str, tuple[str, bytes, int, str, str, str]] = {
    "empty query": (V1, b'{"query": "", "documents": ["a"]}', 422, INVALID, "query", "must not be empty"),
    "whitespace query": (
        V1,
        b'{"query": " \\n", "documents": ["a"]}',
        422,
        INVALID,
        "query",
        "must not be empty",
    ),
    "missing query": ("/v2/rerank", b'{"documents": ["a"]}', 422, INVALID, "query", "Field required"),
    "no documents": (V1, b'{"query": "q", "documents": []}', 422, INVALID, "documents", "at least 1"),
    "missing documents": (V1, b'{"query": "q"}', 422, INVALID, "documents", "Field required"),
    "number as document": (
        V1,
        b'{"query": "q", "documents": ["a", 4]}',
        422,
        INVALID,
        "documents.1",
        "a number",
    ),
    "null as document": (V1, b'{"query": "q", "documents": [null]}', 422, INVALID, "documents.0", "got null"),
    "object without text": (
        V1,
        b'{"query": "q", "documents": [{"t": 1}]}',
        422,
        INVALID,
        "documents.0",
        "`text`",
    ),
    "number as tei text": ("/rerank", b'{"query": "q", "texts": [1.5]}', 422, INVALID, "texts.0", "string"),
    "zero top_n": (
        V1,
        b'{"query": "q", "documents": ["a"], "top_n": 0}',
        422,
        INVALID,
        "top_n",
        "equal to 1",
    ),
    "negative top_n": (
        V1,
        b'{"query": "q", "documents": ["a"], "top_n": -3}',
        422,
        INVALID,
        "top_n",
        "equal to 1",
    ),
    "absurd top_n": (
        V1,
        b'{"query": "q", "documents": ["a"], "top_n": "all"}',
        422,
        INVALID,
        "top_n",
        "integer",
    ),
    "invalid json": (V1, b'{"query": "q", "documents": ["a",', 400, "invalid_body", "body", "not valid JSON"),
    "json that is a list": ("/rerank", b'["q", "a"]', 422, INVALID, "body", "object"),
    "invalid utf-8": (
        V1,
        b'{"query": "q\xff\xfe", "documents": ["a"]}',
        400,
        "invalid_body",
        "body",
        "UTF-8",
    ),
    "lone surrogate": (
        V1,
        b'{"query": "q", "documents": ["\\ud800"]}',
        422,
        INVALID,
        "documents.0",
        "surrogate",
    ),
    "body over the limit": (V1, BIG, 413, "body_too_large", "body", "4096-byte limit"),
}


@pytest.fixture
async def small_body_client(
    settings_factory: Callable[..., Settings], engine: Engine
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(
        create_app(settings_factory(max_request_bytes=BODY_LIMIT), engine=engine)
    ) as client:
        yield client


async def assert_still_serving(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/rerank", json=VALID)
    assert response.status_code == 200
    assert len(response.json()["results"]) == 2


@pytest.mark.parametrize("case", BAD_INPUTS)
async def test_bad_input_gets_its_4xx_naming_the_problem(
    small_body_client: httpx.AsyncClient, case: str
) -> None:
    path, body, status, code, param, words = BAD_INPUTS[case]
    response = await small_body_client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json() == {
        "error": {"code": code, "message": response.json()["error"]["message"], "param": param}
    }
    assert words in response.json()["error"]["message"]
    await assert_still_serving(small_body_client)


async def test_a_chunked_body_over_the_limit_is_refused_while_streaming(
    small_body_client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "q", "documents": ["'
        for _ in range(10):
            yield b"a" * 1000
        yield b'"]}'

    response = await small_body_client.post(
        "/v1/rerank", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    await assert_still_serving(small_body_client)


async def test_unknown_routes_answer_in_the_same_envelope(client: httpx.AsyncClient) -> None:
    response = await client.post("/v3/rerank", json=VALID)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_wrong_method_answers_in_the_same_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/rerank")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_a_wrong_method_says_which_one_the_route_takes(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/rerank")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/rerank", {"query": "q", "texts": ["a"], "raw_scores": 0}, "raw_scores"),
        ("/rerank", {"query": "q", "texts": ["a"], "truncate": "yes"}, "truncate"),
        ("/v1/rerank", {"query": "q", "documents": ["a"], "return_documents": 1}, "return_documents"),
    ],
)
async def test_booleans_are_booleans_as_the_schema_says(
    client: httpx.AsyncClient, path: str, body: dict, field: str
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == field
    assert "boolean" in response.json()["error"]["message"]


def test_the_published_schema_states_the_query_whitespace_rule() -> None:
    import re

    from reranker_server.schemas import RerankRequest

    query = RerankRequest.model_json_schema()["properties"]["query"]
    assert re.search(query["pattern"], "   ") is None
    assert re.search(query["pattern"], " what is k? ")
