"""Markdown tables of a results file, for the console and docs/benchmarks.md."""

from __future__ import annotations

from typing import Any

KEYS = ("A", "B", "C", "D")


def _ms(cell: dict[str, Any], key: str) -> str:
    summary = cell["contenders"].get(key)
    if summary is None:
        error = cell["errors"].get(key)
        return "failed" if error else "-"
    return f"{summary['median_s'] * 1000:,.0f} ({summary['p95_s'] * 1000:,.0f})"


def _ratio(cell: dict[str, Any], name: str) -> str:
    ratio = cell["ratios"].get(name)
    return "-" if ratio is None else f"{ratio['median']:.2f} ({ratio['p25']:.2f}-{ratio['p75']:.2f})"


def latency_table(cells: list[dict[str, Any]]) -> str:
    lines = [
        "| model | workload | L | k | A ms | B ms | C ms | D ms | C/A | C/B | D/A | C pairs/s | D pairs/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        pairs = {key: cell["contenders"].get(key, {}).get("pairs_per_s") for key in ("C", "D")}
        lines.append(
            f"| {cell['model']} | {cell['workload']} | {cell['max_length']} | {cell['k']} | "
            + " | ".join(_ms(cell, key) for key in KEYS)
            + f" | {_ratio(cell, 'C/A')} | {_ratio(cell, 'C/B')} | {_ratio(cell, 'D/A')} | "
            + " | ".join("-" if pairs[key] is None else f"{pairs[key]:.0f}" for key in ("C", "D"))
            + " |"
        )
    return "\n".join(lines)


def targets_table(targets: list[dict[str, Any]]) -> str:
    lines = ["| target | measured | limit | met | detail |", "|---|---|---|---|---|"]
    for target in targets:
        met = {True: "yes", False: "**no**", None: "n/a"}[target["met"]]
        measured = "-" if target["measured"] is None else f"{target['measured']:.3f}"
        lines.append(
            f"| {target['target']} | {measured} | {target['threshold']} | {met} | {target['note']} |"
        )
    return "\n".join(lines)


def gflops_table(cells: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    lines = [
        f"| model | workload | L | k | {' | '.join(f'{k} GFLOP/s' for k in KEYS)} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    biggest: dict[str, dict[str, Any]] = {}
    for cell in cells:
        if cell["workload"] != "equal":
            continue
        best = biggest.get(cell["model"])
        if best is None or (cell["max_length"], cell["k"]) > (best["max_length"], best["k"]):
            biggest[cell["model"]] = cell
    for cell in biggest.values():
        values = []
        for key in KEYS:
            summary = cell["contenders"].get(key)
            values.append(
                "-"
                if summary is None
                else f"{summary['useful_gflops']:.0f} ({summary['fraction_of_fp32_peak']:.0%})"
            )
        lines.append(
            f"| {cell['model']} | equal | {cell['max_length']} | {cell['k']} | " + " | ".join(values) + " |"
        )
    return "\n".join(lines) + (
        f"\n\n(percent of the nominal fp32 peak, {machine['fp32_peak_gflops']} GFLOP/s at the reported "
        f"{machine['clock_mhz']:.0f} MHz; measured SGEMM roof {machine['measured_sgemm_gflops']} GFLOP/s; "
        "int8 contender D is not bound by the fp32 peak)"
    )
