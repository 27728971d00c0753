"""A short clip of the tracked regions drawn on the video, to watch or download.

WebM with VP8, which every current browser plays and this OpenCV build writes (H.264 needs
an encoder OpenCV's wheels lack; MPEG-4 part 2 ``mp4v`` does not play in browsers).
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from gar_app.errors import InputError
from gar_app.regions import render_overlay
from gar_app.tracking.describe import spread
from gar_app.tracking.tracks import Progress, VideoTracks


def render_preview(
    tracks: VideoTracks,
    path: str | Path,
    max_frames: int = 300,
    max_side: int = 960,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Write the clip's frames with every region's overlay to ``path`` (``.webm``).

    At most ``max_frames`` frames (spread over the clip) at most ``max_side`` px on the long
    side, played at the rate that keeps the clip's real duration. Returns the path.
    """
    path = Path(path)
    if path.suffix.lower() != ".webm":
        raise InputError(f"the preview is written as WebM; name it something.webm, not {path.name}")
    clip = tracks.clip
    positions = spread(range(len(clip)), max_frames)
    width, height = clip.info.width, clip.info.height
    scale = min(1.0, max_side / max(width, height))
    size = (max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2))
    duration = clip.info.duration_s or len(positions) / 10
    rate = max(1.0, len(positions) / duration) if duration else 10.0
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), rate, size)
    if not writer.isOpened():
        raise InputError("this OpenCV build cannot write WebM (VP8) video")
    try:
        for done, (position, frame) in enumerate(clip.frames(positions), start=1):
            if cancel is not None and cancel.is_set():
                break
            drawn = render_overlay(np.array(frame), tracks.regions_at(position))
            if (drawn.shape[1], drawn.shape[0]) != size:  # scaled down, or cut to even sides for VP8
                drawn = cv2.resize(drawn, size, interpolation=cv2.INTER_AREA)
            writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            if progress is not None:
                progress(done, len(positions))
    finally:
        writer.release()
    return path
