"""A video as input: pick a frame (by slider or time) and annotate it like an image."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from components.common import payload_path, ui_action
from components.page import Page, as_outputs, refresh_regions
from gar_app import export, video
from gar_app.errors import InputError

EXAMPLES = sorted(str(p) for p in (Path(__file__).resolve().parents[1] / "assets" / "examples").glob("*.webm"))


def build(page: Page) -> None:
    page.video = gr.Video(label="Video — upload one, then choose a frame", sources=["upload"], height=300)
    if EXAMPLES:
        gr.Examples(EXAMPLES, inputs=[page.video], label="Example video")
    with gr.Row():
        page.video_frame = gr.Slider(0, 1, value=0, step=1, label="Frame", interactive=False, scale=3)
        page.video_time = gr.Number(label="or time (s)", value=0, minimum=0, scale=1)
    page.video_preview = gr.Image(label="Frame preview", interactive=False, height=220)
    page.video_use = gr.Button("Annotate this frame", variant="primary")


def wire(page: Page) -> None:
    @ui_action(page)
    def on_video_loaded(upload):
        path = payload_path(upload)
        if not path:
            return {page.video_frame: gr.update(maximum=1, value=0, interactive=False), page.video_preview: None}
        info = video.probe(path)
        frame, index, _time = video.read_frame(path, index=0)
        return {
            page.video_frame: gr.update(
                maximum=max(1, info.frame_count - 1), value=0, interactive=True,
                label=f"Frame (of {info.frame_count}, {info.fps:.3g} fps, {info.duration_s:.1f} s)",
            ),
            page.video_preview: frame,
        }

    @ui_action(page)
    def on_frame_chosen(upload, index):
        path = payload_path(upload)
        if not path:
            raise InputError("Upload a video first.")
        frame, index, time_s = video.read_frame(path, index=int(index))
        return {page.video_preview: frame, page.video_time: round(time_s or 0.0, 3)}

    @ui_action(page)
    def on_time_entered(upload, time_s):
        path = payload_path(upload)
        if not path:
            raise InputError("Upload a video first.")
        frame, index, _time = video.read_frame(path, time_s=float(time_s or 0))
        return {page.video_preview: frame, page.video_frame: index}

    @ui_action(page)
    def on_frame_used(state, upload, index):
        ws = page.workspace(state)
        path = payload_path(upload)
        if not path:
            raise InputError("Upload a video first.")
        frame, index, time_s = video.read_frame(path, index=int(index))
        orig = upload.get("video", {}).get("orig_name") if isinstance(upload, dict) else None
        name = orig or Path(path).name
        ws.set_image(frame, name=f"{Path(name).stem}_frame{index:05d}.png",
                     video=export.VideoFrame(name, index, time_s))
        return as_outputs(page, refresh_regions(ws)) | {page.chatbot: []}

    raw = {"preprocess": False}  # an undecodable video reaches gar_app.video, which says so plainly
    page.video.change(
        on_video_loaded, [page.video], [page.video_frame, page.video_preview, page.notice], api_name="load_video", **raw
    )
    page.video_frame.release(
        on_frame_chosen, [page.video, page.video_frame], [page.video_preview, page.video_time, page.notice],
        api_visibility="private", **raw,
    )
    page.video_time.submit(
        on_time_entered, [page.video, page.video_time], [page.video_preview, page.video_frame, page.notice],
        api_visibility="private", **raw,
    )
    page.video_use.click(
        on_frame_used, [page.state, page.video, page.video_frame], page.outputs(page.chatbot),
        api_name="use_frame", **raw,
    )
