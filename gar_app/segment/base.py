"""What every segmenter takes and gives: user marks in, one image-sized boolean mask out.

Marks are checked here once, so SAM and the GrabCut fallback refuse (or repair) the same
inputs with the same messages. The rules, chosen for how people mark a canvas:

- Points are pixel coordinates ``(x, y)`` with ``0 <= x < width`` and ``0 <= y < height``.
  A point outside the image is **rejected**: moving a click somewhere else would segment
  something the user did not point at.
- A box is two corners ``(x1, y1, x2, y2)`` in pixel coordinates (SAM's convention); the
  corners may come in any order (a box dragged up-left) and a box dragged past the edge is
  **clipped** to the image. A box with no area inside the image is an error.
- A scribble is one polyline ``[[x, y], ...]``, several polylines, or an HxW stroke mask
  (boolean, 8-bit, or an RGBA drawing layer whose alpha marks the strokes). Polylines are
  drawn ``stroke_width`` pixels wide and clipped to the image. A scribble with nothing
  inside the image is an error when it is the only mark (and ignored next to points or a
  box). An open stroke paints *on* the object; a stroke that closes on itself (a lasso,
  its ends within ~15% of its size) means "the object is in here" and its filled inside
  is kept as ``lasso``.
- No marks at all is an error.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from gar_app.errors import InputError
from gar_app.images import ImageSource, check_mask_shape, load_image

Scribble = Sequence[Sequence[float]] | Sequence[Sequence[Sequence[float]]] | np.ndarray


@dataclass(frozen=True)
class Prompt:
    """The marks for one region, as the UI collects them (plain lists, JSON-friendly)."""

    points: Sequence[Sequence[float]] = ()
    labels: Sequence[int] = ()
    box: Sequence[float] | None = None
    scribble: Scribble | None = None

    @property
    def source(self) -> str:
        """How the region was made, for the region list and export: scribble > box > points."""
        if self.scribble is not None:
            return "scribble"
        if self.box is not None:
            return "box"
        return "points"


@dataclass(frozen=True, eq=False)
class CheckedPrompt:
    """A prompt validated against one image size; arrays are in pixel coordinates."""

    width: int
    height: int
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float64))  # (N, 2) x, y
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))  # (N,) 1 / 0
    box: np.ndarray | None = None  # (4,) x1 < x2, y1 < y2, inside the image
    stroke: np.ndarray | None = None  # (H, W) bool, the drawn scribble
    lasso: np.ndarray | None = None  # (H, W) bool, inside of a closed scribble (stroke included)


@dataclass(frozen=True, eq=False)
class SegmentResult:
    """One mask for the image the segmenter was given, and the segmenter's confidence in it."""

    mask: np.ndarray  # (H, W) bool
    score: float


def stroke_width(width: int, height: int) -> int:
    """Brush width for polyline scribbles: visible on any image, about 0.5% of its short side."""
    return max(3, round(min(width, height) / 200))


def _numbers(values: Sequence[float] | np.ndarray) -> str:
    """Numbers for a message, as people write them (``[10, 20.5]``, never ``np.float64(10.0)``)."""
    return "[" + ", ".join(f"{float(v):g}" for v in np.asarray(values).reshape(-1)) + "]"


def _floats(values: object, what: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):  # text, or ragged lists
        raise InputError(f"{what} must be numbers in image pixels") from None


def _check_points(points: Sequence, labels: Sequence | None, width: int, height: int):
    pts = _floats(points if points is not None else [], "points")
    if pts.size == 0:
        if labels is not None and len(labels) > 0:
            raise InputError("point labels were given without points")
        return np.zeros((0, 2)), np.zeros((0,), np.int64)
    if pts.ndim == 1 and pts.shape[0] == 2:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise InputError(f"points must be a list of [x, y] pairs, got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise InputError("points must be finite numbers")
    if labels is None or len(labels) == 0:
        labs = np.ones(len(pts), np.int64)
    else:
        labs = np.asarray(labels).reshape(-1)
        if len(labs) != len(pts):
            raise InputError(f"{len(pts)} points but {len(labs)} labels; give one label (1 or 0) per point")
        if not np.isin(labs, (0, 1)).all():
            raise InputError("point labels must be 1 (object) or 0 (background)")
        labs = labs.astype(np.int64)
    outside = (pts[:, 0] < 0) | (pts[:, 0] >= width) | (pts[:, 1] < 0) | (pts[:, 1] >= height)
    if outside.any():
        x, y = pts[np.flatnonzero(outside)[0]]
        raise InputError(f"point ({x:g}, {y:g}) is outside the {width}x{height} image")
    return pts, labs


def _check_box(box: Sequence[float], width: int, height: int) -> np.ndarray:
    arr = _floats(box, "a box [x1, y1, x2, y2]").reshape(-1)
    if arr.shape != (4,) or not np.isfinite(arr).all():
        raise InputError(f"a box is four numbers [x1, y1, x2, y2], got {_numbers(arr)}")
    x1, x2 = sorted((arr[0], arr[2]))
    y1, y2 = sorted((arr[1], arr[3]))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        raise InputError(f"the box {_numbers(arr)} has zero area; drag a box around the object")
    x1, x2 = np.clip([x1, x2], 0, width)
    y1, y2 = np.clip([y1, y2], 0, height)
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        raise InputError(f"the box {_numbers(arr)} lies outside the {width}x{height} image")
    return np.array([x1, y1, x2, y2])


def _polylines(scribble: Scribble) -> list[np.ndarray]:
    if len(scribble) == 0:
        return []
    try:
        arr = np.asarray(scribble, dtype=np.float64)
        lines = [arr] if arr.ndim == 2 else list(arr) if arr.ndim == 3 else None
    except ValueError:  # ragged: several strokes of different lengths
        lines = [np.asarray(line, dtype=np.float64) for line in scribble]
    if lines is None or any(line.ndim != 2 or (line.size and line.shape[1] != 2) for line in lines):
        raise InputError("a scribble is a list of [x, y] points, a list of such strokes, or a mask")
    return [line for line in lines if line.size and np.isfinite(line).all()]


def _is_stroke_mask(scribble: Scribble, width: int, height: int) -> bool:
    if isinstance(scribble, Image.Image):
        return True
    return isinstance(scribble, np.ndarray) and (
        scribble.dtype == bool or (scribble.dtype == np.uint8 and scribble.shape[:2] == (height, width))
    )


def _stroke_mask(scribble: Scribble, width: int, height: int) -> np.ndarray:
    if _is_stroke_mask(scribble, width, height):
        arr = np.asarray(scribble)
        if arr.ndim == 3:
            # a drawing layer: its alpha says where the brush went, whatever the brush colour
            arr = arr[..., 3] if arr.shape[2] == 4 else arr[..., :3].any(axis=-1)
        check_mask_shape(arr.shape, width, height, "the scribble mask")
        return arr != 0
    canvas = np.zeros((height, width), np.uint8)
    thickness = stroke_width(width, height)
    for line in _polylines(scribble):
        pts = np.round(line).astype(np.int32)
        if len(pts) == 1:
            cv2.circle(canvas, (int(pts[0, 0]), int(pts[0, 1])), thickness // 2, 1, -1)
            continue
        extent = float(np.hypot(*np.ptp(pts, axis=0)))
        gap = float(np.hypot(*(pts[0] - pts[-1])))
        closed = len(pts) > 2 and gap <= max(2 * thickness, 0.15 * extent)  # a lasso left slightly open
        cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], closed, 1, thickness)
    return canvas.astype(bool)


def _lasso(stroke: np.ndarray) -> np.ndarray | None:
    """The filled inside of a closed stroke, when its enclosed area outweighs the stroke itself."""
    contours, _ = cv2.findContours(stroke.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros(stroke.shape, np.uint8)
    cv2.drawContours(filled, contours, -1, 1, cv2.FILLED)
    filled = filled.astype(bool) | stroke
    inside = np.count_nonzero(filled) - np.count_nonzero(stroke)
    return filled if inside > np.count_nonzero(stroke) else None


def check_prompt(
    width: int,
    height: int,
    points: Sequence | None = None,
    labels: Sequence[int] | None = None,
    box: Sequence[float] | None = None,
    scribble: Scribble | None = None,
) -> CheckedPrompt:
    """Validate marks against an image size (see the module docstring for the rules)."""
    pts, labs = _check_points(points, labels, width, height)
    checked_box = None if box is None else _check_box(box, width, height)
    stroke = lasso = None
    if scribble is not None:
        stroke = _stroke_mask(scribble, width, height)
        if not stroke.any():
            if len(pts) == 0 and checked_box is None:
                raise InputError("the scribble is empty (no stroke inside the image); draw over the object")
            stroke = None  # an empty scribble next to other marks adds nothing
        else:
            lasso = _lasso(stroke)
    if len(pts) == 0 and checked_box is None and stroke is None:
        raise InputError("no prompt: click a point, drag a box or scribble on the object")
    if checked_box is None and stroke is None and not labs.any():
        raise InputError("only background (negative) points: add at least one point on the object")
    return CheckedPrompt(width, height, pts, labs, checked_box, stroke, lasso)


class Segmenter(ABC):
    """Predictor-style interface: ``set_image`` once, then ``segment`` for every click."""

    name: str = "segmenter"

    def __init__(self) -> None:
        self._size: tuple[int, int] | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` of the current image."""
        if self._size is None:
            raise InputError("no image loaded yet: call set_image(image) before segmenting")
        return self._size

    def set_image(self, image: ImageSource) -> None:
        """Make ``image`` (a path, PIL image or array, any mode) the one that prompts refer to."""
        rgb = np.ascontiguousarray(np.asarray(load_image(image)))
        self._size = None  # a failed load leaves no stale image behind
        self._set_rgb(rgb)
        self._size = (rgb.shape[1], rgb.shape[0])

    def segment(
        self,
        points: Sequence | None = None,
        labels: Sequence[int] | None = None,
        box: Sequence[float] | None = None,
        scribble: Scribble | None = None,
    ) -> SegmentResult:
        """One mask for the marks; ``labels`` default to all positive."""
        width, height = self.image_size
        return self._segment(check_prompt(width, height, points, labels, box, scribble))

    def segment_prompt(self, prompt: Prompt) -> SegmentResult:
        return self.segment(prompt.points, prompt.labels, prompt.box, prompt.scribble)

    @abstractmethod
    def _set_rgb(self, rgb: np.ndarray) -> None: ...

    @abstractmethod
    def _segment(self, prompt: CheckedPrompt) -> SegmentResult: ...
