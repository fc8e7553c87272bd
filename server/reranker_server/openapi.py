"""The committed OpenAPI snapshot: `python -m reranker_server.openapi > docs/openapi.json`.

Clients are written against the API's shape; a test compares the app's schema with the snapshot,
so any change to it is deliberate and reviewed (regenerate with `make openapi`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from reranker_server.api import create_app
from reranker_server.config import Settings


def openapi_document() -> dict[str, Any]:
    """The schema of an app with default settings; building the app loads nothing."""
    return create_app(Settings(model="MODEL")).openapi()


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
