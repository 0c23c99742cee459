"""Numbers for people: thousands separators, about four significant digits, never an exponent
(``418,123`` not ``4.181e+05``; ``0.06523``), latencies with their unit."""

from __future__ import annotations

import math


def number(v: float) -> str:
    """About four significant digits, thousands separators, never an exponent.

    Examples: 418123.4 -> '418,123'; 2274.2 -> '2,274'; 261.93 -> '261.9'; 1.7561 -> '1.756';
    0.065234 -> '0.06523'; 3e-07 -> '0.0000003'; 12 -> '12'; nan -> 'nan'.
    """
    if isinstance(v, int):
        return f"{v:,}"
    if not math.isfinite(v):
        return str(v)
    if v == 0 or abs(v) >= 1000:
        return f"{v:,.0f}"
    decimals = 3 - math.floor(math.log10(abs(v)))
    text = f"{v:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def duration_ms(ms: float | None) -> str:
    """A latency given in milliseconds, in ms below 10 s and in s above.

    Examples: 0.42 -> '0.42 ms'; 203.8 -> '203.8 ms'; 4,385.2 -> '4,385 ms';
    418,123 -> '418.1 s'; 1,247,000 -> '1,247 s'; None -> 'n/a'.
    """
    if ms is None or (isinstance(ms, float) and math.isnan(ms)):
        return "n/a"
    if isinstance(ms, float) and math.isinf(ms):
        return "unbounded"
    return f"{number(float(ms))} ms" if abs(ms) < 9_999.5 else f"{number(ms / 1e3)} s"
