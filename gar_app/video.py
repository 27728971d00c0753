"""Frames from video files (OpenCV): single frames to annotate, and lazily decoded clips to track.

Containers often lie about their length (truncated uploads, variable frame rates, missing
indexes), so the reported frame count is only a first guess: ``probe`` checks that the last
frame really decodes, and ``read_frame`` clamps to the frames that exist instead of failing.

Frame size is checked on opening, from the size the container reports, *before* any frame is
decoded: one decoded 16000 x 16000 frame alone takes 768 MB, so a huge video is refused in a
moment and with little memory.

``Clip`` is a video as a tracker sees it: a sample of its frames (an fps cap and a maximum
count, both settable), decoded one at a time when asked for and never all held at once, so
memory stays bounded whatever the clip's length.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from gar_app.errors import InputError

MAX_FRAME_PIXELS = 36_000_000  # 8K UHD (7680 x 4320, 33 MP) fits; larger frames are refused undecoded


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
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > MAX_FRAME_PIXELS:
        capture.release()
        raise _too_large(file, width, height)
    return capture, file


def _too_large(file: Path, width: int, height: int) -> InputError:
    return InputError(
        f"video {file.name} has {width}x{height} frames ({width * height / 1e6:.0f} megapixels); this app "
        f"reads frames up to {MAX_FRAME_PIXELS // 1_000_000} megapixels (8K): scale the video down first"
    )


def _fps(capture: cv2.VideoCapture) -> float:
    fps = capture.get(cv2.CAP_PROP_FPS)
    return float(fps) if math.isfinite(fps) and 0 < fps < 10_000 else 0.0


def _read_at(capture: cv2.VideoCapture, index: int) -> np.ndarray | None:
    if index < 0:
        return None
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    return frame if ok and frame is not None else None


def _count_upto(file: Path, limit: int | None = None) -> int:
    """Frames that decode from the start (stopping after ``limit``): the slow, honest count.

    It reads a fresh capture: some files cannot seek back to the start once read to the end
    (a one-frame video would count as none).
    """
    capture = cv2.VideoCapture(str(file))
    try:
        count = 0
        while (limit is None or count < limit) and capture.grab():
            count += 1
        return count
    finally:
        capture.release()


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
        if reported != 1 and (reported < 1 or _read_at(capture, reported - 1) is None):
            reported = max(1, _count_upto(file))  # the first frame decoded, so there is at least one
        fps = _fps(capture)
    finally:
        capture.release()
    height, width = first.shape[:2]
    if width * height > MAX_FRAME_PIXELS:  # the container did not say its frame size
        raise _too_large(file, width, height)
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
            wanted = _count_upto(file, wanted + 1) - 1
            frame = _read_at(capture, wanted)
        if frame is None:
            raise _no_frames(file)
    finally:
        capture.release()
    image = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return image, wanted, (wanted / fps if fps else None)


# ---------------------------------------------------------------- clips


def sample_indices(
    frame_count: int, fps: float, fps_cap: float | None = None, max_frames: int | None = None
) -> list[int]:
    """Which frames of a video a clip uses: at most ``fps_cap`` per second, at most ``max_frames``.

    With a cap below the video's rate, frames are taken every ``fps / fps_cap`` frames (so 30
    fps capped at 5 keeps frames 0, 6, 12, ...). When more than ``max_frames`` remain, that many
    are spread evenly over the whole video (first and last included), not cut off at the start.
    A video without a frame rate keeps all its frames (the cap cannot apply).
    """
    if fps_cap is not None and not (math.isfinite(fps_cap) and fps_cap > 0):
        raise InputError(f"the frame rate cap must be a positive number of frames per second, not {fps_cap}")
    if max_frames is not None and (isinstance(max_frames, bool) or max_frames < 1):
        raise InputError(f"the maximum number of frames must be 1 or more, not {max_frames}")
    step = fps / fps_cap if fps_cap and fps and fps > fps_cap else 1.0
    indices = np.unique(np.floor(np.arange(math.ceil(frame_count / step)) * step + 1e-9).astype(np.int64))
    indices = indices[indices < frame_count]
    if max_frames is not None and len(indices) > max_frames:
        indices = indices[np.round(np.linspace(0, len(indices) - 1, max_frames)).astype(np.int64)]
    return [int(i) for i in indices]


class Clip:
    """The sampled frames of a video, decoded on demand (RGB, H x W x 3 uint8, read-only).

    Frames are addressed by *position* in the sample (0 .. len - 1); ``indices[position]`` is
    the frame's index in the file and ``time(position)`` its time. ``frame`` reads one frame
    (the last few are cached, for scrubbing back and forth); ``frames`` streams many in either
    direction, reading forward through the file and, backwards, a bounded chunk at a time.
    Safe to share between threads (reads take turns).
    """

    CACHE = 4  # frames kept for ``frame``
    SKIP = 48  # up to this many frames ahead are decoded through rather than sought
    CHUNK_BYTES = 192 << 20  # at most this much decoded video is held when reading backwards

    def __init__(self, path: str | os.PathLike, fps_cap: float | None = None, max_frames: int | None = None):
        self.path = Path(path)
        self.info = probe(self.path)
        self.fps_cap = None if fps_cap is None else float(fps_cap)
        self.max_frames = max_frames
        self.indices = sample_indices(self.info.frame_count, self.info.fps, fps_cap, max_frames)
        self._capture, _ = _open(self.path)
        self._next = 0  # the file index the next plain read returns
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.indices)

    def __enter__(self) -> Clip:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._capture.release()
            self._cache.clear()

    @property
    def name(self) -> str:
        return self.info.name

    def time(self, position: int) -> float | None:
        """Seconds from the start to the frame at ``position`` (None without a frame rate)."""
        return self.indices[position] / self.info.fps if self.info.fps else None

    def position_of(self, index: int) -> int:
        """The position of the sampled frame nearest to file frame ``index``."""
        at = int(np.searchsorted(self.indices, index))
        if at == len(self.indices) or (at > 0 and index - self.indices[at - 1] <= self.indices[at] - index):
            return max(0, at - 1)
        return at

    def check_position(self, position: int) -> int:
        """The file index of the frame at ``position``; a clear error when there is no such position."""
        if isinstance(position, bool) or not 0 <= position < len(self.indices):
            raise InputError(f"frame position {position} is outside the clip's {len(self.indices)} frames")
        return self.indices[position]

    def _read(self, index: int) -> np.ndarray:
        """Decode file frame ``index``: read on when it is next or a little ahead, else seek."""
        capture = self._capture
        if not self._next <= index <= self._next + self.SKIP:
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            self._next = index
        while self._next < index and capture.grab():
            self._next += 1
        ok, frame = capture.read() if self._next == index else (False, None)
        if not ok or frame is None:
            self._next = -self.SKIP - 1  # unknown position: seek next time
            raise InputError(f"frame {index} of {self.info.name} cannot be decoded (the file may be damaged)")
        self._next = index + 1
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        rgb.setflags(write=False)
        return rgb

    def frame(self, position: int) -> np.ndarray:
        """The frame at ``position``."""
        index = self.check_position(position)
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
            rgb = self._read(index)
            self._cache[index] = rgb
            while len(self._cache) > self.CACHE:
                self._cache.popitem(last=False)
            return rgb

    def frames(self, positions: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """``(position, frame)`` for each position, in the order given, decoding as it goes.

        Runs that go backwards are read forwards in chunks of at most ``CHUNK_BYTES`` and
        handed out in reverse, so a backward pass decodes each frame once instead of seeking
        for every frame (seeking decodes from the previous keyframe each time).
        """
        order = [int(p) for p in positions]
        for p in order:
            self.check_position(p)
        chunk = max(1, min(64, self.CHUNK_BYTES // max(1, 3 * self.info.width * self.info.height)))
        i = 0
        while i < len(order):
            j = i + 1
            while j < len(order) and j - i < chunk and order[j] == order[j - 1] - 1:
                j += 1
            if j - i == 1:
                with self._lock:
                    rgb = self._read(self.indices[order[i]])
                yield order[i], rgb
            else:  # a backward run: decode it forwards, hand it out in reverse
                run = order[i:j][::-1]
                with self._lock:
                    decoded = [self._read(self.indices[p]) for p in run]
                for p, rgb in zip(reversed(run), reversed(decoded), strict=True):
                    yield p, rgb
                del decoded
            i = j
