"""The page's components in one place, and the views every action refreshes."""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from components.style import chip_style
from gar_app.regions import REGION_COLOURS
from gar_app.tags import split_tags
from gar_app.workspace import Services, Workspace


@dataclass
class Page:
    """Every component the handlers read or update (filled in by the builders)."""

    services: Services = None
    state: gr.State = None
    status: gr.Markdown = None
    notice: gr.Markdown = None
    canvas: gr.Image = None
    tool: gr.Radio = None
    tool_hint: gr.Markdown = None
    new_region: gr.Button = None
    scribble: gr.ImageEditor = None
    scribble_apply: gr.Button = None
    mask_upload: gr.Image = None
    point_x: gr.Number = None
    point_y: gr.Number = None
    point_mark: gr.Button = None
    drag_box: gr.Textbox = None
    region_info: gr.Markdown = None
    region_list: gr.HTML = None
    region_pick: gr.Dropdown = None
    caption: gr.Textbox = None
    describe: gr.Button = None
    describe_all: gr.Button = None
    delete: gr.Button = None
    chatbot: gr.Chatbot = None
    question: gr.Textbox = None
    send: gr.Button = None
    stop: gr.Button = None
    new_chat: gr.Button = None
    sampling: gr.Radio = None
    temperature: gr.Slider = None
    top_p: gr.Slider = None
    max_new_tokens: gr.Slider = None
    export: gr.Button = None
    export_files: gr.File = None
    import_file: gr.UploadButton = None
    video: gr.Video = None
    video_frame: gr.Slider = None
    video_time: gr.Number = None
    video_preview: gr.Image = None
    video_use: gr.Button = None

    def workspace(self, state: Workspace | None) -> Workspace:
        """This browser session's workspace, made on first use (gr.State must not deep-copy the model)."""
        return state if isinstance(state, Workspace) else Workspace(self.services)

    def outputs(self, *extra) -> list:
        """Outputs of an event that changes regions: their views, ``extra``, and the notice last."""
        return [self.state, self.canvas, self.region_list, self.region_pick, self.caption, self.region_info,
                *extra, self.notice]


def colour_tags(text: str) -> str:
    """HTML of a text with each <PromptN> in its region's colour (the text itself escaped)."""
    return "".join(
        html.escape(piece) if index is None
        else f'<span class="gar-tag gar-tag-{index % len(REGION_COLOURS)}">{html.escape(piece)}</span>'
        for piece, index in split_tags(text)
    ).replace("\n", "<br>")


def region_rows(ws: Workspace) -> list[dict]:
    return [
        {
            "tag": region.tag,
            "style": chip_style(region.index),
            "source": region.source,
            "area": f"{region.area:,}",
            "caption": region.caption or "(no caption yet)",
            "selected": region.index == ws.current,
        }
        for region in ws.regions
    ]


def region_info(ws: Workspace) -> str:
    if ws.image is None:
        return "Load an image to start."
    if ws.corner is not None:
        x, y = ws.corner
        return f"Box: first corner at ({x:.0f}, {y:.0f}); click the opposite corner."
    limit = ws.services.prompt_numbers
    count = f"{len(ws.regions)} region(s)" + (f" of at most {limit}" if limit else "")
    if ws.current is None or ws.current not in ws.regions:
        return f"{count}. The next mark starts a new region."
    region = ws.regions[ws.current]
    return f"{count}. Marks now edit `{region.tag}` ({region.area:,} px, from {region.source})."


def refresh_regions(ws: Workspace) -> dict:
    """Updates for everything that shows regions."""
    tags = ws.regions.tags
    current = ws.regions[ws.current].tag if ws.current is not None and ws.current in ws.regions else None
    return {
        "state": ws,
        "canvas": ws.render(),
        "region_list": region_rows(ws),
        "region_pick": gr.update(choices=tags, value=current),
        "caption": gr.update(value=ws.regions[ws.current].caption if current else "", interactive=current is not None),
        "region_info": region_info(ws),
    }


def chat_messages(ws: Workspace) -> list[dict]:
    return [{"role": turn.role, "content": colour_tags(turn.text) or "…"} for turn in ws.dialogue]


def as_outputs(page: Page, updates: dict) -> dict:
    """Key updates by component, as Gradio expects from handlers with dict outputs."""
    return {getattr(page, name): value for name, value in updates.items()}
