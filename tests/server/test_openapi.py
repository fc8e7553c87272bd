"""The API's shape is a contract: the committed docs/openapi.json must match what the app serves."""

from __future__ import annotations

import json
from pathlib import Path

from reranker_server.openapi import openapi_document, render

SNAPSHOT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_openapi_snapshot_matches_the_app() -> None:
    assert SNAPSHOT.read_text() == render(), "API changed: run `make openapi`, review docs/openapi.json"


def test_every_route_is_documented_with_an_operation_id_and_error_responses() -> None:
    paths = openapi_document()["paths"]
    assert set(paths) == {"/rerank", "/v1/rerank", "/v2/rerank", "/health", "/ready", "/info", "/metrics"}
    for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
        operation = paths[path]["post"]
        assert operation["operationId"]
        assert {"200", "400", "413", "422", "429", "503"} <= set(operation["responses"])
        assert "Example" in operation["description"]


def test_snapshot_is_valid_json_with_the_request_schemas() -> None:
    schemas = json.loads(SNAPSHOT.read_text())["components"]["schemas"]
    assert {"TEIRerankRequest", "RerankRequest", "RerankResponse"} <= set(schemas)
