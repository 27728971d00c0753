"""Annotation documents as JSON (``"format": "gar-app/1"``) and as GAR training records.

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

``mask_to_rle`` / ``rle_to_mask`` are the project's one RLE code path (GARBench uses them too).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from gar_app.errors import InputError
from gar_app.images import ImageSource, check_file_size, load_image, mask_box, max_image_pixels
from gar_app.tags import find_tags, renumber, tag, tags_in

FORMAT = "gar-app/1"
MAX_DIGITS = 30  # longest integer an import may hold (pixel counts, indices, seeds)
SOURCES = ("points", "box", "scribble", "mask")
ROLES = ("user", "assistant")
DESCRIBE = "Describe {tag} in detail."
IMAGE_MARKER = "<image>"
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
Point = tuple[float, float]


def utc_now() -> str:
    """Now as ISO 8601 UTC with milliseconds, e.g. ``2025-06-01T12:00:00.123Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- RLE


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE ``{"size": [h, w], "counts": str}`` of an H x W mask (any non-zero is inside)."""
    array = np.asarray(mask)
    if array.ndim != 2 or array.size == 0:
        raise InputError(f"a mask must be a non-empty 2-D array, not shape {array.shape}")
    rle = mask_utils.encode(np.asfortranarray(array != 0, dtype=np.uint8))
    return {"size": [int(array.shape[0]), int(array.shape[1])], "counts": rle["counts"].decode("ascii")}


def _counts_from_text(text: str) -> list[int]:
    """Decode COCO's compressed counts string in Python so bad input fails here, not in C.

    pycocotools does not check the counts it decodes (it reads past its buffer on bad input),
    so decoding is done here: checked, then expanded with numpy.
    """
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        value = shift = 0
        while True:
            if pos == len(text):
                raise InputError("RLE counts end in the middle of a number")
            c = ord(text[pos]) - 48
            if not 0 <= c < 64:
                raise InputError(f"RLE counts contain the character {text[pos]!r}, which COCO RLE never uses")
            pos += 1
            value |= (c & 0x1F) << shift
            shift += 5
            if not c & 0x20:
                if c & 0x10:
                    value |= -1 << shift
                break
        counts.append(value + (counts[-2] if len(counts) > 2 else 0))
    return counts


def rle_to_mask(rle: Any) -> np.ndarray:
    """A boolean H x W mask from COCO RLE (counts as text, bytes or a list), checked first."""
    h, w, counts = rle_counts(rle)
    flat = np.repeat(np.arange(len(counts)) % 2 == 1, counts)  # runs alternate 0, 1, 0, ...
    return np.ascontiguousarray(flat.reshape(w, h).T)  # COCO runs go down columns


def rle_counts(rle: Any) -> tuple[int, int, list[int]]:
    """Height, width and run lengths of a COCO RLE, checked (without building the mask)."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise InputError("an RLE mask must be an object with 'size' and 'counts'")
    size, raw = rle["size"], rle["counts"]
    if not (isinstance(size, list | tuple) and len(size) == 2 and all(_is_int(v) and v >= 0 for v in size)):
        raise InputError(f"RLE size must be [height, width] as two non-negative integers, not {size!r}")
    h, w = int(size[0]), int(size[1])
    if h * w > max_image_pixels():
        raise InputError(f"RLE mask of {w}x{h} pixels is larger than the app accepts")
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", errors="replace")
    if isinstance(raw, str):
        counts = _counts_from_text(raw)
    elif isinstance(raw, list) and all(_is_int(v) for v in raw):
        counts = [int(v) for v in raw]
    else:
        raise InputError("RLE counts must be a COCO counts string or a list of integers")
    if any(c < 0 for c in counts) or sum(counts) != h * w:
        raise InputError(f"RLE counts do not cover a {h}x{w} mask (they sum to {sum(counts)} pixels)")
    return h, w, counts


# ---------------------------------------------------------------- document


def _num(value: Any) -> int | float:
    """Plain int/float (numpy scalars from the UI would not serialise)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"expected a number, got {value!r}")
    return int(value) if isinstance(value, int | np.integer) else float(value)


def _point(value: Any) -> Point:
    x, y = value
    return (_num(x), _num(y))


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

    def __post_init__(self) -> None:
        self.mask = np.ascontiguousarray(self.mask, dtype=bool)
        self.points = [_point(p) for p in self.points]
        self.labels = [int(v) for v in self.labels]
        self.scribble = [_point(p) for p in self.scribble]
        if self.prompt_box is not None:
            self.prompt_box = tuple(_num(v) for v in self.prompt_box)  # type: ignore[assignment]

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
class Turn:
    role: str  # "user" | "assistant"
    text: str
    time: str  # ISO 8601 UTC, see utc_now()
    model: str | None = None  # model id that wrote an assistant turn
    decoding: dict[str, Any] = field(default_factory=dict)  # e.g. {"do_sample": False, ...}
    # tag -> COCO RLE of the mask a user turn saw, where that differs from the exported region
    masks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def tags(self) -> list[str]:
        return tags_in(self.text)


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


# ---------------------------------------------------------------- writing


def _region_dict(region: ExportedRegion) -> dict[str, Any]:
    box = region.box
    return {
        "index": region.index,
        "tag": region.tag,
        "colour": region.colour,
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


def _dump(value: Any, level: int = 0) -> str:
    """Indented JSON that keeps lists without objects (points, boxes, tags) on one line."""
    pad, end = "  " * (level + 1), "  " * level
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {_dump(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{end}}}"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return "[\n" + ",\n".join(pad + _dump(v, level + 1) for v in value) + f"\n{end}]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def to_json(doc: AnnotationDocument) -> str:
    return _dump(to_dict(doc)) + "\n"


# ---------------------------------------------------------------- reading


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad(problem: str) -> InputError:
    return InputError(f"not a valid GAR App export: {problem}")


_KINDS: dict[str, tuple[str, Any]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("an integer", _is_int),
    "number": ("a number", lambda v: (_is_int(v) or isinstance(v, float)) and math.isfinite(v)),
    "list": ("a list", lambda v: isinstance(v, list)),
    "dict": ("an object", lambda v: isinstance(v, dict)),
}


def _get(obj: dict, key: str, kind: str, where: str, optional: bool = False) -> Any:
    if key not in obj:
        raise _bad(f"{where} has no '{key}'")
    value = obj[key]
    if value is None and optional:
        return None
    what, check = _KINDS[kind]
    if not check(value):
        raise _bad(
            f"{where}.{key} must be {what}{' or null' if optional else ''}, not {json.dumps(value)[:40]}"
        )
    return value


def _points(values: list, where: str, size: int | None = None) -> list[Point]:
    for i, p in enumerate(values):
        if not (isinstance(p, list) and len(p) == (size or 2) and all(_KINDS["number"][1](v) for v in p)):
            raise _bad(f"{where}[{i}] must be a list of {size or 2} numbers")
    return [tuple(p) for p in values]  # type: ignore[misc]


def _read_region(data: Any, where: str, height: int, width: int) -> ExportedRegion:
    if not isinstance(data, dict):
        raise _bad(f"{where} must be an object")
    index = _get(data, "index", "int", where)
    if _get(data, "tag", "str", where) != tag(index):
        raise _bad(f"{where}.tag is {data['tag']!r} but its index {index} makes it {tag(index)!r}")
    colour = _get(data, "colour", "str", where)
    if not _COLOUR.fullmatch(colour):
        raise _bad(f"{where}.colour must be '#rrggbb', not {colour!r}")
    prompt = _get(data, "prompt", "dict", where)
    pw = f"{where}.prompt"
    source = _get(prompt, "source", "str", pw)
    if source not in SOURCES:
        raise _bad(f"{pw}.source must be one of {', '.join(SOURCES)}, not {source!r}")
    points = _points(_get(prompt, "points", "list", pw), f"{pw}.points")
    labels = _get(prompt, "labels", "list", pw)
    if len(labels) != len(points) or not all(_is_int(v) and v in (0, 1) for v in labels):
        raise _bad(f"{pw}.labels must hold one 0 or 1 per point")
    box = _get(prompt, "box", "list", pw, optional=True)
    box = None if box is None else _points([box], f"{pw}.box", size=4)[0]
    scribble = _points(_get(prompt, "scribble", "list", pw), f"{pw}.scribble")
    needed = {"points": points, "box": box, "scribble": scribble}.get(source, True)
    if not needed:
        raise _bad(f"{where} was made from {source} but its prompt has none")
    mask = _read_mask(_get(data, "mask", "dict", where), f"{where}.mask", height, width)
    region = ExportedRegion(
        index,
        colour,
        source,
        mask,
        _get(data, "caption", "str", where),
        points,
        list(labels),
        box,
        scribble,
        _get(prompt, "mask_name", "str", pw, optional=True),
    )
    expected_box = None if region.box is None else list(region.box)
    if (
        _get(data, "box", "list", where, optional=True) != expected_box
        or _get(data, "area", "int", where) != region.area
    ):
        raise _bad(f"{where}.box or .area does not match its mask (box {expected_box}, area {region.area})")
    return region


def _read_turn(data: Any, where: str) -> Turn:
    if not isinstance(data, dict):
        raise _bad(f"{where} must be an object")
    role = _get(data, "role", "str", where)
    if role not in ROLES:
        raise _bad(f"{where}.role must be 'user' or 'assistant', not {role!r}")
    turn = Turn(
        role,
        _get(data, "text", "str", where),
        _get(data, "time", "str", where),
        _get(data, "model", "str", where, optional=True),
        _get(data, "decoding", "dict", where),
    )
    try:
        stamp = datetime.fromisoformat(turn.time.replace("Z", "+00:00"))
    except ValueError:
        stamp = None
    if stamp is None or stamp.utcoffset() is None or stamp.utcoffset().total_seconds() != 0:
        raise _bad(f"{where}.time must be an ISO 8601 UTC time like 2025-06-01T12:00:00Z, not {turn.time!r}")
    if _get(data, "tags", "list", where) != turn.tags:
        raise _bad(f"{where}.tags is {data['tags']} but its text mentions {turn.tags}")
    return turn


def _read_mask(rle: Any, where: str, height: int, width: int) -> np.ndarray:
    """A mask of the image's size from RLE; a wrong size is refused before decoding."""
    if not isinstance(rle, dict):
        raise _bad(f"{where} must be an object")
    size = rle.get("size")
    if isinstance(size, list) and len(size) == 2 and all(map(_is_int, size)) and size != [height, width]:
        raise _bad(f"{where} is {size[1]}x{size[0]} but the image is {width}x{height}")
    try:
        mask = rle_to_mask(rle)
    except InputError as error:
        raise _bad(f"{where}: {error}") from None
    if mask.shape != (height, width):
        raise _bad(f"{where} is {mask.shape[1]}x{mask.shape[0]} but the image is {width}x{height}")
    return mask


def _read_turn_masks(data: dict, where: str, height: int, width: int) -> dict[str, dict[str, Any]]:
    """The optional ``masks`` of a turn (gar-app/1 files without it are read as before)."""
    masks = _get(data, "masks", "dict", where, optional=True) if "masks" in data else None
    checked = {}
    for name, rle in (masks or {}).items():
        if name not in tags_in(name) or name not in tags_in(data["text"]):
            raise _bad(f"{where}.masks names {name!r}, which is not a tag its text mentions")
        checked[name] = mask_to_rle(_read_mask(rle, f"{where}.masks[{name!r}]", height, width))
    return checked


def from_dict(data: Any) -> AnnotationDocument:
    if not isinstance(data, dict):
        raise _bad("the top level must be a JSON object")
    fmt = data.get("format")
    if fmt != FORMAT:
        raise _bad(f"format is {fmt!r}; this app reads {FORMAT!r}")
    img = _get(data, "image", "dict", "document")
    width, height = _get(img, "width", "int", "image"), _get(img, "height", "int", "image")
    if width < 1 or height < 1 or width * height > max_image_pixels():
        raise _bad(f"image size {width}x{height} is empty or larger than the app accepts")
    sha = _get(img, "sha256", "str", "image")
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise _bad("image.sha256 must be 64 lower-case hex digits")
    sha_of = _get(img, "sha256_of", "str", "image")
    if sha_of not in ("file", "pixels"):
        raise _bad(f"image.sha256_of must be 'file' or 'pixels', not {sha_of!r}")
    info = ImageInfo(_get(img, "name", "str", "image"), width, height, sha, sha_of)
    video = _get(data, "video", "dict", "document", optional=True)
    frame = None
    if video is not None:
        frame = VideoFrame(
            _get(video, "name", "str", "video"),
            _get(video, "frame_index", "int", "video"),
            _get(video, "time_s", "number", "video", optional=True),
        )
        if frame.frame_index < 0:
            raise _bad("video.frame_index must not be negative")
    regions = [
        _read_region(r, f"regions[{i}]", height, width)
        for i, r in enumerate(_get(data, "regions", "list", "document"))
    ]
    indices = [r.index for r in regions]
    if indices != sorted(set(indices)) or (indices and indices[0] < 0):
        raise _bad(f"region indices must be unique, non-negative and ascending, not {indices}")
    dialogue = [
        _read_turn(t, f"dialogue[{i}]") for i, t in enumerate(_get(data, "dialogue", "list", "document"))
    ]
    for i, (turn, raw) in enumerate(zip(dialogue, data["dialogue"], strict=True)):
        turn.masks = _read_turn_masks(raw, f"dialogue[{i}]", height, width)
    return AnnotationDocument(info, regions, dialogue, frame)


def _parse_int(digits: str) -> int:
    """No number in the format needs more than ``MAX_DIGITS`` digits; longer ones are refused
    before Python converts them (slow, and beyond 4300 digits an unexplained ValueError)."""
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise _bad(
            f"it holds a number with {len(digits.lstrip('-'))} digits (at most {MAX_DIGITS} make sense)"
        )
    return int(digits)


def parse_json(text: str | bytes) -> Any:
    """An export file's JSON (image or video form), or one ``InputError`` sentence."""
    try:
        return json.loads(text, parse_int=_parse_int)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"not a valid GAR App export: the file is not JSON ({error})") from None
    except RecursionError:
        raise InputError("not a valid GAR App export: the JSON is nested too deeply") from None


def from_json(text: str | bytes) -> AnnotationDocument:
    """Parse and check an exported document; any problem is one ``InputError`` sentence."""
    return from_dict(parse_json(text))


def read_document(path: str | os.PathLike) -> AnnotationDocument:
    """An export file (e.g. an upload) from disk; a file over the size limit is not read."""
    check_file_size(path, f"the file {Path(path).name}")
    return from_json(Path(path).read_bytes())


# ---------------------------------------------------------------- training format


def to_training_records(doc: AnnotationDocument) -> list[dict[str, Any]]:
    """The document as LLaVA-style GAR training data: zero or one record.

    Regions with empty masks are dropped and the rest renumbered ``<Prompt0>..`` in index
    order, so ``mask_rle[k]`` is ``<Promptk>``. Each user turn answered by the next assistant
    turn becomes a human/gpt pair; captions not already given as an answer become
    ``"Describe <Promptk> in detail."`` pairs. Pairs mentioning a dropped region, or asked
    about a mask the region no longer has (a turn with ``masks``), are left out. The first human value starts with ``"<image>\\n"``; tags stay as text, the trainer
    expands them into GAR's prompt.
    """
    kept = [r for r in doc.regions if r.area > 0]
    numbers = {r.index: new for new, r in enumerate(kept)}
    pairs: list[tuple[str, str]] = []
    question: str | None = None
    for turn in doc.dialogue:
        if turn.role == "user":
            question = None if turn.masks else turn.text  # about masks the regions no longer have
        elif question is not None and turn.text.strip():
            pairs.append((question, turn.text))
            question = None
    answers = {answer.strip() for _, answer in pairs}
    pairs += [
        (DESCRIBE.format(tag=r.tag), r.caption)
        for r in kept
        if r.caption.strip() and r.caption.strip() not in answers
    ]
    pairs = [p for p in pairs if all(k in numbers for k in find_tags(p[0]) + find_tags(p[1]))]
    if not pairs:
        return []

    conversations = []
    for i, (question, answer) in enumerate(pairs):
        prefix = f"{IMAGE_MARKER}\n" if i == 0 else ""
        conversations += [
            {"from": "human", "value": prefix + renumber(question, numbers)},
            {"from": "gpt", "value": renumber(answer, numbers)},
        ]
    ident = doc.image.name if doc.video is None else f"{doc.video.name}#{doc.video.frame_index}"
    return [
        {
            "id": ident,
            "image": doc.image.name,
            "mask_rle": [mask_to_rle(r.mask) for r in kept],
            "conversations": conversations,
        }
    ]


# ---------------------------------------------------------------- video form
#
# A tracked video is one document: the video's identity and frame sampling, and per region its
# keyframes, a mask (COCO RLE, or null where the region is absent) for every processed frame,
# and the captions pinned to frames. Masks stay RLE in memory (a long clip's tracks decoded
# would take gigabytes); ``TrackFrame.mask_array`` decodes one when needed.


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
                "colour": r.colour,
                "anchor": r.anchor,
                "keyframes": [{"index": k.index, "time": k.time, "source": k.source} for k in r.keyframes],
                "captions": [{"index": c.index, "time": c.time, "text": c.text} for c in r.captions],
                "frames": [{"index": f.index, "time": f.time, "mask": f.mask} for f in r.frames],
            }
            for r in doc.regions
        ],
    }


def video_to_json(doc: VideoDocument) -> str:
    return _dump(video_to_dict(doc)) + "\n"


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
    time_s = _get(data, "time", "number", where, optional=True)
    expected = frame_time(index, fps)
    if (time_s is None) != (expected is None) or (
        expected is not None and abs(time_s - expected) > 1e-6 * (1 + abs(expected))
    ):
        raise _bad(f"{where}.time is {time_s} but frame {index} at {fps} fps is at {expected}")
    return expected


def _read_video(data: Any) -> tuple[VideoSource, int]:
    if not isinstance(data, dict):
        raise _bad("video must be an object")
    width, height = _get(data, "width", "int", "video"), _get(data, "height", "int", "video")
    if width < 1 or height < 1 or width * height > max_image_pixels():
        raise _bad(f"video frame size {width}x{height} is empty or larger than the app accepts")
    fps = _get(data, "fps", "number", "video", optional=True)
    if fps is not None and fps <= 0:
        raise _bad(f"video.fps must be positive or null, not {fps}")
    frames, total = _get(data, "frames", "int", "video"), _get(data, "frame_count", "int", "video")
    if not 0 <= frames <= total:
        raise _bad(f"video.frames ({frames}) must be between 0 and video.frame_count ({total})")
    sha = _get(data, "sha256", "str", "video")
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise _bad("video.sha256 must be 64 lower-case hex digits")
    sampling = _get(data, "sampling", "dict", "video")
    cap = _get(sampling, "fps_cap", "number", "video.sampling", optional=True)
    most = _get(sampling, "max_frames", "int", "video.sampling", optional=True)
    if (cap is not None and cap <= 0) or (most is not None and most < 1):
        raise _bad("video.sampling.fps_cap must be positive and max_frames at least 1 (or null)")
    source = VideoSource(
        _get(data, "name", "str", "video"),
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
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(f"{where} must be an RLE object or null")
    try:
        h, w, _ = rle_counts(value)
    except InputError as error:
        raise _bad(f"{where}: {error}") from None
    if (h, w) != (height, width):
        raise _bad(f"{where} is {w}x{h} but the video's frames are {width}x{height}")
    if isinstance(value["counts"], str) and set(value) == {"size", "counts"}:
        return {"size": [h, w], "counts": value["counts"]}
    return mask_to_rle(rle_to_mask(value))  # counts as a list or bytes: keep the canonical text form


def _read_track(data: Any, where: str, video: VideoSource, indices: list[int] | None) -> TrackData:
    if not isinstance(data, dict):
        raise _bad(f"{where} must be an object")
    index = _get(data, "index", "int", where)
    if index < 0 or _get(data, "tag", "str", where) != tag(index):
        raise _bad(f"{where}.tag is {data['tag']!r} but its index {index} makes it {tag(index)!r}")
    colour = _get(data, "colour", "str", where)
    if not _COLOUR.fullmatch(colour):
        raise _bad(f"{where}.colour must be '#rrggbb', not {colour!r}")
    frames = []
    for i, item in enumerate(_get(data, "frames", "list", where)):
        fw = f"{where}.frames[{i}]"
        if not isinstance(item, dict):
            raise _bad(f"{fw} must be an object")
        at = _get(item, "index", "int", fw)
        if "mask" not in item:
            raise _bad(f"{fw} has no 'mask'")
        frames.append(
            TrackFrame(
                at,
                _read_time(item, fw, at, video.fps),
                _read_rle(item["mask"], f"{fw}.mask", video.height, video.width),
            )
        )
    seen = [f.index for f in frames]
    if indices is not None and seen != indices:
        raise _bad(f"{where}.frames are not the same frames as the first region's")
    if seen != sorted(set(seen)) or (seen and (seen[0] < 0 or seen[-1] >= video.frame_count)):
        raise _bad(
            f"{where}.frames must be distinct frame indices in order, within the video's {video.frame_count}"
        )
    masked = {f.index for f in frames if f.mask is not None}
    keyframes = []
    for i, item in enumerate(_get(data, "keyframes", "list", where)):
        kw = f"{where}.keyframes[{i}]"
        if not isinstance(item, dict):
            raise _bad(f"{kw} must be an object")
        at = _get(item, "index", "int", kw)
        source = _get(item, "source", "str", kw)
        if source not in SOURCES:
            raise _bad(f"{kw}.source must be one of {', '.join(SOURCES)}, not {source!r}")
        if at not in masked:
            raise _bad(f"{kw} is frame {at}, which has no mask of {tag(index)}")
        keyframes.append(TrackKeyframe(at, _read_time(item, kw, at, video.fps), source))
    marked = [k.index for k in keyframes]
    if not marked or marked != sorted(set(marked)):
        raise _bad(f"{where}.keyframes must list at least one frame, each once, in order")
    anchor = _get(data, "anchor", "int", where)
    if anchor not in marked:
        raise _bad(f"{where}.anchor ({anchor}) must be one of its keyframes {marked}")
    captions = []
    for i, item in enumerate(_get(data, "captions", "list", where)):
        cw = f"{where}.captions[{i}]"
        if not isinstance(item, dict):
            raise _bad(f"{cw} must be an object")
        at = _get(item, "index", "int", cw)
        if at not in seen:
            raise _bad(f"{cw} is on frame {at}, which is not one of the processed frames")
        captions.append(TrackCaption(at, _read_time(item, cw, at, video.fps), _get(item, "text", "str", cw)))
    return TrackData(index, colour, anchor, keyframes, frames, captions)


def video_from_dict(data: Any) -> VideoDocument:
    """Check and read the video form; any problem is one ``InputError`` sentence."""
    if not isinstance(data, dict):
        raise _bad("the top level must be a JSON object")
    if data.get("format") != FORMAT:
        raise _bad(f"format is {data.get('format')!r}; this app reads {FORMAT!r}")
    if not is_video_document(data):
        raise _bad("this is not a tracked-video document (it has an 'image', or no 'video' object)")
    video, count = _read_video(data["video"])
    regions: list[TrackData] = []
    indices: list[int] | None = None  # the first region's frames; every region lists the same
    for i, item in enumerate(_get(data, "regions", "list", "document")):
        regions.append(_read_track(item, f"regions[{i}]", video, indices))
        indices = [f.index for f in regions[0].frames]
    order = [r.index for r in regions]
    if order != sorted(set(order)):
        raise _bad(f"region indices must be unique and ascending, not {order}")
    if indices is not None and len(indices) != count:
        raise _bad(f"video.frames says {count} frames were processed but the regions list {len(indices)}")
    return VideoDocument(video, count, regions)


def video_from_json(text: str | bytes) -> VideoDocument:
    return video_from_dict(parse_json(text))
