"""The settings contract: flag and env names, defaults, precedence and errors an operator can act on."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from reranker_server.config import OPTIONS, Settings, SettingsError, add_options, settings_from

#: The team's settings table (BRIEF.md), verbatim: the operator renders these env vars into pods.
CONTRACT = {
    "--host": ("RERANKER_HOST", "0.0.0.0"),
    "--port": ("RERANKER_PORT", 8080),
    "--metrics-port": ("RERANKER_METRICS_PORT", 9090),
    "--model": ("RERANKER_MODEL", None),
    "--revision": ("RERANKER_REVISION", "main"),
    "--cache-dir": ("RERANKER_CACHE_DIR", Path("~/.cache/kube-reranker").expanduser()),
    "--artefact": ("RERANKER_ARTEFACT", None),
    "--termination-log": ("RERANKER_TERMINATION_LOG", None),
    "--quantize": ("RERANKER_QUANTIZE", "none"),
    "--max-length": ("RERANKER_MAX_LENGTH", 512),
    "--backend": ("RERANKER_BACKEND", "cpu"),
    "--max-candidates": ("RERANKER_MAX_CANDIDATES", 100),
    "--k-cap-policy": ("RERANKER_K_CAP_POLICY", "reject"),
    "--max-batch-tokens": ("RERANKER_MAX_BATCH_TOKENS", 0),
    "--max-batch-wait-ms": ("RERANKER_MAX_BATCH_WAIT_MS", 5),
    "--latency-slo-ms": ("RERANKER_LATENCY_SLO_MS", 500),
    "--request-timeout-ms": ("RERANKER_REQUEST_TIMEOUT_MS", 0),
    "--warmup-requests": ("RERANKER_WARMUP_REQUESTS", 3),
    "--intra-op-threads": ("RERANKER_INTRA_OP_THREADS", 0),
    "--drain-timeout-s": ("RERANKER_DRAIN_TIMEOUT_S", 20),
    "--max-request-bytes": ("RERANKER_MAX_REQUEST_BYTES", 2097152),
    "--log-format": ("RERANKER_LOG_FORMAT", "text"),
    "--log-level": ("RERANKER_LOG_LEVEL", "info"),
    "--api-keys-file": ("RERANKER_API_KEYS_FILE", None),
}


def parse(argv: list[str], env: dict[str, str]) -> Settings:
    parser = argparse.ArgumentParser()
    add_options(parser)
    return settings_from(vars(parser.parse_args(argv)), env)


def test_every_contract_flag_has_its_env_var() -> None:
    assert {option.flag: option.env for option in OPTIONS} == {
        flag: env for flag, (env, _) in CONTRACT.items()
    }


def test_defaults_are_the_contract_defaults() -> None:
    settings = parse([], {"RERANKER_MODEL": "m"})
    for option in OPTIONS:
        expected = CONTRACT[option.flag][1]
        if expected is not None:
            assert getattr(settings, option.field) == expected, option.flag


def test_each_env_var_sets_its_setting() -> None:
    env = {
        "RERANKER_HOST": "127.0.0.1",
        "RERANKER_PORT": "8000",
        "RERANKER_METRICS_PORT": "0",
        "RERANKER_MODEL": "/models/x",
        "RERANKER_REVISION": "v2",
        "RERANKER_CACHE_DIR": "/cache",
        "RERANKER_ARTEFACT": "/cache/artefacts/x",
        "RERANKER_TERMINATION_LOG": "/dev/termination-log",
        "RERANKER_QUANTIZE": "int8",
        "RERANKER_MAX_LENGTH": "256",
        "RERANKER_BACKEND": "cpu",
        "RERANKER_MAX_CANDIDATES": "40",
        "RERANKER_K_CAP_POLICY": "truncate",
        "RERANKER_MAX_BATCH_TOKENS": "8192",
        "RERANKER_MAX_BATCH_WAIT_MS": "2.5",
        "RERANKER_LATENCY_SLO_MS": "300",
        "RERANKER_REQUEST_TIMEOUT_MS": "900",
        "RERANKER_WARMUP_REQUESTS": "1",
        "RERANKER_INTRA_OP_THREADS": "3",
        "RERANKER_DRAIN_TIMEOUT_S": "7",
        "RERANKER_MAX_REQUEST_BYTES": "65536",
        "RERANKER_API_KEYS_FILE": "/etc/kube-reranker/api-keys/api-keys",
        "RERANKER_LOG_FORMAT": "json",
        "RERANKER_LOG_LEVEL": "debug",
    }
    settings = parse([], env)
    assert settings.model_dump(exclude={"hub_offline"}) == {
        "host": "127.0.0.1",
        "port": 8000,
        "metrics_port": 0,
        "model": "/models/x",
        "revision": "v2",
        "cache_dir": Path("/cache"),
        "artefact": Path("/cache/artefacts/x"),
        "termination_log": Path("/dev/termination-log"),
        "quantize": "int8",
        "max_length": 256,
        "backend": "cpu",
        "max_candidates": 40,
        "k_cap_policy": "truncate",
        "max_batch_tokens": 8192,
        "max_batch_wait_ms": 2.5,
        "latency_slo_ms": 300,
        "request_timeout_ms": 900,
        "warmup_requests": 1,
        "intra_op_threads": 3,
        "drain_timeout_s": 7,
        "max_request_bytes": 65536,
        "log_format": "json",
        "log_level": "debug",
        "api_keys_file": Path("/etc/kube-reranker/api-keys/api-keys"),
    }


def test_a_flag_wins_over_its_env_var() -> None:
    settings = parse(
        ["--port", "9000", "--model", "cli-model"], {"RERANKER_PORT": "8000", "RERANKER_MODEL": "env"}
    )
    assert (settings.port, settings.model) == (9000, "cli-model")


def test_missing_model_names_the_flag_and_the_env_var() -> None:
    with pytest.raises(SettingsError, match=r"--model / RERANKER_MODEL"):
        parse([], {})


def test_invalid_value_names_flag_env_and_value() -> None:
    with pytest.raises(SettingsError, match=r"--quantize / RERANKER_QUANTIZE.*'int4'"):
        parse([], {"RERANKER_MODEL": "m", "RERANKER_QUANTIZE": "int4"})


def test_request_timeout_defaults_to_four_times_the_slo() -> None:
    assert parse(
        [], {"RERANKER_MODEL": "m", "RERANKER_LATENCY_SLO_MS": "300"}
    ).request_timeout_s == pytest.approx(1.2)


def test_explicit_request_timeout_wins_over_the_slo() -> None:
    settings = parse(["--request-timeout-ms", "750"], {"RERANKER_MODEL": "m"})
    assert settings.request_timeout_s == pytest.approx(0.75)


@pytest.mark.parametrize(("backend", "budget"), [("cpu", 1024), ("gpu", 32768)])
def test_an_unset_batch_budget_is_the_backends_default(backend: str, budget: int) -> None:
    assert parse(["--backend", backend], {"RERANKER_MODEL": "m"}).batch_tokens == budget


def test_an_explicit_batch_budget_wins_even_below_one_full_pair() -> None:
    settings = parse(["--max-batch-tokens", "256", "--max-length", "512"], {"RERANKER_MODEL": "m"})
    assert settings.batch_tokens == 256


def test_int8_on_the_gpu_backend_is_refused() -> None:
    with pytest.raises(
        SettingsError, match="quantize int8 is dynamic CPU quantisation; use quantize none or fp16"
    ):
        parse(["--backend", "gpu", "--quantize", "int8"], {"RERANKER_MODEL": "m"})


def test_hugging_face_offline_switch_is_read_at_the_edge() -> None:
    assert parse([], {"RERANKER_MODEL": "m", "HF_HUB_OFFLINE": "1"}).hub_offline
    assert not parse([], {"RERANKER_MODEL": "m"}).hub_offline


def test_admission_is_budgeted_by_the_slo_unless_the_deadline_is_shorter() -> None:
    env = {"RERANKER_MODEL": "m", "RERANKER_LATENCY_SLO_MS": "300"}
    assert parse([], env).admission_budget_s == pytest.approx(0.3)
    assert parse([], env | {"RERANKER_REQUEST_TIMEOUT_MS": "200"}).admission_budget_s == pytest.approx(0.2)
    assert parse([], env | {"RERANKER_REQUEST_TIMEOUT_MS": "900"}).admission_budget_s == pytest.approx(0.3)
