"""The load sweep's two workloads and their request bodies."""

import json

import numpy as np
import pytest

from bench.load import encode
from bench.loadconfig import CHAT_RAG, SNIPPETS, full, only, scale_slos, with_slo
from bench.workload import RAG_TOKENS, Request, passage_lengths


def test_rag_passages_span_20_to_256_tokens() -> None:
    lengths = passage_lengths(np.random.default_rng(0), "rag", 1000)
    assert (min(lengths), max(lengths)) == RAG_TOKENS


def test_the_workloads_have_the_issue_s_shapes_and_slos() -> None:
    assert (CHAT_RAG.k, CHAT_RAG.max_length, CHAT_RAG.slo_ms, CHAT_RAG.kind) == (40, 256, 1000, "rag")
    assert (SNIPPETS.k, SNIPPETS.slo_ms, SNIPPETS.kind) == (10, 300, "short")


def test_the_body_is_tei_shaped_and_asks_for_truncation() -> None:
    body = json.loads(encode(Request(query="q", passages=("a", "b"))))
    assert body == {"query": "q", "texts": ["a", "b"], "raw_scores": True, "truncate": True}


def test_only_keeps_the_named_contenders_and_workloads() -> None:
    config = only(full(), ["ours-int8"], ["snippets"])
    assert config.contenders == ("ours-int8",)
    assert [w.name for w in config.workloads] == ["snippets"]


def test_only_refuses_an_unknown_contender() -> None:
    with pytest.raises(SystemExit, match="unknown"):
        only(full(), ["tei"], [])


def test_scaling_the_slos_scales_every_workload_and_is_recorded() -> None:
    config = scale_slos(full(), 1.5)
    assert [w.slo_ms for w in config.workloads] == [1500, 450]
    assert config.slo_scale == 1.5


def test_one_workload_s_slo_can_be_set_alone() -> None:
    config = with_slo(full(), "chat-rag", 4000)
    assert {w.name: w.slo_ms for w in config.workloads} == {"chat-rag": 4000, "snippets": SNIPPETS.slo_ms}


def test_setting_the_slo_of_an_unknown_workload_is_refused() -> None:
    with pytest.raises(SystemExit, match="--slo needs one of"):
        with_slo(full(), "search", 500)
