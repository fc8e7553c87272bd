"""Chart tests drive the real helm binary: without it they fail with the install hint, never skip."""

from __future__ import annotations

import os

import pytest

from tests.chart.rendering import HELM, INSTALL_HINT


@pytest.fixture(autouse=True, scope="session")
def _helm_installed() -> None:
    if not (HELM.is_file() and os.access(HELM, os.X_OK)):
        pytest.fail(f"{HELM} not found. {INSTALL_HINT}", pytrace=False)
