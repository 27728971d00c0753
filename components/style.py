"""Page CSS: region colours for chips and tags come from the one palette in gar_app.regions."""

from __future__ import annotations

from gar_app.regions import REGION_COLOURS, hex_to_rgb


def _ink(colour: str) -> str:
    r, g, b = hex_to_rgb(colour)
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def css() -> str:
    rules = [
        ".gar-status { font-size: 0.95em; }",
        ".gar-notice { border-left: 4px solid #e0a000; padding: 4px 10px; background: rgba(224,160,0,0.08); }",
        ".gar-tag { font-weight: 600; padding: 0 3px; border-radius: 4px; }",
        "#gar-canvas img { cursor: crosshair; user-select: none; }",
        ".gar-hidden { display: none !important; }",
    ]
    for index, colour in enumerate(REGION_COLOURS):
        rules.append(f".gar-tag-{index} {{ background: {colour}; color: {_ink(colour)}; }}")
    return "\n".join(rules)


def chip_style(index: int) -> str:
    """Inline style of a region's chip (the region list renders from data, not classes)."""
    colour = REGION_COLOURS[index % len(REGION_COLOURS)]
    return f"background:{colour};color:{_ink(colour)}"
