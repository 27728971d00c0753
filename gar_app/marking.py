"""Marks on one image and the regions they make, with undo and redo.

Every mark (include / exclude point, box, brush or eraser stroke, uploaded mask) edits the
*current* region: its marks are kept with it (``Region.prompt``) and the segmenter turns them
into its mask. ``new_region`` makes the next mark start another region, so a scribble for
``<Prompt1>`` never contains ``<Prompt0>``'s strokes.

Undo / redo: each change that alters a region (a mark, an uploaded mask, a deletion) is one
step. A step stores the region before and after it with the masks packed to bits, so a long
history of a 2048 px image stays a few megabytes, and undo brings back the exact mask.
Captions are not part of the history: undoing a mark keeps the caption typed since.

Tags: a new region takes the lowest index that is neither in use nor ``reserved`` (the
workspace reserves tags a conversation or a caption still refers to).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from gar_app.errors import InputError
from gar_app.images import check_mask_shape
from gar_app.regions import Region, RegionSet
from gar_app.segment.base import Prompt, check_prompt
from gar_app.tags import tag

Segment = Callable[[Prompt], np.ndarray]
HISTORY = 100  # undo steps kept per image


@dataclass(frozen=True)
class _Packed:
    """A region with its mask (and scribble) packed to bits: what the history keeps."""

    index: int
    shape: tuple[int, int]
    bits: bytes
    source: str
    points: tuple = ()
    labels: tuple = ()
    box: tuple | None = None
    scribble: bytes | None = None  # the packed stroke mask
    caption: str = ""

    @classmethod
    def of(cls, region: Region) -> _Packed:
        prompt = region.prompt
        scribble = None if prompt is None else prompt.scribble
        if scribble is not None:
            height, width = region.mask.shape
            if not (isinstance(scribble, np.ndarray) and scribble.shape == region.mask.shape):
                scribble = check_prompt(width, height, scribble=scribble).stroke  # polylines
            scribble = np.packbits(np.asarray(scribble) != 0).tobytes()
        return cls(
            region.index,
            region.mask.shape,
            np.packbits(region.mask).tobytes(),
            region.source,
            tuple(map(tuple, prompt.points)) if prompt else (),
            tuple(prompt.labels) if prompt else (),
            None if prompt is None or prompt.box is None else tuple(prompt.box),
            scribble,
            region.caption,
        )

    def unpack(self, bits: bytes) -> np.ndarray:
        count = self.shape[0] * self.shape[1]
        return np.unpackbits(np.frombuffer(bits, np.uint8), count=count).reshape(self.shape).astype(bool)

    def region(self) -> tuple[np.ndarray, Prompt | None]:
        prompt = None
        if self.source != "mask":
            scribble = None if self.scribble is None else self.unpack(self.scribble)
            prompt = Prompt(
                points=[list(p) for p in self.points],
                labels=list(self.labels),
                box=self.box,
                scribble=scribble,
            )
        return self.unpack(self.bits), prompt


@dataclass(frozen=True)
class _Step:
    """One undoable change of one region (None: the region did not exist on that side)."""

    index: int
    before: _Packed | None
    after: _Packed | None
    current_before: int | None
    current_after: int | None


def stroke_mask(points: Sequence[Sequence[float]], radius: float, size: tuple[int, int]) -> np.ndarray:
    """A brush stroke through ``points`` (image pixels), ``radius`` pixels wide on each side."""
    width, height = size
    line = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if line.size == 0 or not np.isfinite(line).all():
        raise InputError("a stroke is a list of [x, y] points in image pixels")
    if not np.isfinite(radius) or radius <= 0:
        raise InputError(f"the brush radius must be a positive number of pixels, not {radius}")
    canvas = np.zeros((height, width), np.uint8)
    thickness = max(1, round(2 * radius))
    pts = np.round(line).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [pts], False, 1, thickness)
    for x, y in pts[[0, -1], 0]:  # round caps, also for a single dab
        cv2.circle(canvas, (int(x), int(y)), max(1, round(radius)), 1, -1)
    return canvas.astype(bool)


class Marking:
    """The regions of one image, the marks behind each, the current region and the history."""

    def __init__(
        self,
        segment: Segment,
        size: tuple[int, int],
        limit: int | None = None,
        reserved: Callable[[], set[int]] = set,
    ):
        self._segment = segment
        self.size = size  # (width, height) of the image
        self.regions = RegionSet(limit=limit, shape=(size[1], size[0]))
        self.current: int | None = None  # the region the next mark edits; None: a new one
        self.corner: tuple[float, float] | None = None  # first click of a two-click box
        self.reserved = reserved
        self.version = 0  # grows with every change, so callers can tell whether work is saved
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []

    # -- reading -------------------------------------------------------------------------

    @property
    def current_region(self) -> Region | None:
        if self.current is None or self.current not in self.regions:
            return None
        return self.regions[self.current]

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def history_bytes(self) -> int:
        """Mask bytes the undo history keeps: packed to bits, so about one bit a pixel a side."""
        sides = [side for step in self._undo for side in (step.before, step.after) if side is not None]
        return sum(len(side.bits) for side in sides)

    def next_index(self) -> int:
        """The index the next new region takes (lowest free one that is not reserved)."""
        taken = {r.index for r in self.regions} | set(self.reserved())
        index = next(i for i in range(len(taken) + 1) if i not in taken)
        limit = self.regions.limit
        if limit is not None and index >= limit:
            held = sorted(set(self.reserved()) - {r.index for r in self.regions})
            why = (
                f"; {', '.join(tag(i) for i in held)} stay taken while the conversation or a caption mentions them"
                if held
                else ""
            )
            raise InputError(f"this model tells apart at most {limit} regions{why}")
        return index

    # -- marks ---------------------------------------------------------------------------

    def _prompt(self) -> Prompt:
        region = self.current_region
        return region.prompt if region is not None and region.prompt is not None else Prompt()

    def _apply(self, prompt: Prompt, mask: np.ndarray | None = None, source: str | None = None) -> Region:
        if mask is None:
            mask = self._segment(prompt)
        if not np.asarray(mask).any():
            raise InputError("the segmenter found nothing there; try another point or a box")
        before = self.current_region
        if before is not None:
            region = self.regions.update(
                before.index, mask=mask, prompt=None if source == "mask" else prompt, source=source
            )
        else:
            region = self.regions.add(
                mask=mask, prompt=None if source == "mask" else prompt, source=source, index=self.next_index()
            )
        self._record(region.index, before, region, self.current, region.index)
        self.current = region.index
        self.corner = None
        return region

    def add_point(self, x: float, y: float, positive: bool = True) -> Region:
        """One more include (or exclude) point for the current region."""
        before = self._prompt()
        prompt = replace(
            before,
            points=[*map(list, before.points), [float(x), float(y)]],
            labels=[*before.labels, 1 if positive else 0],
        )
        if not any(prompt.labels) and prompt.box is None and prompt.scribble is None:
            raise InputError("start a region with an include point (or a box); exclude points refine it")
        return self._apply(prompt)

    def box_click(self, x: float, y: float) -> Region | None:
        """Two clicks make a box: the first sets a corner, the second segments."""
        if self.corner is None:
            self.corner = (float(x), float(y))
            return None
        (x1, y1), self.corner = self.corner, None
        return self.set_box((x1, y1, float(x), float(y)))

    def set_box(self, box: Sequence[float]) -> Region:
        """The current region's box (a dragged one replaces the previous box; points stay)."""
        values = [float(v) for v in box]
        if len(values) != 4:
            raise InputError(f"a box is four numbers [x1, y1, x2, y2], not {list(box)}")
        return self._apply(replace(self._prompt(), box=values))

    def add_stroke(self, points: Sequence[Sequence[float]], radius: float, erase: bool = False) -> Region:
        """A brush stroke adds to the current region's scribble; an eraser stroke removes from it."""
        stroke = stroke_mask(points, radius, self.size)
        before = self._prompt()
        scribble = self.scribble_of(before)
        if erase:
            if scribble is None or not (scribble & stroke).any():
                raise InputError(
                    "the eraser removes brush strokes of the current region, and there are none there"
                )
            scribble = scribble & ~stroke
            if not scribble.any():
                scribble = None
                if not before.points and before.box is None:
                    raise InputError(
                        "erasing every stroke leaves no marks; use Delete region to remove the region"
                    )
        else:
            scribble = stroke if scribble is None else scribble | stroke
        return self._apply(replace(before, scribble=scribble))

    def add_scribble(self, stroke: np.ndarray) -> Region:
        """A whole drawn stroke mask (H x W, non-zero where drawn) joins the current scribble."""
        stroke = np.asarray(stroke) != 0
        check_mask_shape(stroke.shape, *self.size, "the scribble")
        if not stroke.any():
            raise InputError("the scribble is empty: draw over the object with the brush first")
        before = self._prompt()
        scribble = self.scribble_of(before)
        return self._apply(replace(before, scribble=stroke if scribble is None else scribble | stroke))

    def scribble_of(self, prompt: Prompt) -> np.ndarray | None:
        """A prompt's scribble as an image-sized stroke mask (None without one)."""
        if prompt.scribble is None:
            return None
        if isinstance(prompt.scribble, np.ndarray) and prompt.scribble.shape == (self.size[1], self.size[0]):
            return prompt.scribble != 0
        return check_prompt(*self.size, scribble=prompt.scribble).stroke  # polylines

    def set_mask(self, mask: np.ndarray) -> Region:
        """An uploaded mask becomes (or replaces) the current region as it is."""
        mask = np.asarray(mask) != 0
        check_mask_shape(mask.shape, *self.size)
        if not mask.any():
            raise InputError("the uploaded mask is empty (no non-zero pixel)")
        return self._apply(Prompt(), mask=mask, source="mask")

    # -- regions -------------------------------------------------------------------------

    def new_region(self) -> None:
        """The next mark starts the next free ``<PromptN>``."""
        self.next_index()  # says so now when no tag is left
        self.current = None
        self.corner = None

    def select(self, key: int | str) -> Region:
        region = self.regions.get(key)
        self.current = region.index
        self.corner = None
        return region

    def delete(self, key: int | str) -> Region:
        region = self.regions.remove(key)
        after = None if self.current == region.index else self.current
        self._record(region.index, region, None, self.current, after)
        self.current = after
        return region

    def set_caption(self, key: int | str, caption: str) -> Region:
        self.version += 1
        return self.regions.update(key, caption=caption)

    def add_region(
        self,
        mask: np.ndarray,
        index: int | None = None,
        source: str = "mask",
        prompt: Prompt | None = None,
        caption: str = "",
    ) -> Region:
        """Put a region in as it is (an import, a tracked video frame): one undoable step."""
        region = self.regions.add(
            mask=mask,
            source=source,
            prompt=prompt,
            caption=caption,
            index=self.next_index() if index is None else index,
        )
        self._record(region.index, None, region, self.current, self.current)
        return region

    # -- history -------------------------------------------------------------------------

    def _record(
        self, index: int, before: Region | None, after: Region | None, current_before, current_after
    ) -> None:
        step = _Step(
            index,
            None if before is None else _Packed.of(before),
            None if after is None else _Packed.of(after),
            current_before,
            current_after,
        )
        self._undo = [*self._undo[-(HISTORY - 1) :], step]
        self._redo = []
        self.version += 1

    def _put(self, index: int, packed: _Packed | None) -> None:
        live = self.regions.remove(index) if index in self.regions else None
        if packed is not None:
            mask, prompt = packed.region()
            caption = live.caption if live is not None else packed.caption  # captions are not undone
            self.regions.add(mask=mask, source=packed.source, prompt=prompt, caption=caption, index=index)

    def forget_history(self) -> None:
        """Start the history here (after an import, the regions loaded are not an undoable step)."""
        self._undo, self._redo = [], []

    def undo(self) -> bool:
        """Take back the last change; False when there is nothing to undo."""
        if not self._undo:
            return False
        step = self._undo.pop()
        self._put(step.index, step.before)
        self.current = step.current_before if step.current_before in self.regions else None
        self.corner = None
        self._redo.append(step)
        self.version += 1
        return True

    def redo(self) -> bool:
        """Do again what ``undo`` took back; False when there is nothing to redo."""
        if not self._redo:
            return False
        step = self._redo.pop()
        self._put(step.index, step.after)
        self.current = step.current_after if step.current_after in self.regions else None
        self.corner = None
        self._undo.append(step)
        self.version += 1
        return True
