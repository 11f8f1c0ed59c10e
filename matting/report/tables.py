"""Markdown tables of results: one row per method, mean +- std over images of each metric."""

from __future__ import annotations

import numpy as np

from matting.metrics import METRIC_HEADERS, format_metric

__all__ = ["method_table"]


def method_table(results: dict[str, list[dict]], labels: dict[str, str], metrics: list[str]) -> str:
    """Markdown table: one row per method, mean +- std over images of each metric, in display scale."""
    head = "| method | " + " | ".join(METRIC_HEADERS[m] for m in metrics) + " |"
    rule = "|---|" + "---:|" * len(metrics)
    lines = [head, rule]
    for key, rows in results.items():
        cells = []
        for m in metrics:
            values = np.array([r[m] for r in rows], dtype=np.float64)
            cells.append(f"{format_metric(m, values.mean())} +- {format_metric(m, values.std())}")
        lines.append(f"| {labels.get(key, key)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
