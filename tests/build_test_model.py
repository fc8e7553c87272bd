"""Build the shared test model into a directory, for a machine that cannot export it itself.

Usage: `python -m tests.build_test_model DIR`, then `KUBE_RERANKER_TEST_MODEL=DIR pytest ...` there.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import build_test_model

if __name__ == "__main__":
    print(build_test_model(Path(sys.argv[1])))
