"""The video document (same ``"format": "gar-app/1"``, no ``image``): a tracked video.

A tracked video is one document: the video's identity and frame sampling, and per region its
keyframes, a mask (COCO RLE, or null where the region is absent) for every processed frame,
and the captions pinned to frames. Masks stay RLE in memory (a long clip's tracks decoded
would take gigabytes); ``TrackFrame.mask_array`` decodes one when needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gar_app.errors import InputError
from gar_app.formats import FORMAT
from gar_app.formats.jsonio import COLOUR, bad, dump, get, parse_json
from gar_app.images import max_image_pixels
from gar_app.regions import SOURCES
from gar_app.rle import checked_rle, rle_to_mask
from gar_app.tags import tag


@dataclass
class VideoSource:
    """The video a tracking document was made on, and which of its frames were processed."""

    name: str
    width: int
    height: int
    fps: float | None  # the file's frame rate; times are index / fps (None: no frame rate, no times)
    frame_count: int  # frames in the file
    sha256: str  # of the file's bytes
    fps_cap: float | None = None  # the sampling the frames were chosen with
    max_frames: int | None = None


@dataclass
class TrackFrame:
    index: int  # frame index in the file
    time: float | None
    mask: dict[str, Any] | None  # COCO RLE with text counts; None where the region is absent

    def mask_array(self) -> np.ndarray | None:
        return None if self.mask is None else rle_to_mask(self.mask)


@dataclass
class TrackKeyframe:
    index: int  # frame index in the file where the region was marked
    time: float | None
    source: str  # one of SOURCES


@dataclass
class TrackCaption:
    index: int
    time: float | None
    text: str


@dataclass
class TrackData:
    """One region through the video; ``tag`` derives from ``index``."""

    index: int
    colour: str
    anchor: int  # frame index of the region's first keyframe
    keyframes: list[TrackKeyframe]
    frames: list[TrackFrame]  # one per processed frame, in order
    captions: list[TrackCaption] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return tag(self.index)


@dataclass
class VideoDocument:
    video: VideoSource
    frames: int  # how many frames were processed (each region lists them all)
    regions: list[TrackData] = field(default_factory=list)


def frame_time(index: int, fps: float | None) -> float | None:
    """A frame's time in seconds, exactly as the documents write it."""
    return index / fps if fps else None


def is_video_document(data: Any) -> bool:
    """Whether parsed JSON is the video form (a ``video`` with ``frames`` and no ``image``)."""
    return isinstance(data, dict) and "image" not in data and isinstance(data.get("video"), dict)


def video_to_dict(doc: VideoDocument) -> dict[str, Any]:
    video = doc.video
    return {
        "format": FORMAT,
        "video": {
            "name": video.name,
            "width": video.width,
            "height": video.height,
            "fps": video.fps,
            "frames": doc.frames,
            "frame_count": video.frame_count,
            "sha256": video.sha256,
            "sampling": {"fps_cap": video.fps_cap, "max_frames": video.max_frames},
        },
        "regions": [
            {
                "index": r.index,
                "tag": r.tag,
                "colour": r.colour.lower(),  # one case in both document kinds; either is read
                "anchor": r.anchor,
                "keyframes": [{"index": k.index, "time": k.time, "source": k.source} for k in r.keyframes],
                "captions": [{"index": c.index, "time": c.time, "text": c.text} for c in r.captions],
                "frames": [{"index": f.index, "time": f.time, "mask": f.mask} for f in r.frames],
            }
            for r in doc.regions
        ],
    }


def video_to_json(doc: VideoDocument) -> str:
    return dump(video_to_dict(doc)) + "\n"


def track_summary(doc: VideoDocument) -> dict[str, Any]:
    """The short form ``gar-app track`` writes: the video, and per region its tag and frames."""
    video = doc.video
    return {
        "video": {
            "name": video.name,
            "width": video.width,
            "height": video.height,
            "fps": video.fps,
            "frames": doc.frames,
        },
        "regions": [
            {"tag": r.tag, "frames": [{"index": f.index, "time": f.time, "mask": f.mask} for f in r.frames]}
            for r in doc.regions
        ],
    }


def _read_time(data: dict, where: str, index: int, fps: float | None) -> float | None:
    time_s = get(data, "time", "number", where, optional=True)
    expected = frame_time(index, fps)
    if (time_s is None) != (expected is None) or (
        expected is not None and abs(time_s - expected) > 1e-6 * (1 + abs(expected))
    ):
        raise bad(f"{where}.time is {time_s} but frame {index} at {fps} fps is at {expected}")
    return expected


def _read_video(data: Any) -> tuple[VideoSource, int]:
    if not isinstance(data, dict):
        raise bad("video must be an object")
    width, height = get(data, "width", "int", "video"), get(data, "height", "int", "video")
    if width < 1 or height < 1 or width * height > max_image_pixels():
        raise bad(f"video frame size {width}x{height} is empty or larger than the app accepts")
    fps = get(data, "fps", "number", "video", optional=True)
    if fps is not None and fps <= 0:
        raise bad(f"video.fps must be positive or null, not {fps}")
    frames, total = get(data, "frames", "int", "video"), get(data, "frame_count", "int", "video")
    if not 0 <= frames <= total:
        raise bad(f"video.frames ({frames}) must be between 0 and video.frame_count ({total})")
    sha = get(data, "sha256", "str", "video")
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise bad("video.sha256 must be 64 lower-case hex digits")
    sampling = get(data, "sampling", "dict", "video")
    cap = get(sampling, "fps_cap", "number", "video.sampling", optional=True)
    most = get(sampling, "max_frames", "int", "video.sampling", optional=True)
    if (cap is not None and cap <= 0) or (most is not None and most < 1):
        raise bad("video.sampling.fps_cap must be positive and max_frames at least 1 (or null)")
    source = VideoSource(
        get(data, "name", "str", "video"),
        width,
        height,
        None if fps is None else float(fps),
        total,
        sha,
        None if cap is None else float(cap),
        most,
    )
    return source, frames


def _read_rle(value: Any, where: str, height: int, width: int) -> dict[str, Any] | None:
    """A frame's mask, checked and kept as RLE text (null where the region is absent)."""
    if value is None:
        return None
    try:
        return checked_rle(value, where, (height, width), "each video frame")
    except InputError as error:
        raise bad(str(error)) from None


def _read_track(data: Any, where: str, video: VideoSource, indices: list[int] | None) -> TrackData:
    if not isinstance(data, dict):
        raise bad(f"{where} must be an object")
    index = get(data, "index", "int", where)
    if index < 0 or get(data, "tag", "str", where) != tag(index):
        raise bad(f"{where}.tag is {data['tag']!r} but its index {index} makes it {tag(index)!r}")
    colour = get(data, "colour", "str", where)
    if not COLOUR.fullmatch(colour):
        raise bad(f"{where}.colour must be '#rrggbb', not {colour!r}")
    frames = []
    for i, item in enumerate(get(data, "frames", "list", where)):
        fw = f"{where}.frames[{i}]"
        if not isinstance(item, dict):
            raise bad(f"{fw} must be an object")
        at = get(item, "index", "int", fw)
        if "mask" not in item:
            raise bad(f"{fw} has no 'mask'")
        frames.append(
            TrackFrame(
                at,
                _read_time(item, fw, at, video.fps),
                _read_rle(item["mask"], f"{fw}.mask", video.height, video.width),
            )
        )
    seen = [f.index for f in frames]
    if indices is not None and seen != indices:
        raise bad(f"{where}.frames are not the same frames as the first region's")
    if seen != sorted(set(seen)) or (seen and (seen[0] < 0 or seen[-1] >= video.frame_count)):
        raise bad(
            f"{where}.frames must be distinct frame indices in order, within the video's {video.frame_count}"
        )
    masked = {f.index for f in frames if f.mask is not None}
    keyframes = []
    for i, item in enumerate(get(data, "keyframes", "list", where)):
        kw = f"{where}.keyframes[{i}]"
        if not isinstance(item, dict):
            raise bad(f"{kw} must be an object")
        at = get(item, "index", "int", kw)
        source = get(item, "source", "str", kw)
        if source not in SOURCES:
            raise bad(f"{kw}.source must be one of {', '.join(SOURCES)}, not {source!r}")
        if at not in masked:
            raise bad(f"{kw} is frame {at}, which has no mask of {tag(index)}")
        keyframes.append(TrackKeyframe(at, _read_time(item, kw, at, video.fps), source))
    marked = [k.index for k in keyframes]
    if not marked or marked != sorted(set(marked)):
        raise bad(f"{where}.keyframes must list at least one frame, each once, in order")
    anchor = get(data, "anchor", "int", where)
    if anchor not in marked:
        raise bad(f"{where}.anchor ({anchor}) must be one of its keyframes {marked}")
    captions = []
    for i, item in enumerate(get(data, "captions", "list", where)):
        cw = f"{where}.captions[{i}]"
        if not isinstance(item, dict):
            raise bad(f"{cw} must be an object")
        at = get(item, "index", "int", cw)
        if at not in seen:
            raise bad(f"{cw} is on frame {at}, which is not one of the processed frames")
        captions.append(TrackCaption(at, _read_time(item, cw, at, video.fps), get(item, "text", "str", cw)))
    return TrackData(index, colour, anchor, keyframes, frames, captions)


def video_from_dict(data: Any) -> VideoDocument:
    """Check and read the video form; any problem is one ``InputError`` sentence."""
    if not isinstance(data, dict):
        raise bad("the top level must be a JSON object")
    if data.get("format") != FORMAT:
        raise bad(f"format is {data.get('format')!r}; this app reads {FORMAT!r}")
    if not is_video_document(data):
        raise bad("this is not a tracked-video document (it has an 'image', or no 'video' object)")
    video, count = _read_video(data["video"])
    regions: list[TrackData] = []
    indices: list[int] | None = None  # the first region's frames; every region lists the same
    for i, item in enumerate(get(data, "regions", "list", "document")):
        regions.append(_read_track(item, f"regions[{i}]", video, indices))
        indices = [f.index for f in regions[0].frames]
    order = [r.index for r in regions]
    if order != sorted(set(order)):
        raise bad(f"region indices must be unique and ascending, not {order}")
    if indices is not None and len(indices) != count:
        raise bad(f"video.frames says {count} frames were processed but the regions list {len(indices)}")
    return VideoDocument(video, count, regions)


def video_from_json(text: str | bytes) -> VideoDocument:
    return video_from_dict(parse_json(text))
