"""Infinity's own client (`infinity_client` from PyPI) against a real server process at its default URL.

infinity_client pins httpx below 0.28, which the dev set has moved past, so it gets a venv of its own:
the client runs there, as a user's application would, and talks to the server over TCP.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from tests.server.process import ServerProcess
from tests.server.test_process import pod_env
from tests.server.texts import QUERY, passages

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CLIENT_VERSION: Final = "0.0.78"
DOCUMENTS: Final = passages(5, max_words=30, seed=44)
CLIENT_SCRIPT: Final = """
import json, sys
from infinity_client import Client
from infinity_client.api.default import rerank
from infinity_client.models import ReRankResult, RerankInput

base, query, documents = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
body = RerankInput(query=query, documents=documents, return_documents=True, top_n=3)
result = rerank.sync(client=Client(base_url=base), body=body)
assert isinstance(result, ReRankResult), repr(result)
print(json.dumps({
    "object": result.object_.value,
    "results": [[item.index, item.relevance_score, item.document] for item in result.results],
    "tokens": result.usage.total_tokens,
    "model": result.model,
}))
"""


@pytest.fixture(scope="module")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("infinity-client")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin/pip"), "install", "--quiet", f"infinity_client=={CLIENT_VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def server(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("infinity-server")
    with ServerProcess(pod_env(test_model_dir, tmp / "cache"), tmp / "server.log") as process:
        process.wait_ready()
        yield process


def test_infinity_client_reranks_at_its_default_url_and_parses_the_answer(
    client_python: Path, server: ServerProcess
) -> None:
    ran = subprocess.run(
        [str(client_python), "-c", CLIENT_SCRIPT, server.base, QUERY, json.dumps(DOCUMENTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    answer = json.loads(ran.stdout)
    assert answer["object"] == "rerank"
    assert answer["tokens"] > 0
    assert len(answer["results"]) == 3
    scores = [score for _, score, _ in answer["results"]]
    assert scores == sorted(scores, reverse=True)
    for index, _, document in answer["results"]:
        assert document == DOCUMENTS[index]
