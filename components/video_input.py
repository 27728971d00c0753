"""A video as input: pick a frame (by slider or time) and annotate it on the canvas, or track it.

*Annotate this frame* puts the frame on the canvas (asking first when the current image has
unsaved work), switches to the Image tab and says so. *Track regions in this video* opens
the whole clip, sampled as set here, for tracking (``components.tracking_panel``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from components.canvas import show_image
from components.common import Wiring, payload_path
from components.session import Session
from gar_app import video
from gar_app.errors import InputError
from gar_app.formats.document import VideoFrame
from gar_app.tracking.video_workspace import DEFAULT_FPS_CAP, DEFAULT_MAX_FRAMES

EXAMPLES = sorted(
    str(p) for p in (Path(__file__).resolve().parents[1] / "assets" / "examples").glob("*.webm")
)


@dataclass
class VideoUI:
    video: gr.Video
    frame: gr.Slider
    time: gr.Number
    preview: gr.Image
    use: gr.Button
    fps_cap: gr.Number
    max_frames: gr.Number
    track: gr.Button


def build() -> VideoUI:
    clip = gr.Video(
        label="Video — upload one, then choose a frame", sources=["upload"], height=300, elem_id="gar-video"
    )
    if EXAMPLES:
        gr.Examples(EXAMPLES, inputs=[clip], label="Example video")
    with gr.Row():
        frame = gr.Slider(0, 1, value=0, step=1, label="Frame", interactive=False, scale=3)
        time = gr.Number(label="or time (s)", value=0, minimum=0, scale=1)
    preview = gr.Image(label="Frame preview", interactive=False, height=220, elem_id="gar-frame-preview")
    use = gr.Button("Annotate this frame", variant="primary")
    with gr.Group():
        with gr.Row():
            fps_cap = gr.Number(
                DEFAULT_FPS_CAP,
                label="Track at most this many frames per second (0: all)",
                minimum=0,
                elem_id="gar-track-fps",
            )
            max_frames = gr.Number(
                DEFAULT_MAX_FRAMES,
                label="and at most this many frames (0: no limit)",
                minimum=0,
                precision=0,
                elem_id="gar-track-max",
            )
        track = gr.Button("Track regions in this video", variant="primary", elem_id="gar-track")
    return VideoUI(clip, frame, time, preview, use, fps_cap, max_frames, track)


def _path(upload) -> str:
    path = payload_path(upload)
    if not path:
        raise InputError("upload a video first")
    return path


def video_loaded(session: Session, upload) -> dict:
    """``/load_video``: probe the video and show its first frame."""
    path = payload_path(upload)
    if not path:
        return {"frame": gr.update(maximum=1, value=0, interactive=False), "preview": None}
    info = video.probe(path)
    frame, _index, _time = video.read_frame(path, index=0)
    frames = f"{info.frame_count} frame{'s' if info.frame_count != 1 else ''}"
    return {
        "frame": gr.update(
            maximum=max(1, info.frame_count - 1),
            value=0,
            interactive=info.frame_count > 1,
            label=f"Frame ({frames}, {info.fps:.3g} fps, {info.duration_s:.1f} s)",
        ),
        "preview": frame,
    }


def frame_chosen(session: Session, upload, index) -> dict:
    frame, _index, time_s = video.read_frame(_path(upload), index=int(index or 0))
    return {"preview": frame, "time": round(time_s or 0.0, 3)}


def time_entered(session: Session, upload, time_s) -> dict:
    frame, index, _time = video.read_frame(_path(upload), time_s=float(time_s or 0))
    return {"preview": frame, "frame": index}


def use_frame(session: Session, upload, index) -> dict:
    """``/use_frame``: the frame becomes the canvas image; the Image tab opens with a notice."""
    path = _path(upload)
    frame, index, time_s = video.read_frame(path, index=int(index or 0))
    orig = upload.get("video", {}).get("orig_name") if isinstance(upload, dict) else None
    name = orig or Path(path).name
    frame_name = f"{Path(name).stem}_frame{index:05d}.png"
    show_image(session, frame, frame_name, VideoFrame(name, index, time_s))
    if session.pending_image is not None:
        note = f"Frame {index} is ready: answer the question above to open it."
    else:
        note = f"Frame {index} of {name} is on the canvas: mark regions on it."
    return {"note": note, "tabs": gr.Tabs(selected="image")}


def wire(ui: VideoUI, wiring: Wiring, tabs: gr.Tabs) -> None:
    raw = {"preprocess": False}  # an undecodable video reaches gar_app.video, which says so plainly
    widgets = {"frame": ui.frame, "preview": ui.preview, "time": ui.time}
    ui.video.change(
        **wiring.event(video_loaded, [ui.video], views=[], extra=widgets), **raw, api_name="load_video"
    )
    ui.frame.release(
        **wiring.event(frame_chosen, [ui.video, ui.frame], views=[], extra=widgets),
        **raw,
        api_visibility="private",
    )
    ui.time.submit(
        **wiring.event(time_entered, [ui.video, ui.time], views=[], extra=widgets),
        **raw,
        api_visibility="private",
    )
    ui.use.click(
        **wiring.event(use_frame, [ui.video, ui.frame], extra={"tabs": tabs}), **raw, api_name="use_frame"
    )
