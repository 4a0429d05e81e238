"""How durations and ratios are written, the same on the dashboard and in ``coredash bench``."""

from __future__ import annotations


def format_seconds(value: float | None) -> str:
    """µs below a millisecond, ms below a second, then seconds, then minutes."""
    if value is None:
        return "–"
    if value < 0.001:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.1f} ms" if value < 0.1 else f"{value * 1e3:.0f} ms"
    if value < 60:
        return f"{value:.2f} s"
    minutes, seconds = divmod(value, 60)
    return f"{minutes:.0f} m {seconds:02.0f} s"


def format_ratio(value: float | None, suffix: str = "×") -> str:
    """Three decimals below 0.1 (a tiny job's speedup is still a number), else two."""
    if value is None:
        return "–"
    return f"{value:.3f}{suffix}" if value < 0.1 else f"{value:.2f}{suffix}"


def format_rate(per_s: float | None) -> str:
    """Jobs per second: "0.8", "45", "1,234", "52k"."""
    if per_s is None:
        return "–"
    if per_s >= 10_000:
        return f"{per_s / 1000:.0f}k"
    if per_s >= 10:
        return f"{per_s:,.0f}"
    return f"{per_s:.1f}"
