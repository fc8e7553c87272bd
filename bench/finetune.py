"""A brief fine-tune of MiniLM-L6 on the synthetic relevance task (about a minute on 2 cores).

Real pretrained weights plus a trained head give scores with real spread, which is what the
int8 fidelity numbers need. Training uses soft labels (share of query keywords present) with
binary cross-entropy on the single logit, as cross-encoders are trained on graded relevance.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from bench.fidelity import spearman
from bench.relevance import LabelledPair, make_groups


@dataclass(frozen=True)
class FinetuneRecipe:
    steps: int = 120
    batch_size: int = 16
    learning_rate: float = 5e-5
    max_length: int = 40
    seed: int = 0
    train_groups: int = 400
    eval_groups: int = 10


def _encode(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[LabelledPair], max_length: int) -> Any:
    return tokenizer(
        [p.query for p in pairs],
        [p.passage for p in pairs],
        padding=True,
        truncation="only_second",
        max_length=max_length,
        return_tensors="pt",
    )


@torch.inference_mode()
def _logits(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[LabelledPair]
) -> np.ndarray:
    model.eval()
    out = [model(**_encode(tokenizer, pairs[i : i + 64], 128)).logits[:, 0] for i in range(0, len(pairs), 64)]
    return torch.cat(out).numpy()


def finetune(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pool: Sequence[str], recipe: FinetuneRecipe
) -> dict[str, Any]:
    """Train in place; returns how well the scores now follow relevance on held-out queries."""
    torch.manual_seed(recipe.seed)
    train = make_groups(pool, recipe.train_groups, 10, seed=recipe.seed)
    held_out = make_groups(pool, recipe.eval_groups, 20, seed=recipe.seed + 1)
    rng = np.random.default_rng(recipe.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 10))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    started = time.perf_counter()
    model.train()
    losses = []
    for _ in range(recipe.steps):
        batch = [train[i] for i in rng.choice(len(train), size=recipe.batch_size, replace=False)]
        logits = model(**_encode(tokenizer, batch, recipe.max_length)).logits[:, 0]
        loss = loss_fn(logits, torch.tensor([p.label for p in batch]))
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    seconds = time.perf_counter() - started
    logits = _logits(model, tokenizer, held_out)
    return {
        "steps": recipe.steps,
        "batch_size": recipe.batch_size,
        "seconds": round(seconds, 1),
        "final_loss": round(float(np.mean(losses[-10:])), 4),
        "held_out_spearman_vs_relevance": round(spearman(logits, [p.label for p in held_out]), 4),
        "held_out_logit_std": round(float(logits.std()), 3),
        "held_out_logit_range": [round(float(logits.min()), 3), round(float(logits.max()), 3)],
    }
