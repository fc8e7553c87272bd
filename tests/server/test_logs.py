"""What an operator reads in the server's log: our lines, other libraries' warnings, not their chatter."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.server.process import BIN


def int8_export(model_dir: Path, cache: Path, *level: str) -> str:
    """`reranker-server export --quantize int8` (fusion, smoothing, quantisation): its whole log."""
    done = subprocess.run(
        [
            BIN / "reranker-server",
            "export",
            "--model",
            str(model_dir),
            "--quantize",
            "int8",
            "--cache-dir",
            str(cache),
            *level,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


@pytest.mark.timeout(300)
def test_an_int8_preparation_logs_its_own_steps_and_not_the_optimizer_or_quantizer(
    test_model_dir: Path, tmp_path: Path
) -> None:
    log = int8_export(test_model_dir, tmp_path / "cache")
    assert "reranker_server.preparation.fusion: fused" in log
    assert "smoothed" in log
    assert "fusion_base" not in log
    assert "get_tensor_type" not in log
    assert "Please consider to run pre-processing" not in log
    assert len(log.splitlines()) <= 8, log


@pytest.mark.timeout(300)
def test_log_level_debug_shows_the_optimizer_and_quantizer_lines(
    test_model_dir: Path, tmp_path: Path
) -> None:
    log = int8_export(test_model_dir, tmp_path / "cache", "--log-level", "debug")
    assert "fusion_base: Fused Attention" in log
    assert "get_tensor_type" in log


def test_an_unknown_log_level_is_refused_with_the_choices(tmp_path: Path) -> None:
    done = subprocess.run(
        [BIN / "reranker-server", "export", "--model", "m", "--log-level", "chatty"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode != 0
    assert "--log-level / RERANKER_LOG_LEVEL" in done.stderr
    assert "'debug', 'info', 'warning' or 'error'" in done.stderr
