"""Page CSS: region colours for chips and tags come from the one palette in gar_app.regions."""

from __future__ import annotations

from pathlib import Path

from gar_app.regions import REGION_COLOURS, hex_to_rgb

CANVAS_CSS = (Path(__file__).resolve().parent / "canvas.css").read_text()
TIMELINE_CSS = (Path(__file__).resolve().parent / "timeline.css").read_text()

PAGE_CSS = """
.gar-header { align-items: center; gap: 8px; flex-wrap: wrap; }
.gar-title { display: flex; align-items: center; gap: 16px; flex-wrap: wrap; }
.gar-title h1 { margin: 0; font-size: 1.4em; white-space: nowrap; }
.gar-status { font-size: 0.8em; opacity: 0.8; line-height: 1.35; }
.gar-export { align-items: flex-end; }
#gar-notice:not(:has(.gar-notice)) { display: none; }
.gar-notice { border-left: 4px solid var(--color-accent); padding: 4px 10px; margin: 2px 0;
              background: var(--background-fill-secondary); overflow-wrap: anywhere; }
.gar-notice.gar-warning { border-left-color: #e0a000; background: rgba(224,160,0,0.10); }
#gar-ask { position: fixed; z-index: 60; left: 50%; bottom: 16px; transform: translateX(-50%);
           width: min(760px, calc(100vw - 24px)); border: 2px solid #e0a000 !important;
           box-shadow: 0 6px 24px rgba(0,0,0,0.25); background: var(--background-fill-primary) !important; }
.gar-ask-text { overflow-wrap: anywhere; }
.gar-tag { font-weight: 600; padding: 0 3px; border-radius: 4px; }
.gar-actions { gap: 6px; flex-wrap: wrap; }
.gar-actions > * { min-width: 0 !important; flex: 0 1 auto !important; }
.gar-regions { display: flex; flex-direction: column; gap: 6px; max-height: 46vh; overflow-y: auto; }
.gar-region-row { padding: 6px 8px; border-radius: 6px; border: 1px solid var(--border-color-primary); cursor: pointer; }
.gar-region-row.gar-selected { border: 2px solid var(--color-accent); background: var(--background-fill-secondary); }
.gar-chip { display: inline-block; border: 1px solid rgba(0,0,0,0.35); border-radius: 12px; padding: 1px 10px;
            font-weight: 700; font-size: 0.9em; }
button.gar-chip { cursor: copy; }
.gar-region-meta { margin-left: 8px; opacity: 0.75; font-size: 0.88em; }
.gar-region-caption { margin-top: 4px; font-size: 0.92em; white-space: pre-wrap; overflow-wrap: anywhere;
                      display: -webkit-box; -webkit-line-clamp: 4; -webkit-box-orient: vertical; overflow: hidden; }
.gar-empty { opacity: 0.7; margin: 4px 0; }
.gar-chips { display: flex; flex-wrap: wrap; gap: 4px; min-height: 1.6em; }
#gar-chat .message-content, #gar-chat .message { white-space: pre-wrap; overflow-wrap: anywhere; }
@media (max-width: 640px) {
  .gar-header { flex-direction: column; align-items: stretch !important; }
  .gar-header > * { width: 100% !important; }
  .gar-export { align-items: flex-start; }
  .gar-title h1 { font-size: 1.15em; }
  .gar-regions { max-height: 40vh; }
}
"""


def ink(colour: str) -> str:
    """Black or white, whichever reads better on ``colour``."""
    r, g, b = hex_to_rgb(colour)
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def css() -> str:
    rules = [PAGE_CSS, CANVAS_CSS, TIMELINE_CSS]
    for index, colour in enumerate(REGION_COLOURS):
        rules.append(f".gar-tag-{index} {{ background: {colour}; color: {ink(colour)}; }}")
    return "\n".join(rules)
