"""Build the shared test model into a directory, for a machine that cannot export it itself.

Usage: `python -m tests.build_test_model DIR`, then `KUBE_RERANKER_TEST_MODEL=DIR pytest ...` there.
"""

from __future__ import annotations

import sys
from pathlib import Path

from reranker_server.testmodel import ModelShape, make_test_model

from tests.conftest import TEST_MODEL_HIDDEN, TEST_MODEL_LAYERS, TEST_MODEL_SEED

if __name__ == "__main__":
    shape = ModelShape(layers=TEST_MODEL_LAYERS, hidden=TEST_MODEL_HIDDEN, seed=TEST_MODEL_SEED)
    print(make_test_model(Path(sys.argv[1]), shape))
