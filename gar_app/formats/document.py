"""The image document (``"format": "gar-app/1"``): one image or video frame, its regions
and the dialogue about them.

One document per image or video frame: the image's identity, its regions (how each was made,
its mask as COCO RLE, its caption) and the dialogue about them. ``from_json`` restores it
exactly (masks bit-identical) or raises ``InputError`` saying what is wrong, because export
files get hand-edited, truncated and mixed up. The dataclasses here are plain data so this
module does not depend on how the app keeps regions in memory.

Image identity: ``sha256`` hashes the original file's bytes when the image came from a file
(``sha256_of: "file"``; it finds that exact file again) and otherwise the decoded 8-bit RGB
pixels, row-major H x W x 3 (``"pixels"``; video frames and in-memory images have no file).

A user turn may carry ``masks`` (tag -> RLE): the masks it was asked about where they differ
from the document's regions (the region was edited or deleted afterwards and the conversation
went on). Every other tag a turn mentions was about the region of that tag in ``regions``.
Files without ``masks`` read as before.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from gar_app.conversation import Turn
from gar_app.errors import InputError
from gar_app.formats import FORMAT
from gar_app.formats.caption_source import CaptionSource, read_caption_source
from gar_app.formats.jsonio import (
    COLOUR,
    Point,
    as_number,
    as_point,
    bad,
    dump,
    get,
    is_int,
    parse_json,
    point_list,
)
from gar_app.images import ImageSource, check_file_size, load_image, mask_box, max_image_pixels
from gar_app.regions import SOURCES
from gar_app.rle import mask_to_rle, rle_to_mask
from gar_app.tags import tag, tags_in

ROLES = ("user", "assistant")


@dataclass
class ImageInfo:
    name: str
    width: int
    height: int
    sha256: str
    sha256_of: str = "file"  # "file": the file's bytes; "pixels": decoded RGB bytes


@dataclass
class VideoFrame:
    name: str  # the video file's name
    frame_index: int
    time_s: float | None  # None when the video has no usable frame rate


@dataclass(eq=False)
class ExportedRegion:
    """One region; ``tag``, ``box`` and ``area`` derive from ``index`` and ``mask``."""

    index: int
    colour: str  # "#rrggbb"
    source: str  # how it was made: one of SOURCES
    mask: np.ndarray  # bool, H x W
    caption: str = ""
    points: list[Point] = field(default_factory=list)  # clicks in pixels, with labels
    labels: list[int] = field(default_factory=list)  # 1 = inside, 0 = outside
    prompt_box: tuple[float, float, float, float] | None = None  # the dragged box, xyxy pixels
    scribble: list[Point] = field(default_factory=list)
    mask_name: str | None = None  # file name of an uploaded mask
    caption_source: CaptionSource | None = None  # who wrote the caption; None: not recorded

    def __post_init__(self) -> None:
        self.mask = np.ascontiguousarray(self.mask, dtype=bool)
        self.points = [as_point(p) for p in self.points]
        self.labels = [int(v) for v in self.labels]
        self.scribble = [as_point(p) for p in self.scribble]
        if self.prompt_box is not None:
            self.prompt_box = tuple(as_number(v) for v in self.prompt_box)  # type: ignore[assignment]

    @property
    def tag(self) -> str:
        return tag(self.index)

    @property
    def box(self) -> tuple[int, int, int, int] | None:
        """Inclusive pixel box of the mask, None when the mask is empty."""
        return mask_box(self.mask)

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExportedRegion):
            return NotImplemented
        same = all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self) if f.name != "mask")
        return same and self.mask.shape == other.mask.shape and bool(np.array_equal(self.mask, other.mask))


@dataclass
class AnnotationDocument:
    image: ImageInfo
    regions: list[ExportedRegion] = field(default_factory=list)
    dialogue: list[Turn] = field(default_factory=list)
    video: VideoFrame | None = None


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pixels_sha256(image: ImageSource) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(load_image(image))).tobytes()).hexdigest()


def image_info(source: ImageSource, name: str | None = None) -> ImageInfo:
    """Identity of the image masks refer to: file hash for paths, pixel hash otherwise."""
    image = load_image(source)
    if isinstance(source, str | os.PathLike):
        return ImageInfo(name or Path(source).name, image.width, image.height, file_sha256(source), "file")
    return ImageInfo(name or "image", image.width, image.height, pixels_sha256(image), "pixels")


def check_image(document: ImageInfo, loaded: ImageInfo, image: ImageSource) -> None:
    """Refuse to restore a document onto another image than the one it was made on.

    ``loaded`` is the identity the workspace recorded for its image, ``image`` that image. A
    file hash is compared with a file hash and a pixel hash with a pixel hash (the loaded
    image's pixels are hashed when it came from a file). A document that knows its image only
    by file hash cannot be checked against an image that has no file (pasted, a video frame):
    that is refused too, since a same-sized other image would otherwise get its masks.
    """
    size = f"{document.width}x{document.height}"
    wrong = f"this file annotates {document.name} ({size})"
    if (document.width, document.height) != (loaded.width, loaded.height):
        raise InputError(
            f"{wrong}, not the loaded {loaded.width}x{loaded.height} image; load that image first, then import"
        )
    if document.sha256_of == loaded.sha256_of:
        same = document.sha256 == loaded.sha256
    elif document.sha256_of == "pixels":
        same = document.sha256 == pixels_sha256(image)
    else:
        raise InputError(
            f"{wrong} and identifies it by its file, but the loaded image did not come from a file; "
            f"open {document.name} itself, then import"
        )
    if not same:
        differs = "its file differs" if document.sha256_of == "file" else "its pixels differ"
        raise InputError(
            f"{wrong}; the loaded image {loaded.name} has that size but {differs} (sha256); "
            "load that image first, then import"
        )


def _region_dict(region: ExportedRegion) -> dict[str, Any]:
    box = region.box
    data = {
        "index": region.index,
        "tag": region.tag,
        "colour": region.colour.lower(),  # one case in both document kinds; either is read
        "caption": region.caption,
        "prompt": {
            "source": region.source,
            "points": [list(p) for p in region.points],
            "labels": list(region.labels),
            "box": None if region.prompt_box is None else list(region.prompt_box),
            "scribble": [list(p) for p in region.scribble],
            "mask_name": region.mask_name,
        },
        "box": None if box is None else list(box),
        "area": region.area,
        "mask": mask_to_rle(region.mask),
    }
    if region.caption_source is not None:  # optional: files without it read as before
        data["caption_source"] = region.caption_source.to_dict()
    return data


def to_dict(doc: AnnotationDocument) -> dict[str, Any]:
    image = doc.image
    return {
        "format": FORMAT,
        "image": {
            "name": image.name,
            "width": image.width,
            "height": image.height,
            "sha256": image.sha256,
            "sha256_of": image.sha256_of,
        },
        "video": None
        if doc.video is None
        else {"name": doc.video.name, "frame_index": doc.video.frame_index, "time_s": doc.video.time_s},
        "regions": [_region_dict(r) for r in doc.regions],
        "dialogue": [_turn_dict(t) for t in doc.dialogue],
    }


def _turn_dict(turn: Turn) -> dict[str, Any]:
    """A dialogue turn; ``masks`` only when the turn saw masks other than the exported regions'."""
    data = {
        "role": turn.role,
        "text": turn.text,
        "tags": turn.tags,
        "model": turn.model,
        "decoding": dict(turn.decoding),
        "time": turn.time,
    }
    if turn.masks:
        data["masks"] = {name: dict(rle) for name, rle in sorted(turn.masks.items())}
    return data


def to_json(doc: AnnotationDocument) -> str:
    return dump(to_dict(doc)) + "\n"


def _read_region(data: Any, where: str, height: int, width: int) -> ExportedRegion:
    if not isinstance(data, dict):
        raise bad(f"{where} must be an object")
    index = get(data, "index", "int", where)
    if get(data, "tag", "str", where) != tag(index):
        raise bad(f"{where}.tag is {data['tag']!r} but its index {index} makes it {tag(index)!r}")
    colour = get(data, "colour", "str", where)
    if not COLOUR.fullmatch(colour):
        raise bad(f"{where}.colour must be '#rrggbb', not {colour!r}")
    prompt = get(data, "prompt", "dict", where)
    pw = f"{where}.prompt"
    source = get(prompt, "source", "str", pw)
    if source not in SOURCES:
        raise bad(f"{pw}.source must be one of {', '.join(SOURCES)}, not {source!r}")
    points = point_list(get(prompt, "points", "list", pw), f"{pw}.points")
    labels = get(prompt, "labels", "list", pw)
    if len(labels) != len(points) or not all(is_int(v) and v in (0, 1) for v in labels):
        raise bad(f"{pw}.labels must hold one 0 or 1 per point")
    box = get(prompt, "box", "list", pw, optional=True)
    box = None if box is None else point_list([box], f"{pw}.box", size=4)[0]
    scribble = point_list(get(prompt, "scribble", "list", pw), f"{pw}.scribble")
    needed = {"points": points, "box": box, "scribble": scribble}.get(source, True)
    if not needed:
        raise bad(f"{where} was made from {source} but its prompt has none")
    mask = _read_mask(get(data, "mask", "dict", where), f"{where}.mask", height, width)
    region = ExportedRegion(
        index,
        colour,
        source,
        mask,
        get(data, "caption", "str", where),
        points,
        list(labels),
        box,
        scribble,
        get(prompt, "mask_name", "str", pw, optional=True),
        read_caption_source(data["caption_source"], f"{where}.caption_source")
        if data.get("caption_source") is not None
        else None,
    )
    expected_box = None if region.box is None else list(region.box)
    if (
        get(data, "box", "list", where, optional=True) != expected_box
        or get(data, "area", "int", where) != region.area
    ):
        raise bad(f"{where}.box or .area does not match its mask (box {expected_box}, area {region.area})")
    return region


def _read_turn(data: Any, where: str) -> Turn:
    if not isinstance(data, dict):
        raise bad(f"{where} must be an object")
    role = get(data, "role", "str", where)
    if role not in ROLES:
        raise bad(f"{where}.role must be 'user' or 'assistant', not {role!r}")
    turn = Turn(
        role,
        get(data, "text", "str", where),
        get(data, "time", "str", where),
        get(data, "model", "str", where, optional=True),
        get(data, "decoding", "dict", where),
    )
    try:
        stamp = datetime.fromisoformat(turn.time.replace("Z", "+00:00"))
    except ValueError:
        stamp = None
    if stamp is None or stamp.utcoffset() is None or stamp.utcoffset().total_seconds() != 0:
        raise bad(f"{where}.time must be an ISO 8601 UTC time like 2025-06-01T12:00:00Z, not {turn.time!r}")
    if get(data, "tags", "list", where) != turn.tags:
        raise bad(f"{where}.tags is {data['tags']} but its text mentions {turn.tags}")
    return turn


def _read_mask(rle: Any, where: str, height: int, width: int) -> np.ndarray:
    """A mask of the image's size from RLE; a wrong size is refused before decoding."""
    try:
        return rle_to_mask(rle, where, (height, width))
    except InputError as error:
        raise bad(str(error)) from None


def _read_turn_masks(data: dict, where: str, height: int, width: int) -> dict[str, dict[str, Any]]:
    """The optional ``masks`` of a turn (gar-app/1 files without it are read as before)."""
    masks = get(data, "masks", "dict", where, optional=True) if "masks" in data else None
    checked = {}
    for name, rle in (masks or {}).items():
        if name not in tags_in(name) or name not in tags_in(data["text"]):
            raise bad(f"{where}.masks names {name!r}, which is not a tag its text mentions")
        checked[name] = mask_to_rle(_read_mask(rle, f"{where}.masks[{name!r}]", height, width))
    return checked


def from_dict(data: Any) -> AnnotationDocument:
    if not isinstance(data, dict):
        raise bad("the top level must be a JSON object")
    fmt = data.get("format")
    if fmt != FORMAT:
        raise bad(f"format is {fmt!r}; this app reads {FORMAT!r}")
    img = get(data, "image", "dict", "document")
    width, height = get(img, "width", "int", "image"), get(img, "height", "int", "image")
    if width < 1 or height < 1 or width * height > max_image_pixels():
        raise bad(f"image size {width}x{height} is empty or larger than the app accepts")
    sha = get(img, "sha256", "str", "image")
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise bad("image.sha256 must be 64 lower-case hex digits")
    sha_of = get(img, "sha256_of", "str", "image")
    if sha_of not in ("file", "pixels"):
        raise bad(f"image.sha256_of must be 'file' or 'pixels', not {sha_of!r}")
    info = ImageInfo(get(img, "name", "str", "image"), width, height, sha, sha_of)
    video = get(data, "video", "dict", "document", optional=True)
    frame = None
    if video is not None:
        frame = VideoFrame(
            get(video, "name", "str", "video"),
            get(video, "frame_index", "int", "video"),
            get(video, "time_s", "number", "video", optional=True),
        )
        if frame.frame_index < 0:
            raise bad("video.frame_index must not be negative")
    regions = [
        _read_region(r, f"regions[{i}]", height, width)
        for i, r in enumerate(get(data, "regions", "list", "document"))
    ]
    indices = [r.index for r in regions]
    if indices != sorted(set(indices)) or (indices and indices[0] < 0):
        raise bad(f"region indices must be unique, non-negative and ascending, not {indices}")
    dialogue = [
        _read_turn(t, f"dialogue[{i}]") for i, t in enumerate(get(data, "dialogue", "list", "document"))
    ]
    for i, (turn, raw) in enumerate(zip(dialogue, data["dialogue"], strict=True)):
        turn.masks = _read_turn_masks(raw, f"dialogue[{i}]", height, width)
    return AnnotationDocument(info, regions, dialogue, frame)


def from_json(text: str | bytes) -> AnnotationDocument:
    """Parse and check an exported document; any problem is one ``InputError`` sentence."""
    return from_dict(parse_json(text))


def read_document(path: str | os.PathLike) -> AnnotationDocument:
    """An export file (e.g. an upload) from disk; a file over the size limit is not read."""
    check_file_size(path, f"the file {Path(path).name}")
    return from_json(Path(path).read_bytes())
