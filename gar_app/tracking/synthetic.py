"""Clips with known answers, made on the fly for the tests and the benchmark.

``moving_shape_clip`` draws a textured shape that moves, turns and briefly leaves the frame
over a textured background, and returns the true mask of every frame, so a tracker's
masks can be scored frame by frame. ``write_clip`` encodes frames with OpenCV (lossy, like
real uploads), and ``write_mjpeg_avi`` wraps already-encoded JPEG frames into an AVI
without decoding anything, which is how a test gets a 16000 x 16000 video cheaply.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Pose:
    """Where the shape is on one frame: centre in pixels and rotation in degrees."""

    x: float
    y: float
    angle: float


def _noise_texture(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Smooth random colour blotches plus fine grain: texture that matchers and GrabCut meet in real footage."""
    coarse = rng.random((max(2, height // cell), max(2, width // cell), 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0.0, 0.06, (height, width, 3)).astype(np.float32)
    return np.clip(smooth + grain, 0.0, 1.0)


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A textured, mostly blue-green backdrop (RGB uint8)."""
    rng = np.random.default_rng(seed)
    texture = _noise_texture(rng, height, width, 12)
    tint = np.array([0.15, 0.55, 0.65], np.float32)
    return np.clip(255 * (0.35 * tint + 0.65 * texture * tint * 1.4), 0, 255).astype(np.uint8)


ORANGE, PURPLE = (0.95, 0.45, 0.15), (0.6, 0.2, 0.85)


def sprite(
    size: int, seed: int = 1, colour: tuple[float, float, float] = ORANGE
) -> tuple[np.ndarray, np.ndarray]:
    """The shape at rest: a textured, lopsided blob (so a turn is visible) and its mask."""
    rng = np.random.default_rng(seed)
    texture = _noise_texture(rng, size, size, 6)
    stripes = (np.indices((size, size)).sum(axis=0) // 5 % 2).astype(np.float32)[..., None]
    warm = np.array(colour, np.float32)
    rgb = np.clip(255 * (warm * (0.55 + 0.3 * texture) + 0.15 * stripes), 0, 255).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    c = size / 2
    cv2.ellipse(mask, (round(c), round(c)), (round(size * 0.45), round(size * 0.26)), 0, 0, 360, 1, -1)
    cv2.circle(mask, (round(c + size * 0.22), round(c - size * 0.2)), round(size * 0.17), 1, -1)
    return rgb, mask.astype(bool)


def path_leaving_right(frames: int, width: int, height: int, reach: float, out_frames: int = 3) -> list[Pose]:
    """Across the frame and out to the right (wholly out once the centre is ``reach`` px past the
    edge), out for a few frames, back in, turning all along."""
    half = frames // 2
    far = width + reach
    poses = []
    for i in range(frames):
        if i <= half - out_frames // 2:
            t = i / max(1, half - out_frames // 2)
            x = 0.25 * width + t * (far - 0.25 * width)
        elif i < half + (out_frames + 1) // 2:
            x = far
        else:
            t = (i - half - (out_frames + 1) // 2) / max(1, frames - 1 - half - (out_frames + 1) // 2)
            x = far - t * (far - 0.45 * width)
        y = height * (0.5 + 0.18 * math.sin(2 * math.pi * i / frames))
        poses.append(Pose(x, y, 4.0 * i))
    return poses


def wandering_path(frames: int, width: int, height: int, fps: float) -> list[Pose]:
    """A slow loop around the frame (about 40 s a lap), turning: for long clips."""
    poses = []
    for i in range(frames):
        t = 2 * math.pi * i / (40 * fps)
        poses.append(Pose(width * (0.5 + 0.3 * math.sin(t)), height * (0.5 + 0.3 * math.sin(2 * t)), 0.5 * i))
    return poses


def render(
    base: np.ndarray, shape_rgb: np.ndarray, shape_mask: np.ndarray, pose: Pose
) -> tuple[np.ndarray, np.ndarray]:
    """One frame (RGB) and the shape's true mask on it (empty when the shape is outside).

    Only the shape's box is drawn into, so full-HD frames take milliseconds.
    """
    height, width = base.shape[:2]
    size = shape_mask.shape[0]
    reach = size * 0.75  # half the sprite's diagonal: the shape stays inside at any turn
    x0, y0 = max(0, math.floor(pose.x - reach)), max(0, math.floor(pose.y - reach))
    x1, y1 = min(width, math.ceil(pose.x + reach)), min(height, math.ceil(pose.y + reach))
    frame, truth = base.copy(), np.zeros((height, width), bool)
    if x1 <= x0 or y1 <= y0:
        return frame, truth
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), pose.angle, 1.0)
    matrix[:, 2] += (pose.x - size / 2 - x0, pose.y - size / 2 - y0)
    box = (x1 - x0, y1 - y0)
    alpha = cv2.warpAffine(shape_mask.astype(np.float32), matrix, box, flags=cv2.INTER_LINEAR)
    colour = cv2.warpAffine(shape_rgb, matrix, box, flags=cv2.INTER_LINEAR)
    a = alpha[..., None]
    frame[y0:y1, x0:x1] = np.clip(base[y0:y1, x0:x1] * (1 - a) + colour * a + 0.5, 0, 255).astype(np.uint8)
    truth[y0:y1, x0:x1] = alpha >= 0.5
    return frame, truth


def long_clip_frames(
    minutes: float, width: int = 1920, height: int = 1080, fps: float = 5.0, truth: bool = False
) -> Iterator[np.ndarray] | Iterator[tuple[np.ndarray, np.ndarray]]:
    """Frames of a long clip (a large textured shape wandering and turning), made one at a time;
    with ``truth``, (frame, the shape's mask) pairs."""
    base = background(width, height, 0)
    shape_rgb, shape_mask = sprite(round(0.25 * height), 1)
    for pose in wandering_path(round(minutes * 60 * fps), width, height, fps):
        frame, mask = render(base, shape_rgb, shape_mask, pose)
        yield (frame, mask) if truth else frame


@dataclass
class SyntheticClip:
    frames: list[np.ndarray]  # RGB uint8
    truth: list[np.ndarray]  # bool masks, empty where the shape is outside the frame
    poses: list[Pose]
    fps: float
    companion: list[np.ndarray] | None = None  # the second shape's masks, when there is one


def moving_shape_clip(
    frames: int = 48,
    width: int = 192,
    height: int = 144,
    shape_size: int = 56,
    fps: float = 12.0,
    seed: int = 0,
    companion: bool = False,
) -> SyntheticClip:
    """A textured shape moving, turning and briefly leaving the frame over a textured background.

    With ``companion``, a smaller purple shape also turns slowly in the bottom-left corner,
    away from the first one's path (a second object to mark, or to switch a region to).
    """
    base = background(width, height, seed)
    shape_rgb, shape_mask = sprite(shape_size, seed + 1)
    poses = path_leaving_right(frames, width, height, reach=0.6 * shape_size)
    rendered = [render(base, shape_rgb, shape_mask, pose) for pose in poses]
    if not companion:
        return SyntheticClip([f for f, _ in rendered], [m for _, m in rendered], poses, fps)
    other_rgb, other_mask = sprite(round(0.6 * shape_size), seed + 2, PURPLE)
    frames_out, other = [], []
    for i, (frame, _) in enumerate(rendered):
        turn = 2 * math.pi * i / max(1, frames)
        pose = Pose(0.14 * width + 3 * math.cos(turn), 0.84 * height + 3 * math.sin(turn), -3.0 * i)
        drawn, mask = render(frame, other_rgb, other_mask, pose)
        frames_out.append(drawn)
        other.append(mask)
    return SyntheticClip(frames_out, [m for _, m in rendered], poses, fps, other)


def write_clip(path: str | Path, frames: Iterable[np.ndarray], fps: float, codec: str = "mp4v") -> Path:
    """Encode RGB frames with OpenCV (``mp4v`` for .mp4, ``MJPG`` for .avi, ``VP80`` for .webm)."""
    path = Path(path)
    writer = None
    try:
        for frame in frames:
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
                if not writer.isOpened():
                    raise RuntimeError(f"this OpenCV build cannot write {codec} into {path.suffix}")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()
    return path


def _chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, body: bytes) -> bytes:
    return _chunk(b"LIST", kind + body)


def write_mjpeg_avi(path: str | Path, jpegs: Sequence[bytes], width: int, height: int, fps: int = 5) -> Path:
    """An AVI (RIFF, Motion-JPEG) around ready-made JPEG frames, written without decoding them.

    The headers carry ``width`` x ``height`` as every AVI does; OpenCV/FFmpeg report that size
    on opening, before any frame is decoded.
    """
    count = len(jpegs)
    biggest = max(len(j) for j in jpegs)
    avih = struct.pack(
        "<14I", 1_000_000 // fps, biggest * fps, 0, 0x10, count, 0, 1, biggest, width, height, 0, 0, 0, 0
    )
    strh = struct.pack(
        "<4s4sIHHIIIIIIIIhhhh",
        b"vids",
        b"MJPG",
        0,
        0,
        0,
        0,
        1,
        fps,
        0,
        count,
        biggest,
        0xFFFFFFFF,
        0,
        0,
        0,
        min(width, 32767),
        min(height, 32767),
    )
    strf = struct.pack("<IiiHH4sIiiII", 40, width, height, 1, 24, b"MJPG", width * height * 3, 0, 0, 0, 0)
    header = _list(
        b"hdrl", _chunk(b"avih", avih) + _list(b"strl", _chunk(b"strh", strh) + _chunk(b"strf", strf))
    )
    movi_body = b""
    index = b""
    for jpeg in jpegs:
        index += struct.pack("<4sIII", b"00dc", 0x10, 4 + len(movi_body), len(jpeg))
        movi_body += _chunk(b"00dc", jpeg)
    body = b"AVI " + header + _list(b"movi", movi_body) + _chunk(b"idx1", index)
    path = Path(path)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path
