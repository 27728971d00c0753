"""The status line: which GAR checkpoint and device, which segmenter and video tracker, or annotation mode."""

from __future__ import annotations

import gradio as gr

from components.text import escape
from gar_app.tracking.video_workspace import tracker_of
from gar_app.workspace import ANNOTATION_MODE, Services


def status_text(services: Services) -> str:
    """Plain text, for the console."""
    segmenter = f"Segmenter: {services.segmenter.name}"
    segmenter += f"\nVideo tracker: {tracker_of(services).name}"
    if services.gar is None:
        why = f" ({services.gar_problem})" if services.gar_problem else ""
        return f"⚠️ {ANNOTATION_MODE}{why}\n{segmenter}"
    gar = services.gar
    dtype = str(gar.model.dtype).replace("torch.", "")
    return (
        f"Model: {gar.model_id} on {gar.device} ({dtype}) · up to {gar.prompt_numbers} regions\n{segmenter}"
    )


def build(services: Services) -> gr.HTML:
    """The page title with the status beside it."""
    lines = "<br>".join(escape(line) for line in status_text(services).splitlines())
    markup = f'<div class="gar-title"><h1>GAR App</h1><div class="gar-status">{lines}</div></div>'
    return gr.HTML(markup, js_on_load=None, padding=False, min_width=300)
