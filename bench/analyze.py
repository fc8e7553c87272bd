"""Turn raw block measurements into per-cell summaries: latency stats, paired ratios, GFLOP/s, padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from bench.flops import flops_for_lengths
from bench.padding import fixed_size, one_call, padding_fraction, token_budget
from bench.shapes import SHAPES
from bench.stats import paired_ratios, relative_spread, summarize

RATIOS: Final = (("C", "A"), ("C", "B"), ("D", "A"), ("D", "B"), ("D", "C"), ("B", "A"))


def _mean_padding(lengths: Sequence[Sequence[int]], policy: str, max_batch_tokens: int) -> float:
    fractions = []
    for request in lengths:
        if policy == "one_call":
            batches = one_call(request)
        elif policy == "batch32_sorted":
            batches = fixed_size(request, 32, sort=True)
        elif policy == "batch32_arrival":
            batches = fixed_size(request, 32, sort=False)
        else:
            batches = token_budget(request, max_batch_tokens, sort=True)
        fractions.append(padding_fraction(request, batches))
    return round(float(np.mean(fractions)), 4)


def _server_view(series: dict[str, float]) -> dict[str, Any]:
    view: dict[str, Any] = {}
    if series.get("reranker_padding_efficiency_count"):
        efficiency = series["reranker_padding_efficiency_sum"] / series["reranker_padding_efficiency_count"]
        view["padding_fraction_per_batch_mean"] = round(1 - efficiency, 4)
        view["batches"] = int(series["reranker_padding_efficiency_count"])
    if series.get("reranker_batch_pairs_count"):
        view["pairs_per_batch_mean"] = round(
            series["reranker_batch_pairs_sum"] / series["reranker_batch_pairs_count"], 1
        )
    if series.get("reranker_request_duration_seconds_sum"):
        total = series["reranker_request_duration_seconds_sum"]
        view["inference_share_of_request_time"] = round(
            series.get("reranker_inference_seconds_sum", 0.0) / total, 4
        )
        view["queue_wait_share_of_request_time"] = round(
            series.get("reranker_queue_wait_seconds_sum", 0.0) / total, 4
        )
    return view


def _noise(per_round: dict[str, float], rounds: Sequence[int]) -> dict[str, float]:
    values = [per_round[str(r)] for r in rounds if str(r) in per_round]
    if not values:
        return {}
    return {"mean": round(float(np.mean(values)), 3), "max": round(float(np.max(values)), 3)}


def summarize_point(
    model: str, max_length: int, point: dict[str, Any], machine: dict[str, Any], max_batch_tokens: int
) -> dict[str, Any]:
    shape = SHAPES[model]
    lengths = {int(r): v for r, v in point["lengths"].items()}
    timed_rounds = sorted(r for r in lengths if r >= point["warmup_rounds"])
    contenders: dict[str, Any] = {}
    samples = {key: {int(r): s for r, s in values.items()} for key, values in point["samples"].items()}
    for key, values in samples.items():
        seconds = [values[r] for r in sorted(values)]
        summary = summarize(seconds, point["k"]).to_json()
        gflops = [flops_for_lengths(shape, lengths[r]) / values[r] / 1e9 for r in sorted(values)]
        summary["useful_gflops"] = round(float(np.median(gflops)), 1)
        achieved = float(np.median(gflops))
        summary["fraction_of_fp32_peak"] = round(achieved / machine["fp32_peak_gflops"], 3)
        summary["fraction_of_measured_sgemm"] = round(achieved / machine["measured_sgemm_gflops"], 3)
        summary["relative_iqr"] = round(relative_spread(seconds), 3)
        contenders[key] = summary
    ratios = {}
    for numerator, denominator in RATIOS:
        if numerator in samples and denominator in samples:
            ratio = paired_ratios(samples[numerator], samples[denominator])
            if ratio is not None:
                ratios[f"{numerator}/{denominator}"] = ratio.to_json()
    timed_lengths = [lengths[r] for r in timed_rounds]
    padding = {
        policy: _mean_padding(timed_lengths, policy, max_batch_tokens)
        for policy in ("one_call", "batch32_arrival", "batch32_sorted", "token_budget_sorted")
    }
    return {
        "model": model,
        "max_length": max_length,
        "workload": point["workload"],
        "k": point["k"],
        "mean_tokens_per_pair": round(float(np.mean([np.mean(v) for v in timed_lengths])), 1),
        "contenders": contenders,
        "ratios": ratios,
        "padding_fraction_policies": padding,
        "server": {key: _server_view(series) for key, series in point.get("server", {}).items()},
        "other_tenants_cores": _noise(point.get("other_tenants_cores", {}), timed_rounds),
        "tokenize_ms_per_pair": {k: round(v * 1000, 3) for k, v in point["tokenize_s_per_pair"].items()},
        "peak_rss_mb_so_far": point["peak_rss_mb"],
        "errors": point["errors"],
    }
