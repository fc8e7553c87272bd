"""The server's settings: one typed object built once at the edge from CLI flags and env vars.

This module is the contract with the operator, which renders the same `RERANKER_*` env vars into
every pod: flag names, env names and defaults here must match the team's settings table. Precedence
is CLI flag, then env var, then default, so a pod can be debugged by overriding one flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reranker_server.artefact import Quantization, Recipe

DEFAULT_CACHE_DIR: Final = "~/.cache/kube-reranker"
#: The request timeout, when not set, is this many times the latency SLO: a request that waited
#: that long is already a failure from the user's point of view, so queueing it longer only hurts.
TIMEOUT_PER_SLO: Final = 4
#: The token budget of one ONNX Runtime call when --max-batch-tokens is left at 0. On a CPU, calls
#: whose activations stay in the caches run fastest: per token, 1024-token calls beat 8192-token
#: calls by 7 % (MiniLM-L6 shape, fp32, 256-token pairs), 8 % (int8) and 5 % (BERT-base), and
#: the fixed cost of a call only shows below about 500 tokens. A GPU needs large calls to fill it:
#: on an H200, 32768-token calls took 0.37 us per token against 0.45 for 8192 (MiniLM-L6 shape,
#: 256-token pairs; 0.52 against 0.65 at 512 tokens; BERT-base 3-10 % faster), and larger ones
#: gained at most 6 % more (`python -m bench.gpu`, bench/results/gpu-h200.json).
DEFAULT_MAX_BATCH_TOKENS: Final = {"cpu": 1024, "gpu": 32768}


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the flag and the env var to fix."""


class Settings(BaseModel):
    """Everything `reranker-server serve` needs, validated; see the settings table in docs/server.md."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    host: str = "0.0.0.0"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    metrics_port: Annotated[int, Field(ge=0, le=65535, description="0 disables the second listener")] = 9090
    model: Annotated[str, Field(min_length=1, description="local directory or Hugging Face model id")]
    revision: Annotated[str, Field(min_length=1)] = "main"
    cache_dir: Path = Path(DEFAULT_CACHE_DIR)
    artefact: Path | None = None
    termination_log: Path | None = None
    quantize: Quantization = "none"
    max_length: Annotated[int, Field(ge=8, le=8192)] = 512
    backend: Literal["cpu", "gpu"] = "cpu"
    max_candidates: Annotated[int, Field(ge=1, le=100_000)] = 100
    k_cap_policy: Literal["reject", "truncate"] = "reject"
    max_batch_tokens: Annotated[int, Field(ge=0, description="0 = the backend's default")] = 0
    max_batch_wait_ms: Annotated[float, Field(ge=0, le=10_000)] = 5
    latency_slo_ms: Annotated[int, Field(ge=1)] = 500
    request_timeout_ms: Annotated[int, Field(ge=0, description="0 = derived from the SLO")] = 0
    warmup_requests: Annotated[int, Field(ge=0, le=1000)] = 3
    intra_op_threads: Annotated[int, Field(ge=0, le=1024, description="0 = the container's CPU quota")] = 0
    drain_timeout_s: Annotated[float, Field(ge=0)] = 20
    max_request_bytes: Annotated[int, Field(ge=1024)] = 2_097_152
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    api_keys_file: Path | None = None
    # Not a flag: Hugging Face's own switch, read at the edge so the model store gets it explicitly.
    hub_offline: bool = False

    @field_validator("cache_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.backend == "gpu" and self.quantize == "int8":
            raise ValueError(
                "quantize int8 is dynamic CPU quantisation; use quantize none or fp16 with backend gpu"
            )
        if self.backend == "cpu" and self.quantize == "fp16":
            raise ValueError(
                "quantize fp16 is for the GPU (tensor cores); use quantize none or int8 with backend cpu"
            )
        return self

    @property
    def request_timeout_s(self) -> float:
        """The per-request deadline: explicit, or a multiple of the SLO when left at 0."""
        milliseconds = self.request_timeout_ms or TIMEOUT_PER_SLO * self.latency_slo_ms
        return milliseconds / 1000

    @property
    def admission_budget_s(self) -> float:
        """How late an admitted request may be predicted to finish: the SLO, or a shorter deadline."""
        return min(self.latency_slo_ms / 1000, self.request_timeout_s)

    @property
    def recipe(self) -> Recipe:
        """What changes the prepared graph: the identity of an artefact these settings may serve."""
        return Recipe(
            model=self.model, revision=self.revision, backend=self.backend, quantization=self.quantize
        )

    @property
    def batch_tokens(self) -> int:
        """The token budget of one model call: as set, or the backend's default when left at 0."""
        return self.max_batch_tokens or DEFAULT_MAX_BATCH_TOKENS[self.backend]

    @property
    def max_batch_wait_s(self) -> float:
        return self.max_batch_wait_ms / 1000


@dataclass(frozen=True)
class Option:
    """One row of the settings table: a Settings field, its CLI flag and its env var."""

    field: str
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def env(self) -> str:
        return "RERANKER_" + self.field.upper()


OPTIONS: Final[tuple[Option, ...]] = (
    Option("host", "address to listen on"),
    Option("port", "HTTP port for the API, probes and /metrics"),
    Option("metrics_port", "second listener serving only /metrics (0 disables it)"),
    Option("model", "local model directory or Hugging Face model id"),
    Option("revision", "hub revision (branch, tag or commit) when --model is a model id"),
    Option("cache_dir", "where hub downloads, ONNX exports and int8 graphs are cached"),
    Option(
        "artefact",
        "a prepared model directory (reranker-server prepare --out): served as its manifest says, checked "
        "by its canaries at warm-up; --model, --revision, --backend and --quantize must match its recipe",
    ),
    Option("termination_log", "where to write why start-up failed (a pod's /dev/termination-log)"),
    Option("quantize", "none, int8 (dynamic int8 for the CPU) or fp16 (half precision for the GPU)"),
    Option("max_length", "tokens per (query, passage) pair; the passage is cut first"),
    Option("backend", "cpu (ONNX Runtime CPU) or gpu (CUDA execution provider, no CPU fall-back)"),
    Option("max_candidates", "k cap: most documents one request may carry"),
    Option("k_cap_policy", "reject (413) or truncate (score the first k, say so in a header)"),
    Option(
        "max_batch_tokens",
        "token budget of one ONNX Runtime call: pairs x padded length, quadratic past 256 tokens; "
        "a longer pair runs alone (0 = 1024 on cpu, 32768 on gpu)",
    ),
    Option("max_batch_wait_ms", "while the model is busy, how long the next batch stays open for companions"),
    Option("latency_slo_ms", "P95 latency objective; the request timeout derives from it"),
    Option("request_timeout_ms", "per-request deadline (0 = 4 x the latency SLO)"),
    Option("warmup_requests", "warm-up passes over the production shapes before /ready turns 200"),
    Option("intra_op_threads", "ONNX Runtime intra-op threads (0 = container CPU quota from cgroups)"),
    Option("drain_timeout_s", "after SIGTERM, how long in-flight requests may take to finish"),
    Option("max_request_bytes", "largest request body accepted (413 beyond)"),
    Option("log_format", "text or json"),
    Option(
        "log_level",
        "debug, info, warning or error; below debug, other libraries' INFO lines (ONNX Runtime's optimizer "
        "and quantizer) are left out",
    ),
    Option(
        "api_keys_file",
        "a file of API keys, one per line (re-read when it changes): the rerank routes and /info then need "
        "'Authorization: Bearer <key>'; /health, /ready and /metrics stay open",
    ),
)
OPTIONS_BY_FIELD: Final = {option.field: option for option in OPTIONS}


def add_options(parser: argparse.ArgumentParser, fields: Iterable[str] | None = None) -> None:
    """Add the flags for `fields` (all by default); defaults stay None so env vars can fill in."""
    chosen = OPTIONS if fields is None else [OPTIONS_BY_FIELD[name] for name in fields]
    for option in chosen:
        default = Settings.model_fields[option.field].default
        shown = "required" if option.field == "model" else f"default {default}"
        parser.add_argument(
            option.flag,
            dest=option.field,
            default=None,
            metavar=option.field.upper(),
            help=f"{option.help} [env {option.env}; {shown}]",
        )


def settings_from(cli: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """Merge CLI values over env vars over defaults, and validate once.

    `cli` holds parsed flags (None when not given); `env` is the process environment, passed in so
    nothing below the edge reads it.
    """
    raw: dict[str, Any] = {}
    for option in OPTIONS:
        value = cli.get(option.field)
        if value is None:
            value = env.get(option.env)
        if value is not None and value != "":
            raw[option.field] = value
    raw["hub_offline"] = env.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc, raw)) from None


def describe_errors(exc: ValidationError, raw: Mapping[str, Any]) -> str:
    """Say which flag/env var is wrong, with the value given, in words an operator can act on."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if field in OPTIONS_BY_FIELD:
            option = OPTIONS_BY_FIELD[field]
            given = f" (got {raw[field]!r})" if field in raw else ""
            lines.append(f"{option.flag} / {option.env}: {message}{given}")
        else:
            lines.append(message)
    return "invalid settings: " + "; ".join(lines)
