"""Tokenise (query, passage) pairs and score them with ONNX Runtime. No HTTP, no asyncio.

Both halves release the GIL: the Rust tokenizer's batch encode and ONNX Runtime's run. That is
what lets the batcher tokenise the next micro-batch while the current one runs. The tokenizer is
not safe to reconfigure concurrently, so one engine is driven by one tokenising thread.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from reranker_server.artefact import Canary, CanaryCheck, ModelFiles, check_canary, effective_max_length
from reranker_server.cuda import cuda_provider_problem
from reranker_server.int8weights import saturation_warning

log = logging.getLogger(__name__)

CUDA_PROVIDER: Final = "CUDAExecutionProvider"
CPU_PROVIDER: Final = "CPUExecutionProvider"
PAD_TOKENS: Final = ("[PAD]", "<pad>", "<PAD>")
#: A query is tokenised once per candidate, so a megabyte query with k=100 would mean 100 MB of
#: tokenising. No tokenizer needs this many characters per token to fill max_length, so text beyond
#: max_length x this never changes a score; it is dropped before tokenising.
QUERY_CHARS_PER_TOKEN: Final = 32
Truncation = Literal["right", "left"]
#: Session fusions whose CPU kernels run slower than the operators they replace (measured in
#: preparation/fusion.py): left out so that neither the offline fusion nor the session makes them.
CPU_DISABLED_OPTIMIZERS: Final = ("SkipLayerNormFusion", "BiasGeluFusion")


class EngineError(RuntimeError):
    """The model cannot be run as configured; the message says why and what to change."""


class BackendUnavailable(EngineError):
    """The requested execution provider is missing; never silently replaced by another."""


@dataclass(frozen=True)
class EncodedPairs:
    """The token ids of one request's pairs, unpadded: padding happens per micro-batch."""

    ids: list[np.ndarray]
    type_ids: list[np.ndarray]
    lengths: np.ndarray

    @property
    def total_tokens(self) -> int:
        return int(self.lengths.sum())


@dataclass(frozen=True)
class Feeds:
    """One padded micro-batch ready for ONNX Runtime, plus how much of it is real."""

    arrays: dict[str, np.ndarray]
    real_tokens: int

    @property
    def batch_size(self) -> int:
        return int(self.arrays["input_ids"].shape[0])

    @property
    def padded_tokens(self) -> int:
        return int(self.arrays["input_ids"].size)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Relevance in (0, 1) from raw logits, without overflow warnings for large negative logits."""
    return 0.5 * (1.0 + np.tanh(0.5 * logits.astype(np.float64)))


class Engine:
    """A loaded cross-encoder: tokenizer + ONNX Runtime session for one model and backend."""

    def __init__(
        self,
        files: ModelFiles,
        *,
        backend: str,
        max_length: int,
        threads: int,
    ) -> None:
        self.files = files
        self.backend = backend
        self.threads = threads
        self.max_length = effective_max_length(files.config, max_length)
        if self.max_length < max_length:
            log.warning(
                "max_length %d exceeds what %s supports; using %d", max_length, files.name, self.max_length
            )
        self.session = create_session(files, backend=backend, threads=threads)
        if backend == "cpu" and files.quantization == "int8":
            saturation = saturation_warning(files.graph)
            if saturation is not None:
                log.warning("%s", saturation)
        self._inputs = {
            i.name: np.int32 if i.type == "tensor(int32)" else np.int64 for i in self.session.get_inputs()
        }
        if "input_ids" not in self._inputs:
            raise EngineError(f"{files.graph} has no input_ids input; inputs are {sorted(self._inputs)}")
        self._output = self.session.get_outputs()[0].name
        self._pairs = Tokenizer.from_file(str(files.tokenizer))
        self._pairs.no_padding()
        # Longest-first keeps a query shorter than its passage whole and cuts the passage; a very
        # long query is cut too (to about half of max_length) instead of failing the request.
        self._pairs.enable_truncation(self.max_length, strategy="longest_first")
        # encode_batch_fast skips character offsets, which scoring never needs (older tokenizers lack it).
        self._encode_pairs = {"right": getattr(self._pairs, "encode_batch_fast", self._pairs.encode_batch)}
        self._plain = Tokenizer.from_file(str(files.tokenizer))
        self._plain.no_padding()
        self._plain.no_truncation()
        self.pad_id = pad_token_id(self._pairs, files.config)
        self.special_tokens = self._pairs.num_special_tokens_to_add(is_pair=True)

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def encode(
        self,
        query: str,
        documents: Sequence[str],
        max_tokens_per_doc: int | None = None,
        *,
        truncation: Truncation = "right",
    ) -> EncodedPairs:
        """Tokenise one request's pairs; documents may first be cut to `max_tokens_per_doc` tokens. Pairs
        over max_length lose tokens at the end (`right`) or the start (`left`) of the longer text."""
        if max_tokens_per_doc is not None and max_tokens_per_doc < self.max_length:
            documents = self.cut_documents(documents, max_tokens_per_doc)
        query = query[: self.max_length * QUERY_CHARS_PER_TOKEN]
        encodings = self._pair_encoder(truncation)([(query, document) for document in documents])
        dtype = self._inputs["input_ids"]
        ids = [np.asarray(e.ids, dtype=dtype) for e in encodings]
        type_ids = [np.asarray(e.type_ids, dtype=dtype) for e in encodings] if self.uses_type_ids else []
        lengths = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        return EncodedPairs(ids=ids, type_ids=type_ids, lengths=lengths)

    def _pair_encoder(self, truncation: Truncation) -> Any:
        """TEI's truncation_direction Left cuts from the start: a second tokenizer, built on first use (a
        large vocabulary costs tens of MB) by the one thread that tokenises for this engine."""
        if truncation not in self._encode_pairs:
            left = Tokenizer.from_file(str(self.files.tokenizer))
            left.no_padding()
            left.enable_truncation(self.max_length, strategy="longest_first", direction="left")
            self._encode_pairs[truncation] = getattr(left, "encode_batch_fast", left.encode_batch)
        return self._encode_pairs[truncation]

    def cut_documents(self, documents: Sequence[str], max_tokens: int) -> list[str]:
        """Cut each document's text after its `max_tokens`-th token (Cohere's max_tokens_per_doc)."""
        cut = []
        encodings = self._plain.encode_batch(list(documents), add_special_tokens=False)
        for document, encoding in zip(documents, encodings, strict=True):
            offsets = encoding.offsets
            cut.append(document[: offsets[max_tokens - 1][1]] if len(offsets) > max_tokens else document)
        return cut

    @property
    def uses_type_ids(self) -> bool:
        return "token_type_ids" in self._inputs

    def pad(self, ids: Sequence[np.ndarray], type_ids: Sequence[np.ndarray] = ()) -> Feeds:
        """Right-pad pairs to the longest among them: padding only ever happens within a micro-batch."""
        lengths = [len(row) for row in ids]
        width = max(lengths)
        dtype = self._inputs["input_ids"]
        input_ids = np.full((len(ids), width), self.pad_id, dtype=dtype)
        attention_mask = np.zeros((len(ids), width), dtype=dtype)
        for index, (row, length) in enumerate(zip(ids, lengths, strict=True)):
            input_ids[index, :length] = row
            attention_mask[index, :length] = 1
        arrays = {"input_ids": input_ids}
        if "attention_mask" in self._inputs:
            arrays["attention_mask"] = attention_mask
        if self.uses_type_ids:
            token_type_ids = np.zeros((len(ids), width), dtype=dtype)
            for index, row in enumerate(type_ids):
                token_type_ids[index, : len(row)] = row
            arrays["token_type_ids"] = token_type_ids
        return Feeds(arrays=arrays, real_tokens=sum(lengths))

    def run(self, feeds: Feeds) -> np.ndarray:
        """Raw logits, one per row. ONNX Runtime reads the numpy buffers in place (no copy)."""
        (logits,) = self.session.run([self._output], feeds.arrays)
        return logits.reshape(len(logits), -1)[:, 0].astype(np.float32, copy=False)


def check_engine_canary(engine: Engine, canary: Canary) -> CanaryCheck:
    """The integrity check: the canary pairs, one model call each, against PyTorch's logits."""
    logits = []
    for query, passage in canary.pairs:
        encoded = engine.encode(query, [passage])
        logits.append(float(engine.run(engine.pad(encoded.ids, encoded.type_ids))[0]))
    return check_canary(canary, logits)


def create_session(
    files: ModelFiles, *, backend: str, threads: int, disabled_optimizers: Sequence[str] | None = None
) -> ort.InferenceSession:
    """An ONNX Runtime session with full graph optimisation on exactly the requested backend.

    `disabled_optimizers` replaces the backend's own list (benchmarks compare recipes with it)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Flush denormal floats to zero: they are far below any score's precision, yet each one costs
    # a CPU dozens of cycles, and some inputs produce many of them.
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    if backend == "gpu":
        available = ort.get_available_providers()
        if CUDA_PROVIDER not in available:
            raise BackendUnavailable(
                f"backend gpu needs ONNX Runtime's {CUDA_PROVIDER}, but this onnxruntime build only has "
                f"{', '.join(available)}. Run the reranker-server-gpu image (onnxruntime-gpu) on a node "
                "with an NVIDIA GPU, or set RERANKER_BACKEND=cpu"
            )
        problem = cuda_provider_problem()
        if problem is not None:
            raise BackendUnavailable(
                f"backend gpu: ONNX Runtime's {CUDA_PROVIDER} cannot load ({problem}). libcuda.so.1 is the "
                "NVIDIA driver, which the node provides to pods that request nvidia.com/gpu; any other "
                "library belongs in the reranker-server-gpu image. Or set RERANKER_BACKEND=cpu"
            )
        providers: list[Any] = [CUDA_PROVIDER, CPU_PROVIDER]
        disabled: Sequence[str] = ()
    else:
        providers = [CPU_PROVIDER]
        disabled = CPU_DISABLED_OPTIMIZERS
    if disabled_optimizers is not None:
        disabled = disabled_optimizers
    try:
        session = ort.InferenceSession(
            str(files.graph), options, providers=providers, disabled_optimizers=list(disabled)
        )
    except Exception as exc:  # ONNX Runtime raises bare RuntimeError/Fail subclasses for bad graphs
        raise EngineError(f"ONNX Runtime cannot load {files.graph}: {exc}") from exc
    if backend == "gpu" and session.get_providers()[0] != CUDA_PROVIDER:
        raise BackendUnavailable(
            f"backend gpu: ONNX Runtime could not start {CUDA_PROVIDER} (no usable CUDA device or "
            "libraries) and would fall back to CPU, which this server refuses. Check the GPU request "
            "and the NVIDIA drivers on the node, or set RERANKER_BACKEND=cpu"
        )
    output = session.get_outputs()[0]
    if len(output.shape) == 2 and isinstance(output.shape[1], int) and output.shape[1] != 1:
        raise EngineError(
            f"{files.name} has {output.shape[1]} output logits per pair; a reranker has one (num_labels=1)"
        )
    return session


def pad_token_id(tokenizer: Tokenizer, config: dict[str, Any]) -> int:
    for token in PAD_TOKENS:
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return token_id
    configured = config.get("pad_token_id")
    return configured if isinstance(configured, int) else 0


def estimate_tokens(query_chars: int, document_chars: int, chars_per_token: float, max_length: int) -> int:
    """Tokens a pair will take, from its length in characters, before tokenising it.

    Admission has to decide before any tokenisation happens (the event loop must not tokenise), so it
    uses this estimate; the batcher calibrates `chars_per_token` from the pairs it does tokenise.
    """
    return min(max_length, 3 + math.ceil((query_chars + document_chars) / chars_per_token))
