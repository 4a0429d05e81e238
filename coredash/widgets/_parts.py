"""Small helpers for building theme-aware Content from (text, style) parts.

Styles are Textual style strings with theme variables ("$success", "bold $text-accent"),
so every panel follows the active theme, light or dark, and NO_COLOR.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.content import Content

Part = tuple[str, str] | str
Row = list[Part]

EIGHTHS_LEFT = "▏▎▍▌▋▊▉█"
# Text tints kept readable on a projector, light themes included; bar tracks are
# not text and can be fainter.
MUTED = "$foreground 72%"
FAINT = "$foreground 50%"
TRACK = "$foreground 22%"


def bar_text(fraction: float, width: int) -> tuple[str, str]:
    """(filled, empty) cells of a bar ``width`` long, filled to ``fraction`` in eighths."""
    width = max(1, width)
    fill = max(0.0, min(1.0, fraction)) * width
    full = int(fill)
    eighths = round((fill - full) * 8)
    if eighths == 8:
        full, eighths = full + 1, 0
    text = "█" * full + (EIGHTHS_LEFT[eighths - 1] if eighths else "")
    return text, "░" * (width - len(text))


def hbar(fraction: float, width: int, style: str, track: str = TRACK) -> Row:
    """A theme-styled bar ``width`` cells long, filled to ``fraction``."""
    filled, empty = bar_text(fraction, width)
    return [(filled, style), (empty, track)]


def cell(text: str, width: int, style: str = "", align: str = "<") -> Part:
    """Fixed-width text: cropped with an ellipsis, padded to ``width``."""
    if len(text) > width:
        text = text[: max(0, width - 1)] + "…" if width > 1 else text[:width]
    padded = f"{text:{align}{width}}"
    return (padded, style) if style else padded


def content(rows: Iterable[Sequence[Part]]) -> Content:
    return Content("\n").join(Content.assemble(*row) for row in rows)
