"""The issue's performance targets checked against one run's numbers (pure: results in, verdicts out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

MINILM: Final = "minilm-l6-h384"
MEMORY_LIMIT_MB: Final = 1.5e9 / 2**20


def find_cell(
    cells: Sequence[dict[str, Any]], model: str, workload: str, k: int, max_length: int
) -> dict[str, Any] | None:
    for cell in cells:
        if (cell["model"], cell["workload"], cell["k"], cell["max_length"]) == (
            model,
            workload,
            k,
            max_length,
        ):
            return cell
    return None


def _verdict(
    target_id: str, text: str, measured: float | None, threshold: float, *, at_most: bool, note: str = ""
) -> dict[str, Any]:
    met = None if measured is None else (measured <= threshold if at_most else measured >= threshold)
    return {
        "id": target_id,
        "target": text,
        "measured": None if measured is None else round(measured, 4),
        "threshold": threshold,
        "met": met,
        "note": note,
    }


def _ratio(
    cells: Sequence[dict[str, Any]], workload: str, k: int, max_length: int, name: str
) -> tuple[float | None, str]:
    cell = find_cell(cells, MINILM, workload, k, max_length)
    if cell is None or name not in cell["ratios"]:
        return None, "not measured in this run"
    ratio = cell["ratios"][name]
    return ratio["median"], f"paired over {ratio['n']} rounds, IQR {ratio['p25']:.3f}-{ratio['p75']:.3f}"


def ratio_targets(cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = [
        (
            "equal-L256-C/B",
            "equal",
            256,
            "C/B",
            1.0,
            "equal-length, k=40, L=256: server fp32 no slower than B",
        ),
        ("equal-L256-C/A", "equal", 256, "C/A", 0.85, "equal-length, k=40, L=256: server fp32 <= 0.85x A"),
        (
            "equal-L512-C/B",
            "equal",
            512,
            "C/B",
            1.0,
            "equal-length, k=40, L=512: server fp32 no slower than B",
        ),
        ("equal-L512-C/A", "equal", 512, "C/A", 0.85, "equal-length, k=40, L=512: server fp32 <= 0.85x A"),
        ("mixed-L512-C/B", "mixed", 512, "C/B", 0.65, "mixed-length, k=40, L=512: server fp32 <= 0.65x B"),
        ("mixed-L512-C/A", "mixed", 512, "C/A", 0.6, "mixed-length, k=40, L=512: server fp32 <= 0.6x A"),
        ("int8-L256-D/A", "equal", 256, "D/A", 0.45, "int8, equal-length, k=40, L=256: <= 0.45x A"),
        ("int8-L512-D/A", "equal", 512, "D/A", 0.45, "int8, equal-length, k=40, L=512: <= 0.45x A"),
    ]
    verdicts = []
    for target_id, workload, max_length, name, threshold, text in specs:
        measured, note = _ratio(cells, workload, 40, max_length, name)
        verdicts.append(_verdict(target_id, text, measured, threshold, at_most=True, note=note))
    return verdicts


def fidelity_targets(fidelity: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not fidelity or "int8_vs_fp32" not in fidelity:
        return [
            _verdict(
                "int8-spearman",
                "int8 Spearman vs fp32 >= 0.99",
                None,
                0.99,
                at_most=False,
                note="not measured",
            )
        ]
    result = fidelity["int8_vs_fp32"]
    note = (
        f"all pairs {result['spearman_all']:.4f}, worst query {result['spearman_per_query_min']:.4f}; "
        f"top-5 overlap mean {result['top5_overlap_mean']:.3f} (min {result['top5_overlap_min']:.2f}); "
        f"max |logit diff| {result['max_abs_logit_diff']:.4f} (logit std {result['reference_logit_std']:.3f})"
    )
    return [
        _verdict(
            "int8-spearman",
            "int8 Spearman vs fp32 (per query, mean) >= 0.99 on the fine-tuned MiniLM",
            result["spearman_per_query_mean"],
            0.99,
            at_most=False,
            note=note,
        )
    ]


def padding_targets(cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    verdicts = []
    for k, threshold in ((40, 0.15), (100, 0.10)):
        cell = find_cell(cells, MINILM, "mixed", k, 512)
        measured, note = None, "not measured in this run"
        if cell is not None:
            server = cell["server"].get("C", {})
            policies = cell["padding_fraction_policies"]
            if "padding_fraction_per_batch_mean" in server:
                measured = server["padding_fraction_per_batch_mean"]
                note = "server's reranker_padding_efficiency (per-batch mean); "
            else:
                note = "server exposed no padding metric; "
            note += (
                f"one call (B) {policies['one_call']:.3f}, "
                f"batches of 32 in arrival order {policies['batch32_arrival']:.3f}, "
                f"sorted batches of 32 (A) {policies['batch32_sorted']:.3f}, "
                f"sorted token budget {policies['token_budget_sorted']:.3f}"
            )
        verdicts.append(
            _verdict(
                f"padding-mixed-k{k}",
                f"padding fraction, mixed-length, k={k}, L=512 <= {threshold:.0%}",
                measured,
                threshold,
                at_most=True,
                note=note,
            )
        )
    return verdicts


def ceiling_note(ceiling: dict[str, Any]) -> str:
    """What merging requests gains the model alone (bench.ceiling): the most concurrency can add
    once per-request overhead is gone."""
    if "ceiling" not in ceiling:
        return ""
    return (
        f"; model alone, lone vs merged requests: {ceiling['lone_pairs_per_s']} -> "
        f"{ceiling['merged_pairs_per_s']} pairs/s = {ceiling['ceiling']:.2f}x ceiling"
    )


def concurrency_targets(levels: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    verdicts = []
    for workload in ("mixed", "short"):
        for server in ("C", "D"):
            by_clients = {
                level["clients"]: level
                for level in levels or []
                if level.get("server") == server
                and level.get("workload") == workload
                and "pairs_per_s" in level
            }
            if 1 not in by_clients or 16 not in by_clients:
                continue
            sixteen = by_clients[16]
            gain = sixteen.get("gain_vs_one_client") or sixteen["pairs_per_s"] / by_clients[1]["pairs_per_s"]
            note = ""
            if "gain_per_round" in sixteen:
                note = f"paired per round over {sixteen['rounds']} rounds: {sixteen['gain_per_round']}; "
            note += "; ".join(
                f"N={n}: {level['pairs_per_s']} pairs/s, P95 {level['p95_s'] * 1000:.0f} ms"
                for n, level in sorted(by_clients.items())
            )
            note += ceiling_note(by_clients[1].get("batching_ceiling") or {})
            length = by_clients[1].get("max_length")
            verdicts.append(
                _verdict(
                    f"concurrency-{workload}-{server}",
                    f"server {server}, {workload} passages (L={length}): 16 clients x k=10 throughput "
                    ">= 1.3x one client",
                    gain,
                    1.3,
                    at_most=False,
                    note=note,
                )
            )
    return verdicts


def warmup_targets(blocks: Sequence[dict[str, Any]], cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    verdicts = []
    for block in blocks:
        for key in ("C", "D"):
            first = block["processes"].get(key, {}).get("first_request", {})
            if "seconds" not in first:
                continue
            cell = find_cell(cells, block["model"], first["workload"], first["k"], block["max_length"])
            if cell is None or key not in cell["contenders"]:
                continue
            grid_median = cell["contenders"][key]["median_s"]
            steady = first.get("followup_median_s") or grid_median
            verdicts.append(
                _verdict(
                    f"first-request-{block['model']}-L{block['max_length']}-{key}",
                    f"{block['model']} L={block['max_length']} server {key}: "
                    "first request after /ready <= 1.5x the steady median of the next ones",
                    first["seconds"] / steady,
                    1.5,
                    at_most=True,
                    note=f"first {first['seconds'] * 1000:.0f} ms, next {first.get('followups_s')} s, "
                    f"grid median {grid_median * 1000:.0f} ms ({first['workload']}, k={first['k']}); "
                    f"other tenants {first.get('other_tenants_cores')} cores; "
                    f"cold start {block['processes'][key].get('cold_start_s')} s",
                )
            )
    return verdicts


def memory_targets(blocks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    verdicts = []
    for block in blocks:
        if block["model"] != MINILM or block["max_length"] != 512:
            continue
        others = "; ".join(
            f"{key} {entry.get('peak_rss_mb', '?')} MB" + (" (killed)" if entry.get("killed") else "")
            for key, entry in block["processes"].items()
        )
        for key in ("C", "D"):
            entry = block["processes"].get(key)
            if entry and "peak_rss_mb" in entry:
                verdicts.append(
                    _verdict(
                        f"memory-{key}",
                        f"server {key} peak RSS through k=100, L=512 (MiniLM) < 1.5 GB",
                        entry["peak_rss_mb"],
                        round(MEMORY_LIMIT_MB, 1),
                        at_most=True,
                        note=f"peak RSS MB of every contender in the L=512 block: {others}",
                    )
                )
    return verdicts


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    cells = results["cells"]
    return (
        ratio_targets(cells)
        + fidelity_targets(results.get("fidelity"))
        + padding_targets(cells)
        + concurrency_targets(results.get("concurrency"))
        + warmup_targets(results["blocks"], cells)
        + memory_targets(results["blocks"])
    )
