"""API keys (--api-keys-file): the rerank routes need `Authorization: Bearer <key>`; probes stay open."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import cohere
import httpx
import pytest
from langchain_cohere import CohereRerank
from langchain_core.documents import Document
from reranker_server.api import create_app
from reranker_server.auth import RECHECK_S, ApiKeyError, KeyFile
from reranker_server.config import Settings
from reranker_server.engine import Engine

from tests.server.conftest import running_app
from tests.server.process import BIN, ServerProcess
from tests.server.test_process import pod_env
from tests.server.texts import QUERY, passages

KEY = "rk-test-4f6a0c1e9b2d"
OTHER_KEY = "rk-test-second-7d1e"
DOCUMENTS = passages(4, max_words=30, seed=5)
COHERE_BODY = {"query": QUERY, "documents": DOCUMENTS}


def key_file(tmp_path: Path, *keys: str, name: str = "api-keys") -> Path:
    path = tmp_path / name
    path.write_text("# keys of the search team\n" + "".join(f"{key}\n" for key in keys))
    return path


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def keyed(
    settings_factory: Callable[..., Settings], engine: Engine, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_factory(api_keys_file=key_file(tmp_path, KEY, OTHER_KEY))
    async with running_app(create_app(settings, engine=engine)) as client:
        yield client


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
async def test_a_rerank_request_without_a_key_is_refused_with_401_and_the_error_envelope(
    keyed: httpx.AsyncClient, path: str
) -> None:
    response = await keyed.post(path, json=COHERE_BODY)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert "Authorization: Bearer" in error["message"]


async def test_a_wrong_key_is_refused_and_each_listed_key_is_accepted(keyed: httpx.AsyncClient) -> None:
    wrong = await keyed.post("/v1/rerank", json=COHERE_BODY, headers=bearer(KEY + "x"))
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "the API key is not valid"
    for key in (KEY, OTHER_KEY):
        assert (await keyed.post("/v1/rerank", json=COHERE_BODY, headers=bearer(key))).status_code == 200


async def test_the_tei_route_and_info_need_the_key_too(keyed: httpx.AsyncClient) -> None:
    tei = {"query": QUERY, "texts": DOCUMENTS}
    assert (await keyed.post("/rerank", json=tei)).status_code == 401
    assert (await keyed.get("/info")).status_code == 401
    assert (await keyed.post("/rerank", json=tei, headers=bearer(KEY))).status_code == 200
    assert (await keyed.get("/info", headers=bearer(KEY))).status_code == 200


async def test_probes_and_metrics_stay_open_without_a_key(keyed: httpx.AsyncClient) -> None:
    for path in ("/health", "/ready", "/metrics"):
        assert (await keyed.get(path)).status_code == 200, path


async def test_refusals_are_counted_and_never_log_the_key(
    keyed: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await keyed.post("/v1/rerank", json=COHERE_BODY, headers=bearer("leaked-guess-123"))
    await keyed.post("/v1/rerank", json=COHERE_BODY, headers=bearer(KEY))
    metrics = (await keyed.get("/metrics")).text
    assert 'reranker_rejections_total{reason="unauthorized"} 1.0' in metrics
    assert 'reranker_requests_total{code="401",endpoint="/v1/rerank"} 1.0' in metrics
    assert "leaked-guess-123" not in caplog.text
    assert KEY not in caplog.text


async def test_a_request_without_a_key_is_refused_before_its_body_is_read(keyed: httpx.AsyncClient) -> None:
    response = await keyed.post("/v1/rerank", content=b"\xff not json", headers={"Content-Type": "x"})
    assert response.status_code == 401


async def test_without_a_key_file_the_server_is_open(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/rerank", json=COHERE_BODY)).status_code == 200


def test_a_rotated_key_file_is_picked_up_and_an_emptied_one_revokes_every_key(tmp_path: Path) -> None:
    now = [0.0]
    path = key_file(tmp_path, KEY)
    keys = KeyFile(path, clock=lambda: now[0])
    path.write_text(f"{OTHER_KEY}\n")
    os.utime(path, ns=(1, 1))
    assert keys.current().allows(KEY), "re-read at most every RECHECK_S"
    now[0] += RECHECK_S
    assert keys.current().allows(OTHER_KEY)
    assert not keys.current().allows(KEY)
    path.write_text("\n")
    now[0] += RECHECK_S
    assert not keys.current().allows(OTHER_KEY), "emptying the Secret revokes the keys: fail closed"
    assert "holds no API key" in (keys.current().problem or "")
    path.unlink()
    now[0] += RECHECK_S
    assert keys.current().problem is not None
    key_file(tmp_path, KEY)
    now[0] += RECHECK_S
    assert keys.current().allows(KEY), "keys again once the file holds some"


async def test_after_its_keys_are_revoked_the_server_refuses_every_request_saying_why(
    settings_factory: Callable[..., Settings], engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = key_file(tmp_path, KEY)
    app = create_app(settings_factory(api_keys_file=path), engine=engine)
    async with running_app(app) as client:
        assert (await client.post("/v1/rerank", json=COHERE_BODY, headers=bearer(KEY))).status_code == 200
        path.write_text("")
        monkeypatch.setattr("reranker_server.auth.RECHECK_S", 0.0)
        refused = await client.post("/v1/rerank", json=COHERE_BODY, headers=bearer(KEY))
    assert refused.status_code == 401
    assert "holds no valid API keys" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [("", "holds no API key"), ("# only a comment\n\n", "holds no API key"), ("two words\n", "whitespace")],
)
def test_an_unusable_key_file_is_refused(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "api-keys"
    path.write_text(content)
    with pytest.raises(ApiKeyError, match=expected):
        KeyFile(path)


def test_a_missing_key_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ApiKeyError, match=r"cannot read the API key file .*absent: No such file"):
        KeyFile(tmp_path / "absent")


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("content", [None, ""], ids=["missing", "empty"])
def test_serve_with_an_unusable_key_file_exits_with_one_line_and_writes_the_termination_log(
    test_model_dir: Path, tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "api-keys"
    if content is not None:
        path.write_text(content)
    termination_log = tmp_path / "termination-log"
    env = pod_env(
        test_model_dir,
        tmp_path / "cache",
        RERANKER_API_KEYS_FILE=str(path),
        RERANKER_TERMINATION_LOG=str(termination_log),
        PATH=str(BIN),
    )
    result = subprocess.run(
        [BIN / "reranker-server", "serve"], env=env, capture_output=True, text=True, check=False, timeout=50
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reranker-server: --api-keys-file / RERANKER_API_KEYS_FILE:")
    assert termination_log.read_text().startswith("ApiKeysUnusable: ")


@pytest.fixture(scope="module")
def keyed_server(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("keyed")
    env = pod_env(test_model_dir, tmp / "cache", RERANKER_API_KEYS_FILE=str(key_file(tmp, KEY)))
    with ServerProcess(env, tmp / "server.log") as process:
        process.wait_ready()
        yield process


@pytest.mark.slow
def test_the_cohere_sdk_with_a_key_works_unchanged(keyed_server: ServerProcess) -> None:
    client = cohere.ClientV2(api_key=KEY, base_url=keyed_server.base)
    ranked = client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCUMENTS, top_n=2)
    assert len(ranked.results) == 2
    assert ranked.results[0].relevance_score >= ranked.results[1].relevance_score
    with pytest.raises(cohere.UnauthorizedError):
        cohere.ClientV2(api_key="not-a-key", base_url=keyed_server.base).rerank(
            model="rerank-v3.5", query=QUERY, documents=DOCUMENTS
        )


@pytest.mark.slow
def test_langchain_cohere_with_a_key_compresses_documents(keyed_server: ServerProcess) -> None:
    reranker = CohereRerank(cohere_api_key=KEY, base_url=keyed_server.base, model="rerank-v3.5", top_n=2)
    kept = reranker.compress_documents([Document(page_content=text) for text in DOCUMENTS], QUERY)
    assert len(kept) == 2
    assert all("relevance_score" in document.metadata for document in kept)


@pytest.mark.slow
def test_a_tei_shaped_client_with_a_key_gets_its_scores(keyed_server: ServerProcess) -> None:
    response = httpx.post(
        f"{keyed_server.base}/rerank",
        json={"query": QUERY, "texts": DOCUMENTS, "return_text": True},
        headers=bearer(KEY),
        timeout=30,
    )
    assert response.status_code == 200
    assert sorted(item["index"] for item in response.json()) == list(range(len(DOCUMENTS)))
    assert "Bearer <key>" not in keyed_server.log()
    assert KEY not in keyed_server.log()
