"""Regions through a video: marks on one frame, masks on every frame, captions over time.

The API a UI calls (all in the library, no Gradio):

    from gar_app.tracking import open_video, load_tracker, VideoTracks

    clip = open_video("clip.mp4", fps_cap=10, max_frames=600)   # lazy frames, size checked first
    tracker = load_tracker("facebook/sam2.1-hiera-tiny")        # or None: classical fallback
    print(tracker.name)                                         # say which one is in use
    tracks = VideoTracks(clip, tracker, limit=gar.prompt_numbers)
    region = tracks.add_region(0, mask=mask)                     # or prompt=Prompt(box=[...])
    tracks.propagate(progress=on_progress, cancel=stop_event)    # forward and backward
    tracks.mark(region.index, 40, prompt=Prompt(points=[[x, y]], labels=[0]))  # refine
    tracks.propagate(...)                                        # frames 40.. change (see tracks)
    tracks.masks_at(25); tracks.presence(0); tracks.render(25)   # scrubbing and the timeline
    frame_chat(gar, tracks, 25).ask("What is <Prompt0> doing?")  # GAR sees that frame
    list(describe_over_time(gar, tracks, 0, count=4))            # captions pinned to frames
    video_to_json(tracks_document(tracks))                       # and restore_tracks(...) back
    render_preview(tracks, "preview.webm")
    VideoWorkspace.open(workspace, "clip.mp4", "clip.mp4")       # a video on an image Workspace (the app)

``load_tracker`` imports torch only for SAM 2; the fallback needs OpenCV alone.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gar_app.tracking.base import Run, Tracker
    from gar_app.tracking.classical import ClassicalTracker
    from gar_app.tracking.describe import describe_over_time, frame_chat
    from gar_app.tracking.document import open_clip, restore_tracks, tracks_document
    from gar_app.tracking.preview import render_preview
    from gar_app.tracking.sam2 import Sam2Tracker
    from gar_app.tracking.tiny import write_tiny_sam2
    from gar_app.tracking.tracks import FrameCaption, Propagation, TrackedRegion, VideoTracks
    from gar_app.tracking.video_workspace import VideoWorkspace
    from gar_app.video import Clip

_LAZY = {
    "Run": "base",
    "Tracker": "base",
    "ClassicalTracker": "classical",
    "describe_over_time": "describe",
    "frame_chat": "describe",
    "open_clip": "document",
    "restore_tracks": "document",
    "tracks_document": "document",
    "render_preview": "preview",
    "Sam2Tracker": "sam2",
    "FrameCaption": "tracks",
    "Propagation": "tracks",
    "TrackedRegion": "tracks",
    "VideoTracks": "tracks",
    "VideoWorkspace": "video_workspace",
    "write_tiny_sam2": "tiny",
}

__all__ = [
    "ClassicalTracker",
    "FrameCaption",
    "Propagation",
    "Run",
    "Sam2Tracker",
    "TrackedRegion",
    "Tracker",
    "VideoTracks",
    "VideoWorkspace",
    "describe_over_time",
    "frame_chat",
    "load_tracker",
    "open_clip",
    "open_video",
    "render_preview",
    "restore_tracks",
    "tracks_document",
    "write_tiny_sam2",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"gar_app.tracking.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'gar_app.tracking' has no attribute {name!r}")


def open_video(path: str | os.PathLike, fps_cap: float | None = None, max_frames: int | None = None) -> Clip:
    """A video to track: frames sampled (fps cap, max frames) and decoded only when used."""
    from gar_app.video import Clip

    return Clip(path, fps_cap, max_frames)


def load_tracker(
    sam2: str | os.PathLike | None = None, device: str | None = None, dtype: Any = None
) -> Tracker:
    """SAM 2 (or EdgeTAM) from a checkpoint folder or Hub id; without one, the classical fallback.

    A checkpoint that is named but cannot be loaded is an error (``CheckpointError``), never
    a silent fallback.
    """
    if sam2 is None:
        from gar_app.tracking.classical import ClassicalTracker

        return ClassicalTracker(reason="no SAM 2 weights")
    import torch

    from gar_app.devices import default_device, torch_dtype
    from gar_app.tracking.sam2 import Sam2Tracker
    from gar_app.tracking.sam2_checkpoint import load_sam2

    device = device or default_device()
    return Sam2Tracker(load_sam2(sam2, device, torch_dtype(dtype) or torch.float32))
