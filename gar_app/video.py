"""Frames from video files (OpenCV), so a video frame can be annotated like an image.

Containers often lie about their length (truncated uploads, variable frame rates, missing
indexes), so the reported frame count is only a first guess: ``probe`` checks that the last
frame really decodes, and ``read_frame`` clamps to the frames that exist instead of failing.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from gar_app.errors import InputError


@dataclass(frozen=True)
class VideoInfo:
    name: str  # file name, as shown to people and written into exports
    frame_count: int  # frames that decode
    fps: float  # 0.0 when the file gives no usable frame rate
    duration_s: float  # frame_count / fps, 0.0 without a frame rate
    width: int  # of decoded frames
    height: int


def _open(path: str | os.PathLike) -> tuple[cv2.VideoCapture, Path]:
    file = Path(path)
    if not file.exists():
        raise InputError(f"video file not found: {file}")
    if file.is_dir():
        raise InputError(f"video path is a folder, not a file: {file}")
    if file.stat().st_size == 0:
        raise InputError(f"video file {file.name} is empty (0 bytes)")
    capture = cv2.VideoCapture(str(file))
    if not capture.isOpened():
        capture.release()
        raise InputError(f"cannot read video {file.name}: not a video format this app can decode")
    return capture, file


def _fps(capture: cv2.VideoCapture) -> float:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if math.isfinite(fps) and 0 < fps < 10_000 else 0.0


def _read_at(capture: cv2.VideoCapture, index: int) -> np.ndarray | None:
    if index < 0:
        return None
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    return frame if ok and frame is not None else None


def _count_upto(capture: cv2.VideoCapture, limit: int | None = None) -> int:
    """Frames that decode from the start (stopping after ``limit``): the slow, honest count."""
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    count = 0
    while (limit is None or count < limit) and capture.grab():
        count += 1
    return count


def _no_frames(file: Path) -> InputError:
    return InputError(f"video {file.name} has no frames that can be decoded")


def probe(path: str | os.PathLike) -> VideoInfo:
    """Name, real frame count, frame rate, duration and frame size of a video file."""
    capture, file = _open(path)
    try:
        first = _read_at(capture, 0)
        if first is None:
            raise _no_frames(file)
        reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if reported < 1 or _read_at(capture, reported - 1) is None:
            reported = _count_upto(capture)
        fps = _fps(capture)
    finally:
        capture.release()
    height, width = first.shape[:2]
    return VideoInfo(file.name, reported, fps, reported / fps if fps else 0.0, width, height)


def read_frame(
    path: str | os.PathLike, index: int | None = None, time_s: float | None = None
) -> tuple[Image.Image, int, float | None]:
    """One frame as an RGB image, chosen by index or by time (default: the first).

    Returns the image, the index of the frame actually read and its time (index / fps, None
    without a frame rate). Past the end, the last frame that decodes is returned.
    """
    if index is not None and time_s is not None:
        raise InputError("choose a video frame by index or by time, not both")
    if index is not None and (isinstance(index, bool) or index < 0):
        raise InputError(f"frame index must be 0 or more, not {index}")
    if time_s is not None and not (math.isfinite(time_s) and time_s >= 0):
        raise InputError(f"frame time must be 0 seconds or more, not {time_s}")
    capture, file = _open(path)
    try:
        fps = _fps(capture)
        if time_s is not None:
            if not fps:
                raise InputError(f"video {file.name} has no frame rate; choose the frame by index")
            index = int(math.floor(time_s * fps + 1e-6))
        wanted = int(index or 0)
        reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if reported > 0:
            wanted = min(wanted, reported - 1)
        frame = _read_at(capture, wanted)
        if frame is None:  # the container overstated its length: find the real last frame
            wanted = _count_upto(capture, wanted + 1) - 1
            frame = _read_at(capture, wanted)
        if frame is None:
            raise _no_frames(file)
    finally:
        capture.release()
    image = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return image, wanted, (wanted / fps if fps else None)
