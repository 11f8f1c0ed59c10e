"""The scale every table shows a metric in: SAD, Grad and Conn as returned (``SAD (/1000)``),
MSE and MAD multiplied by 1000 (``MSE (x1e-3)``)."""

from __future__ import annotations

METRIC_HEADERS = {
    "sad": "SAD (/1000)",
    "mse": "MSE (x1e-3)",
    "mad": "MAD (x1e-3)",
    "grad": "Grad (/1000)",
    "conn": "Conn (/1000)",
    "sad_unknown": "SAD unknown (/1000)",
    "mse_unknown": "MSE unknown (x1e-3)",
    "mad_unknown": "MAD unknown (x1e-3)",
    "sad_fg": "SAD fg (/1000)",
    "sad_bg": "SAD bg (/1000)",
}
# Factor from the value a metric function returns to the number a table shows.
DISPLAY_SCALES = {
    "sad": 1.0,
    "mse": 1e3,
    "mad": 1e3,
    "grad": 1.0,
    "conn": 1.0,
    "sad_unknown": 1.0,
    "mse_unknown": 1e3,
    "mad_unknown": 1e3,
    "sad_fg": 1.0,
    "sad_bg": 1.0,
}

__all__ = ["DISPLAY_SCALES", "METRIC_HEADERS", "display_value", "format_metric"]


def display_value(key: str, value: float) -> float:
    """``value`` (as a metric function returns it) in the scale of ``METRIC_HEADERS[key]``."""
    return float(value) * DISPLAY_SCALES[key]


def format_metric(key: str, value: float, digits: int = 3) -> str:
    """``value`` formatted in the scale of ``METRIC_HEADERS[key]``, e.g. mse 0.00403 -> '4.030'."""
    return f"{display_value(key, value):.{digits}f}"
