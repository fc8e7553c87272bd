"""Text tables of a load-sweep results file: every step, then capacities and ratios."""

from __future__ import annotations

from typing import Any


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def steps_table(results: dict[str, Any]) -> str:
    lines = [
        f"{'workload':<9} {'contender':<16} {'rate/s':>7} {'sent':>5} {'P50':>6} {'P95':>6} {'P99':>6} "
        f"{'good/s':>7} {'err%':>5} {'429%':>5} {'t/o%':>5} {'lag99':>6} {'drain':>6} pass"
    ]
    for workload in results["workloads"]:
        for key, sweep in workload["contenders"].items():
            for step in sweep.get("steps", []):
                lines.append(
                    f"{workload['name']:<9} {key:<16} {step['rate_rps']:>7.2f} {step['sent']:>5} "
                    f"{_ms(step['p50_s']):>6} {_ms(step['p95_s']):>6} {_ms(step['p99_s']):>6} "
                    f"{step['goodput_rps']:>7.2f} {step['error_share'] * 100:>5.1f} "
                    f"{step['shed_share'] * 100:>5.1f} {step['timeout_share'] * 100:>5.1f} "
                    f"{_ms(step['send_lag_p99_s']):>6} {step['idle']['waited_s']:>6.1f} "
                    f"{'yes' if step['passed'] else 'NO'}"
                )
    return "\n".join(lines)


def capacity_table(results: dict[str, Any]) -> str:
    lines = [
        f"{'workload':<9} {'contender':<16} {'1-req ms':>8} {'capacity/s':>10} {'fails at':>8} "
        f"{'good@2x/cap':>11} {'P95@2x':>7} {'vs seed':>7} {'bracket':>13}  note"
    ]
    for workload in results["workloads"]:
        ratios = workload.get("ratios_vs_baseline", {})
        for key, sweep in workload["contenders"].items():
            capacity = sweep.get("capacity")
            if capacity is None:
                lines.append(f"{workload['name']:<9} {key:<16} failed: {sweep.get('error')}")
                continue
            ratio = ratios.get(key, {})
            bracket = f"[{_num(ratio.get('low'))}, {_num(ratio.get('high'))}]" if ratio else ""
            note = "below the lowest rate tried" if capacity["capacity_rps"] == 0 else ""
            lines.append(
                f"{workload['name']:<9} {key:<16} {_ms(sweep['probe_latency_s']):>8} "
                f"{capacity['capacity_rps']:>10.2f} {_num(capacity['first_failing_rps']):>8} "
                f"{_num(capacity['overload_goodput_vs_capacity']):>11} "
                f"{_ms(capacity['overload_p95_s']):>7} {_num(ratio.get('ratio')):>7} {bracket:>13}  {note}"
            )
    return "\n".join(lines)


def _quartiles(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    low, high = entry["iqr"]
    return f"{entry['median']:.2f} [{low:.2f}-{high:.2f}]"


def bootstrap_table(results: dict[str, Any]) -> str:
    """Median and interquartile range of each figure over the resampled sweeps (bench.loadboot)."""
    boot = results["bootstrap"]
    lines = [
        f"resampled {boot['replicates']} times: median [interquartile range]",
        f"{'workload':<9} {'contender':<16} {'capacity/s':>20} {'vs seed':>20} {'good@2x/cap':>20}",
    ]
    for name, contenders in boot["workloads"].items():
        for key, figures in contenders.items():
            lines.append(
                f"{name:<9} {key:<16} {_quartiles(figures['capacity_rps']):>20} "
                f"{_quartiles(figures['ratio_to_baseline']):>20} "
                f"{_quartiles(figures['overload_goodput_vs_capacity']):>20}"
            )
    return "\n".join(lines)
