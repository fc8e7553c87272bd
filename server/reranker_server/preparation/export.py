"""Export a Hugging Face sequence-classification checkpoint to ONNX with torch.onnx.

This is the only module that imports torch and transformers, and only inside its functions: the
serving path never reaches it unless a model ships no ONNX graph. It uses torch.onnx directly
(TorchScript exporter, dynamic batch and sequence axes) rather than optimum, which would add pins
(optimum-onnx caps transformers) for no gain on encoder-only classifiers.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import torch

OPSET: Final = 17
GRAPH_NAME: Final = "model.onnx"
#: Protobuf cannot hold more than 2 GiB; bigger graphs keep their weights in one side file. Every step
#: (export, fusion, quantisation) switches to it above this size, well below the limit.
EXTERNAL_DATA_NAME: Final = "model.onnx_data"
EXTERNAL_DATA_THRESHOLD_BYTES: Final = 1_500_000_000


class ExportUnavailable(RuntimeError):
    """torch/transformers are not installed, so a model without an ONNX graph cannot be served."""


def export_checkpoint(
    source: Path, destination: Path, *, external_data_threshold_bytes: int = EXTERNAL_DATA_THRESHOLD_BYTES
) -> Path:
    """Write `destination/model.onnx` plus tokenizer and config from a checkpoint directory.

    `destination` must be empty: the caller (model_store) builds into a temporary directory and
    renames it into place, so a crash here never leaves a graph a later start would load.
    """
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as exc:
        raise ExportUnavailable(
            f"exporting {source} to ONNX needs torch and transformers "
            f"(pip install 'kube-reranker[export]'): {exc}"
        ) from exc

    # Eager attention exports the plain MatMul/Softmax pattern ONNX Runtime fuses into its Attention op.
    model = AutoModelForSequenceClassification.from_pretrained(
        source, attn_implementation="eager", torch_dtype=torch.float32
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    if not tokenizer.is_fast:
        raise ExportUnavailable(f"{source} has no fast (Rust) tokenizer; the server needs tokenizer.json")
    tokenizer.save_pretrained(destination)
    model.config.save_pretrained(destination)
    export_module(
        model,
        destination / GRAPH_NAME,
        input_names=list(tokenizer.model_input_names),
        external_data_threshold_bytes=external_data_threshold_bytes,
    )
    return destination / GRAPH_NAME


def export_module(
    model: torch.nn.Module,
    path: Path,
    *,
    input_names: list[str],
    external_data_threshold_bytes: int = EXTERNAL_DATA_THRESHOLD_BYTES,
) -> None:
    """Trace `model` into an ONNX graph whose inputs have dynamic batch and sequence axes."""
    import torch

    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in input_names]
    fill = {"input_ids": 5, "attention_mask": 1, "token_type_ids": 0}
    example = tuple(torch.full((2, 16), fill[name], dtype=torch.long) for name in names)
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    scratch = path.parent / ".graph"
    scratch.mkdir()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter warns that it is deprecated in favour of dynamo, which needs
        # onnxscript; the graphs it writes are what ONNX Runtime's fusions recognise best.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            example,
            str(scratch / GRAPH_NAME),
            dynamo=False,
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
        )
    _move_graph(scratch, path, external_data_threshold_bytes)


def _move_graph(scratch: Path, path: Path, external_data_threshold_bytes: int) -> None:
    """Keep one graph plus, above the threshold, one weights file (torch writes one file per tensor
    past 2 GiB; below it, one graph file that later steps could not grow past protobuf's limit)."""
    written = list(scratch.iterdir())
    size = sum(p.stat().st_size for p in written)
    if len(written) == 1 and size <= external_data_threshold_bytes:
        (scratch / GRAPH_NAME).rename(path)
    else:
        import onnx

        graph = onnx.load(str(scratch / GRAPH_NAME), load_external_data=True)
        onnx.save_model(
            graph,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=EXTERNAL_DATA_NAME,
        )
    shutil.rmtree(scratch)
