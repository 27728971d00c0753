"""The status line: which GAR checkpoint and device, which segmenter, or annotation mode."""

from __future__ import annotations

import gradio as gr

from components.text import escape
from gar_app.workspace import ANNOTATION_MODE, Services


def status_text(services: Services) -> str:
    """Plain text, for the console."""
    segmenter = f"Segmenter: {services.segmenter.name}"
    if services.gar is None:
        why = f" ({services.gar_problem})" if services.gar_problem else ""
        return f"⚠️ {ANNOTATION_MODE}{why}\n{segmenter}"
    gar = services.gar
    dtype = str(gar.model.dtype).replace("torch.", "")
    return f"Model: {gar.model_id} on {gar.device} ({dtype}) · up to {gar.prompt_numbers} regions\n{segmenter}"


def build(services: Services) -> gr.HTML:
    lines = [escape(line) for line in status_text(services).splitlines()]
    return gr.HTML("<br>".join(lines), js_on_load=None, elem_classes=["gar-status"], padding=False)
