"""Tracking a video on the canvas: the frame scrubber, the timeline, Propagate / Cancel,
Describe over time and the preview clip (under the canvas, shown while a video is tracked).

*Track regions in this video* (Video tab) opens the clip with its frame sampling; the
canvas then shows one frame and every canvas tool marks on it (``components.tracking``
hands the marks to the tracks). Each action has an API endpoint: ``/track_video``,
``/seek_frame``, ``/track_region``, ``/propagate``, ``/cancel_propagation``, ``/describe_over_time``,
``/preview_clip``; Export and Import JSON write and read the video form while tracking.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from components import tracking
from components.chat import decoding_settings
from components.common import View, Wiring, payload_path
from components.session import Session
from components.style import ink
from gar_app.errors import InputError

TIMELINE_TEMPLATE = '<div class="gar-tl" aria-label="Timeline: where each region is present"></div>'
TIMELINE_SCRIPT = (Path(__file__).resolve().parent / "timeline.js").read_text()
SHOW_CANVAS = "() => { document.querySelector('#gar-canvas')?.scrollIntoView({block: 'nearest'}); }"  # after the tab switch
# A page's progress bar is redrawn at most this often. Every update is a message the browser
# must draw; a tracker at 100 frames/s sent more than a loaded browser draws, they queued up,
# and the bar (and the Cancel click) fell seconds behind the frames done.
BAR_INTERVAL_S = 0.2


@dataclass
class TrackingUI:
    panel: gr.Column
    status: gr.HTML
    frame: gr.Slider
    timeline: gr.HTML
    propagate: gr.Button
    cancel: gr.Button
    describe: gr.Button
    keyframes: gr.Number
    preview: gr.Button
    clip: gr.Video
    api_tag: gr.Textbox  # hidden: the region /track_region names
    api_button: gr.Button

    @property
    def view(self) -> View:
        return View([self.panel, self.status, self.frame, self.timeline], render)


def build(services) -> TrackingUI:
    with gr.Column(visible=False, elem_id="gar-tracking") as panel:
        status = gr.HTML("", elem_id="gar-track-status", padding=False, label="Tracking")
        frame = gr.Slider(0, 1, value=0, step=1, label="Frame", elem_id="gar-track-frame")
        timeline = gr.HTML(
            value=None,
            html_template=TIMELINE_TEMPLATE,
            js_on_load=TIMELINE_SCRIPT,
            elem_id="gar-timeline",
            padding=False,
            label="Timeline",
        )
        with gr.Row(elem_classes=["gar-actions"]):
            propagate = gr.Button("Propagate", variant="primary", size="sm", elem_id="gar-propagate")
            cancel = gr.Button("Cancel", variant="stop", size="sm", elem_id="gar-cancel")
            describe = gr.Button(
                "Describe over time, on this many frames:",
                size="sm",
                interactive=services.gar is not None,
                elem_id="gar-describe-over-time",
            )
            keyframes = gr.Number(
                4,
                label="Keyframes to describe",
                show_label=False,
                container=False,
                minimum=1,
                maximum=16,
                precision=0,
                min_width=56,
                elem_id="gar-describe-count",
            )
            preview = gr.Button("Preview clip", size="sm", elem_id="gar-preview")
        clip = gr.Video(
            label="Preview with the regions", visible=False, interactive=False, elem_id="gar-preview-clip"
        )
    with gr.Group(visible=False):
        api_tag = gr.Textbox(label="tag")
        api_button = gr.Button("api")
    return TrackingUI(
        panel,
        status,
        frame,
        timeline,
        propagate,
        cancel,
        describe,
        keyframes,
        preview,
        clip,
        api_tag,
        api_button,
    )


def _runs(present: list[bool]) -> list[list[int]]:
    """Where a region is present, as [first, last] frame runs (what the timeline paints)."""
    runs: list[list[int]] = []
    for position, here in enumerate(present):
        if here and runs and runs[-1][1] == position - 1:
            runs[-1][1] = position
        elif here:
            runs.append([position, position])
    return runs


def _time(clip, position: int) -> str:
    time_s = clip.time(position)
    return "" if time_s is None else f" · {time_s:.2f} s"


def timeline_value(session: Session) -> dict | None:
    """What the timeline draws: per region its runs, keyframes and captions, and the current frame."""
    t = session.tracking
    if t is None:
        return None
    tracks, clip = t.tracks, t.clip
    regions = []
    for region in tracks:
        regions.append(
            {
                "tag": region.tag,
                "colour": region.colour,
                "ink": ink(region.colour),
                "runs": _runs(tracks.presence(region.index)),
                "keyframes": sorted(region.keyframes),
                "captions": [
                    {
                        "position": c.position,
                        "label": f"frame {c.position}{_time(clip, c.position)}: {c.text}",
                    }
                    for c in region.captions
                ],
            }
        )
    label = f"Frame {t.position} of {len(clip) - 1} (file frame {clip.indices[t.position]}{_time(clip, t.position)})"
    return {"frames": len(clip), "current": t.position, "label": label, "regions": regions}


def status_html(session: Session) -> str:
    from components.text import escape

    t = session.tracking
    if t is None:
        return ""
    pending = t.pending_frames
    waiting = f" · {pending} frames wait for Propagate" if pending else ""
    return (
        f'<div class="gar-track-status">Tracking <b>{escape(t.name)}</b> with the '
        f"{escape(t.tracks.tracker.name)}{waiting}.<br>{escape(tracking.FRAME_ONLY)}</div>"
    )


def render(session: Session) -> list:
    t = session.tracking
    if t is None:
        return render_idle()
    last = len(t.clip) - 1
    frame = gr.update(
        minimum=0, maximum=max(1, last), value=t.position, interactive=last > 0, label=f"Frame (0 – {last})"
    )
    return [gr.update(visible=True), status_html(session), frame, timeline_value(session)]


# ---------------------------------------------------------------- handlers


def track_video(session: Session, upload, fps_cap, max_frames) -> dict:
    """``/track_video``: the uploaded video opens on the canvas for tracking."""
    path = payload_path(upload)
    if not path:
        raise InputError("upload a video first")
    orig = upload.get("video", {}).get("orig_name") if isinstance(upload, dict) else None
    note = tracking.start(session, path, orig or Path(path).name, fps_cap, max_frames)
    return {"note": note, "tabs": gr.Tabs(selected="image")}


def seek_frame(session: Session, position) -> None:
    """``/seek_frame``: show the frame at ``position`` (0 .. frames - 1) with its masks."""
    try:
        position = int(position)
    except (TypeError, ValueError):
        raise InputError(f"the frame must be a whole number, not {position!r}") from None
    tracking.show(session, position)


def track_region(session: Session, tag: str) -> str | None:
    """``/track_region``: the region the next marks edit on this frame, also one absent here."""
    return tracking.pick(session, tag)


def region_clicked(session: Session, evt: gr.EventData) -> str | None:
    return track_region(session, str(getattr(evt, "tag", "")))


def seek_clicked(session: Session, evt: gr.EventData) -> None:
    seek_frame(session, getattr(evt, "position", None))


def progress_bar(progress: gr.Progress, desc: str, unit: str = "frames") -> Callable[[int, int], None]:
    """A ``(done, total)`` callback for the library that moves the page's bar: the first and the
    last count always, the ones between at most every ``BAR_INTERVAL_S`` (each one the real count)."""
    last = -float("inf")

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= BAR_INTERVAL_S or done >= total:
            last = now
            progress((done, total), desc=desc, unit=unit)

    return report


def propagate(session: Session, progress=gr.Progress()) -> str:  # noqa: B008 - Gradio's progress bar
    """``/propagate``: every region through the clip from its keyframes, with a progress bar."""
    tracking.require(session)
    return tracking.propagate(session, progress_bar(progress, "Propagating"))


def cancel_propagation(state) -> None:
    """``/cancel_propagation``: not queued and lock-free, so it reaches a running Propagate."""
    if isinstance(state, Session):
        tracking.cancel(state)


def describe_over_time(session: Session, count, *settings):
    """``/describe_over_time``: captions of the selected region on K frames of its track."""
    yield from tracking.describe_over_time(session, count, decoding_settings(*settings))


def preview_clip(session: Session, progress=gr.Progress()) -> dict:  # noqa: B008 - Gradio's progress bar
    """``/preview_clip``: a WebM of the video with the regions drawn, to watch or download."""
    path, note = tracking.preview(session, progress_bar(progress, "Rendering"))
    return {"note": note, "clip": gr.update(value=path, visible=True)}


def refresh(state) -> list:
    """The panel after any canvas change (a mark adds a region to the timeline; opening an image ends tracking)."""
    return render(state) if isinstance(state, Session) else render_idle()


def render_idle() -> list:
    return [gr.update(visible=False), "", gr.update(), None]


def wire(
    ui: TrackingUI, wiring: Wiring, canvas_stage: gr.HTML, video_ui, tabs: gr.Tabs, settings: list
) -> None:
    """Tracking's events redraw every view and the panel. Other events leave the panel out of
    their outputs (so their API results keep their shape); the canvas's ``change`` redraws it."""
    wiring.after.append(tracking.sync)
    canvas_stage.change(
        refresh, [wiring.state], ui.view.components, show_progress="hidden", api_visibility="private"
    )
    views = [*wiring.views, ui.view]
    inputs = [video_ui.video, video_ui.fps_cap, video_ui.max_frames]
    video_ui.track.click(
        **wiring.event(track_video, inputs, views=views, extra={"tabs": tabs}),
        preprocess=False,
        api_name="track_video",
    ).then(None, js=SHOW_CANVAS, api_visibility="private")
    ui.frame.release(**wiring.event(seek_frame, [ui.frame], views=views), api_name="seek_frame")
    ui.timeline.seek(**wiring.event(seek_clicked, views=views), api_visibility="private")
    ui.timeline.pick(**wiring.event(region_clicked, views=views), api_visibility="private")
    ui.api_button.click(**wiring.event(track_region, [ui.api_tag], views=views), api_name="track_region")
    busy = {"show_progress": "full", "show_progress_on": [ui.timeline]}
    ui.propagate.click(**wiring.event(propagate, views=views, gpu=True, **busy), api_name="propagate")
    ui.cancel.click(cancel_propagation, [wiring.state], None, queue=False, api_name="cancel_propagation")
    ui.describe.click(
        **wiring.event(describe_over_time, [ui.keyframes, *settings], views=views, gpu=True),
        api_name="describe_over_time",
    )
    ui.preview.click(
        **wiring.event(preview_clip, views=[ui.view], extra={"clip": ui.clip}, **busy),
        api_name="preview_clip",
    )
