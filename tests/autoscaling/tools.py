"""The real Prometheus binaries the autoscaling tests drive: missing ones fail with the install hint."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

INSTALL_HINT: Final = (
    "run `bash scripts/install-tools.sh` (or `make tools`), which installs the Debian package prometheus"
)


def binary(name: str) -> str:
    """The path of `prometheus` or `promtool`; never skips: a missing binary fails the test."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: {INSTALL_HINT}", pytrace=False)
    return path


def write_rule_file(prometheus_rule: dict[str, Any], path: Path) -> Path:
    """A PrometheusRule's groups as the rule file the Prometheus Operator hands to Prometheus."""
    path.write_text(yaml.safe_dump({"groups": prometheus_rule["spec"]["groups"]}, sort_keys=False))
    return path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )
