"""The region list (colour chip, tag, area, caption), caption editing, Describe, Delete."""

from __future__ import annotations

import gradio as gr

from components.chat import decoding_settings
from components.common import on_gpu, ui_action
from components.page import Page, as_outputs, refresh_regions
from gar_app.errors import InputError

ROWS = """
<div class="gar-regions">
{{#if value.length}}
  {{#each value}}
  <div class="gar-region-row {{#if this.selected}}gar-selected{{/if}}" data-tag="{{this.tag}}" data-action="select"
       title="Select {{this.tag}} to edit it">
    <button class="gar-chip" style="{{this.style}}" data-tag="{{this.tag}}" data-action="insert"
            title="Insert {{this.tag}} into the question">{{this.tag}}</button>
    <span class="gar-region-meta">{{this.source}} · {{this.area}} px</span>
    <div class="gar-region-caption">{{this.caption}}</div>
  </div>
  {{/each}}
{{else}}
  <p class="gar-empty">No regions yet: click on the image to mark one.</p>
{{/if}}
</div>
"""
ROWS_CSS = """
.gar-regions { padding-top: 20px; }
.gar-region-row { padding: 6px 8px; border-radius: 6px; border: 1px solid var(--border-color-primary);
                  margin-bottom: 6px; cursor: pointer; }
.gar-region-row.gar-selected { border: 2px solid var(--color-accent); }
.gar-chip { border: none; border-radius: 12px; padding: 2px 10px; font-weight: 700; cursor: copy; }
.gar-region-meta { margin-left: 8px; opacity: 0.75; font-size: 0.9em; }
.gar-region-caption { margin-top: 4px; font-size: 0.92em; white-space: pre-wrap; overflow-wrap: anywhere;
                      display: -webkit-box; -webkit-line-clamp: 4; -webkit-box-orient: vertical; overflow: hidden; }
.gar-empty { opacity: 0.7; }
"""
ROWS_JS = """
element.addEventListener('click', (event) => {
  const target = event.target.closest('[data-action]');
  if (!target) return;
  event.stopPropagation();
  trigger('click', {tag: target.dataset.tag, action: target.dataset.action});
});
"""


def build(page: Page) -> None:
    page.region_list = gr.HTML(
        value=[], html_template=ROWS, css_template=ROWS_CSS, js_on_load=ROWS_JS, label="Regions", show_label=True,
        container=True,
    )
    with gr.Row():
        page.region_pick = gr.Dropdown(choices=[], label="Selected region", interactive=True, scale=2)
        page.delete = gr.Button("Delete region", variant="secondary", size="sm", scale=1)
    has_model = page.services.gar is not None
    page.caption = gr.Textbox(
        label="Caption (type your own, or press Describe)" if has_model else "Caption (type your own)",
        lines=3,
        interactive=False,
        max_lines=12,
    )
    with gr.Row():
        page.describe = gr.Button("Describe", variant="primary", interactive=has_model)
        page.describe_all = gr.Button("Describe all", interactive=has_model)


def wire(page: Page) -> None:
    outputs = page.outputs()
    settings_inputs = [page.sampling, page.temperature, page.top_p, page.max_new_tokens]

    @ui_action(page)
    def on_region_picked(state, tag):
        ws = page.workspace(state)
        if tag:
            ws.select(tag)
        return as_outputs(page, refresh_regions(ws))

    @ui_action(page)
    def on_region_list_clicked(state, question, evt: gr.EventData):
        ws = page.workspace(state)
        tag = getattr(evt, "tag", None)
        if not tag:
            return {page.question: question}
        if getattr(evt, "action", "") == "insert":
            spacer = "" if not question or question.endswith(" ") else " "
            return {page.question: f"{question or ''}{spacer}{tag} "}
        ws.select(tag)
        return as_outputs(page, refresh_regions(ws)) | {page.question: question}

    @ui_action(page)
    def on_caption_edited(state, tag, caption):
        ws = page.workspace(state)
        if tag:
            ws.set_caption(tag, caption)
        return as_outputs(page, refresh_regions(ws))

    @ui_action(page)
    def on_delete_clicked(state, tag):
        ws = page.workspace(state)
        if not tag:
            raise InputError("Select a region to delete first.")
        ws.delete(tag)
        return as_outputs(page, refresh_regions(ws))

    def _describe(ws, tags, settings):
        for tag in tags:
            ws.select(tag)
            yield as_outputs(page, refresh_regions(ws))
            for text in ws.stream_caption(tag, settings):  # only the caption changes while it streams
                yield {page.caption: gr.update(value=text, interactive=True)}
            yield as_outputs(page, refresh_regions(ws))

    @ui_action(page)
    def on_describe_clicked(state, tag, *settings):
        ws = page.workspace(state)
        ws.require_image()
        if not tag:
            raise InputError("Select a region to describe (or mark one on the image first).")
        ws.require_gar()
        yield from _describe(ws, [tag], decoding_settings(*settings))

    @ui_action(page)
    def on_describe_all_clicked(state, *settings):
        ws = page.workspace(state)
        ws.require_image()
        if not len(ws.regions):
            raise InputError("There are no regions to describe yet: click on the image to mark one.")
        ws.require_gar()
        yield from _describe(ws, ws.regions.tags, decoding_settings(*settings))

    gar_events = {"concurrency_limit": 1, "concurrency_id": "gar"}
    page.region_pick.input(on_region_picked, [page.state, page.region_pick], outputs, api_name="select_region")
    page.region_list.click(
        on_region_list_clicked, [page.state, page.question], page.outputs(page.question), api_visibility="private"
    )
    page.caption.blur(on_caption_edited, [page.state, page.region_pick, page.caption], outputs, api_name="set_caption")
    page.caption.submit(on_caption_edited, [page.state, page.region_pick, page.caption], outputs)
    page.delete.click(on_delete_clicked, [page.state, page.region_pick], outputs, api_name="delete_region")
    page.describe.click(
        on_gpu(on_describe_clicked), [page.state, page.region_pick, *settings_inputs], outputs, api_name="describe",
        **gar_events,
    )
    page.describe_all.click(
        on_gpu(on_describe_all_clicked), [page.state, *settings_inputs], outputs, api_name="describe_all", **gar_events
    )

