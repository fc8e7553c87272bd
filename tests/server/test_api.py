"""The HTTP API in the shapes clients send: TEI's /rerank, Cohere/Jina/Infinity's /v1 and /v2, the k cap."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from reranker_server.api import RECEIVED_HEADER, SCORED_HEADER, create_app
from reranker_server.config import Settings
from reranker_server.engine import Engine, sigmoid
from reranker_server.schemas import RerankResponse, TEIRerankResponse

from tests.conftest import Reference
from tests.server.conftest import TEST_K_CAP, engine_logits, running_app
from tests.server.texts import QUERY, passages

DOCUMENTS = passages(8, max_words=60, seed=11)


async def test_tei_rerank_returns_every_text_sorted_by_score(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    response = await client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS})
    assert response.status_code == 200
    results = TEIRerankResponse.model_validate(response.json()).root
    expected = sigmoid(engine_logits(engine, QUERY, DOCUMENTS))
    assert [r.index for r in results] == np.argsort(-expected, kind="stable").tolist()
    assert [r.score for r in results] == pytest.approx(sorted(expected, reverse=True), abs=1e-6)
    assert all(r.text is None for r in results)


async def test_tei_raw_scores_are_the_logits_behind_the_probabilities(client: httpx.AsyncClient) -> None:
    probabilities = (await client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS})).json()
    raw = (await client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "raw_scores": True})).json()
    by_index = {r["index"]: r["score"] for r in raw}
    for result in probabilities:
        assert result["score"] == pytest.approx(float(sigmoid(np.array(by_index[result["index"]]))), abs=1e-6)


async def test_tei_echoes_each_text_when_asked(client: httpx.AsyncClient) -> None:
    response = await client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "return_text": True})
    assert all(r["text"] == DOCUMENTS[r["index"]] for r in response.json())


async def test_http_scores_equal_eager_pytorch(client: httpx.AsyncClient, torch_reference: Reference) -> None:
    response = await client.post("/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS})
    reference = sigmoid(torch_reference(QUERY, DOCUMENTS, 128))
    results = response.json()["results"]
    assert [r["index"] for r in results] == np.argsort(-reference, kind="stable").tolist()
    for result in results:
        assert result["relevance_score"] == pytest.approx(float(reference[result["index"]]), abs=1e-4)


async def test_cohere_documents_may_be_strings_or_text_objects(client: httpx.AsyncClient) -> None:
    as_strings = await client.post("/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS})
    as_objects = await client.post(
        "/v1/rerank", json={"query": QUERY, "documents": [{"text": d, "title": "ignored"} for d in DOCUMENTS]}
    )
    assert [r["relevance_score"] for r in as_strings.json()["results"]] == [
        r["relevance_score"] for r in as_objects.json()["results"]
    ]


async def test_top_n_returns_only_the_best_n(client: httpx.AsyncClient) -> None:
    everything = (await client.post("/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS})).json()[
        "results"
    ]
    best = (await client.post("/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS, "top_n": 3})).json()
    assert best["results"] == everything[:3]


async def test_top_n_beyond_the_documents_returns_them_all(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS[:2], "top_n": 50})
    assert len(response.json()["results"]) == 2


async def test_documents_are_echoed_only_when_asked(client: httpx.AsyncClient) -> None:
    plain = (await client.post("/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS})).json()
    echoed = (
        await client.post(
            "/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS, "return_documents": True}
        )
    ).json()
    assert all("document" not in r for r in plain["results"])
    assert all(r["document"] == {"text": DOCUMENTS[r["index"]]} for r in echoed["results"])


async def test_cohere_response_carries_id_meta_and_token_usage(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    response = await client.post("/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS})
    body = RerankResponse.model_validate(response.json())
    tokens = engine.encode(QUERY, DOCUMENTS).total_tokens
    assert body.id
    assert body.meta.api_version.version == "1"
    assert body.meta.billed_units.search_units == 1
    assert body.meta.tokens.input_tokens == body.usage.total_tokens == tokens


async def test_v2_max_tokens_per_doc_scores_each_document_cut_short(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    response = await client.post(
        "/v2/rerank",
        json={"query": QUERY, "documents": DOCUMENTS, "max_tokens_per_doc": 5, "raw_scores": True},
    )
    expected = engine_logits(engine, QUERY, engine.cut_documents(DOCUMENTS, 5))
    for result in response.json()["results"]:
        assert result["relevance_score"] == pytest.approx(float(expected[result["index"]]), abs=1e-5)


def _cohere_results(body: dict[str, Any]) -> list[tuple[int, float]]:
    return [(r["index"], r["relevance_score"]) for r in body["results"]]


def _tei_results(body: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(r["index"], r["score"]) for r in body]


#: Request bodies exactly as popular clients send them, and how each client reads the answer.
CLIENTS = {
    # cohere SDK v5 Client.rerank (LangChain CohereRerank, LlamaIndex CohereRerank): None fields dropped.
    "cohere-v1-sdk": (
        "/v1/rerank",
        {"model": "rerank-english-v3.0", "query": QUERY, "documents": DOCUMENTS, "top_n": 3},
    ),
    # cohere SDK v5 ClientV2.rerank.
    "cohere-v2-sdk": (
        "/v2/rerank",
        {
            "model": "rerank-v3.5",
            "query": QUERY,
            "documents": DOCUMENTS,
            "top_n": 3,
            "max_tokens_per_doc": 4096,
        },
    ),
    # LangChain JinaRerank / LlamaIndex JinaRerank.
    "jina": (
        "/v1/rerank",
        {"query": QUERY, "documents": DOCUMENTS, "model": "jina-reranker-v2-base-multilingual", "top_n": 3},
    ),
    # Infinity's client (documents, raw_scores, return_documents).
    "infinity": (
        "/v1/rerank",
        {
            "query": QUERY,
            "documents": DOCUMENTS,
            "return_documents": False,
            "raw_scores": False,
            "model": "m",
            "top_n": 3,
        },
    ),
    # text-embeddings-inference's documented body, every field set.
    "tei": (
        "/rerank",
        {
            "query": QUERY,
            "texts": DOCUMENTS,
            "raw_scores": False,
            "return_text": False,
            "truncate": True,
            "truncation_direction": "Right",
        },
    ),
}


@pytest.mark.parametrize("client_name", CLIENTS)
async def test_client_request_shapes_are_understood(client: httpx.AsyncClient, client_name: str) -> None:
    path, body = CLIENTS[client_name]
    response = await client.post(path, json=body)
    assert response.status_code == 200, response.text
    results = _tei_results(response.json()) if path == "/rerank" else _cohere_results(response.json())
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True)
    assert len(results) == (len(DOCUMENTS) if path == "/rerank" else 3)
    assert all(0 <= index < len(DOCUMENTS) for index, _ in results)


async def test_k_cap_itself_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/rerank", json={"query": QUERY, "documents": passages(TEST_K_CAP, max_words=10)}
    )
    assert response.status_code == 200
    assert len(response.json()["results"]) == TEST_K_CAP


@pytest.mark.parametrize(("path", "field"), [("/v1/rerank", "documents"), ("/rerank", "texts")])
async def test_one_over_the_k_cap_is_refused_naming_the_cap_and_the_count(
    client: httpx.AsyncClient, path: str, field: str
) -> None:
    response = await client.post(path, json={"query": QUERY, field: passages(TEST_K_CAP + 1, max_words=10)})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "k_cap_exceeded"
    assert error["param"] == field
    assert f"{TEST_K_CAP + 1} documents exceed the k cap of {TEST_K_CAP}" in error["message"]


async def test_truncate_policy_scores_the_first_k_and_says_so(
    settings_factory: Callable[..., Settings], engine: Engine
) -> None:
    documents = passages(TEST_K_CAP + 5, max_words=20)
    app = create_app(settings_factory(k_cap_policy="truncate"), engine=engine)
    async with running_app(app) as client:
        response = await client.post("/v1/rerank", json={"query": QUERY, "documents": documents})
    assert response.status_code == 200
    assert response.headers[RECEIVED_HEADER] == str(TEST_K_CAP + 5)
    assert response.headers[SCORED_HEADER] == str(TEST_K_CAP)
    assert sorted(r["index"] for r in response.json()["results"]) == list(range(TEST_K_CAP))


async def test_fifty_concurrent_requests_each_get_exactly_their_own_results(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    requests = [passages(1 + i % TEST_K_CAP, max_words=80, seed=100 + i) for i in range(50)]
    responses = await asyncio.gather(
        *(
            client.post("/rerank", json={"query": QUERY, "texts": docs, "raw_scores": True})
            for docs in requests
        )
    )
    for documents, response in zip(requests, responses, strict=True):
        assert response.status_code == 200
        expected = engine_logits(engine, QUERY, documents)
        got = {r["index"]: r["score"] for r in response.json()}
        assert sorted(got) == list(range(len(documents)))
        np.testing.assert_allclose([got[i] for i in range(len(documents))], expected, atol=1e-5)


async def test_tei_left_truncation_scores_the_end_of_a_long_passage(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    """truncation_direction Left keeps a long passage's last tokens; Right (the default) its first."""
    from tokenizers import Tokenizer

    long_passage = " ".join(passages(3, max_words=200, seed=31))
    plain = Tokenizer.from_file(str(engine.files.tokenizer))
    plain.no_truncation()
    room = engine.max_length - len(plain.encode(QUERY, add_special_tokens=False).ids) - engine.special_tokens
    offsets = plain.encode(long_passage, add_special_tokens=False).offsets
    head, tail = long_passage[: offsets[room - 1][1]], long_passage[offsets[-room][0] :]
    body = {"query": QUERY, "texts": [long_passage], "raw_scores": True}
    right = (await client.post("/rerank", json=body)).json()[0]["score"]
    left = (await client.post("/rerank", json={**body, "truncation_direction": "Left"})).json()[0]["score"]
    assert right == pytest.approx(float(engine_logits(engine, QUERY, [head])[0]), abs=1e-4)
    assert left == pytest.approx(float(engine_logits(engine, QUERY, [tail])[0]), abs=1e-4)
    assert left != pytest.approx(right, abs=1e-4)


INFINITY = {"query": QUERY, "documents": DOCUMENTS, "return_documents": True, "top_n": 3, "model": "m"}


async def test_slash_rerank_speaks_infinity_when_the_body_carries_documents(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    response = await client.post("/rerank", json=INFINITY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "rerank"
    assert isinstance(body["created"], int)
    assert body["id"].startswith("rerank-")
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] > 0
    expected = sigmoid(engine_logits(engine, QUERY, DOCUMENTS))
    best = np.argsort(-expected, kind="stable")[:3].tolist()
    assert [item["index"] for item in body["results"]] == best
    for item in body["results"]:
        assert item["relevance_score"] == pytest.approx(float(expected[item["index"]]), abs=1e-5)
        assert item["document"] == DOCUMENTS[item["index"]], "Infinity's document is the string itself"


async def test_a_body_with_neither_texts_nor_documents_hears_about_tei_fields(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/rerank", json={"query": QUERY})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == "texts"
    assert "tei" not in error["message"]
    invalid = await client.post("/rerank", json={"query": QUERY, "documents": [], "raw_scores": 0})
    assert invalid.json()["error"]["param"] == "documents"


async def test_cohere_rank_fields_rank_object_documents_on_the_named_fields_in_order(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    documents = [
        {"title": "Readiness", "text": "A pod is ready when its probe succeeds.", "id": 7},
        {"title": "Fruit", "text": "Bananas are yellow."},
        "a plain string ranks as it is",
    ]
    body = {
        "query": QUERY,
        "documents": documents,
        "rank_fields": ["title", "text"],
        "return_documents": True,
    }
    response = await client.post("/v1/rerank", json=body)
    assert response.status_code == 200, response.text
    ranked_on = [
        "title: Readiness\ntext: A pod is ready when its probe succeeds.",
        "title: Fruit\ntext: Bananas are yellow.",
        "a plain string ranks as it is",
    ]
    expected = sigmoid(engine_logits(engine, QUERY, ranked_on))
    for item in response.json()["results"]:
        assert item["relevance_score"] == pytest.approx(float(expected[item["index"]]), abs=1e-5)
        assert item["document"]["text"] == ranked_on[item["index"]]


async def test_without_rank_fields_object_documents_rank_on_text(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    body = {"query": QUERY, "documents": [{"title": "ignored", "text": "Bananas are yellow."}]}
    score = (await client.post("/v1/rerank", json=body)).json()["results"][0]["relevance_score"]
    assert score == pytest.approx(
        float(sigmoid(engine_logits(engine, QUERY, ["Bananas are yellow."]))[0]), abs=1e-5
    )


async def test_an_object_document_with_none_of_the_rank_fields_is_named(client: httpx.AsyncClient) -> None:
    body = {"query": QUERY, "documents": [{"body": "x"}], "rank_fields": ["title"]}
    response = await client.post("/v1/rerank", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "documents.0"
