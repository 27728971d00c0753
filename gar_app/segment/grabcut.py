"""Segmentation without weights: OpenCV GrabCut seeded from the user's marks.

Used when no SAM checkpoint is available so the app still annotates offline. Marks become
GrabCut's trimap: a box (or lasso) makes everything outside it sure background and its
inside probable foreground; clicks and open strokes are sure foreground (positive) or sure
background (negative), and with clicks alone the area around the positive clicks starts
as probable foreground. Only the part of the image around the marks is cut, at most
``work_pixels`` large, and the mask is scaled back up, so a click stays well under a second
even on a 40-megapixel photo.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from gar_app.segment.base import CheckedPrompt, Segmenter, SegmentResult

WORK_PIXELS = 160_000
SEED_RADIUS = 2  # working pixels around each click that are certainly (not) the object
# With clicks only, GrabCut's first colour model of the object comes from this far (a fraction of
# the short side) around the positive clicks: a few clicked pixels are too few to learn from.
# (A stroke paints enough pixels, and a wide prior would let it leak into the background.)
PRIOR_REACH = 0.125


# A box cut that keeps less than this share of the box found no object: the box is a better answer.
COLLAPSED = 0.02


class GrabCutSegmenter(Segmenter):
    """GrabCut fallback; ``reason`` says why SAM is not in use and ends up in ``name``."""

    def __init__(self, reason: str = "no SAM weights", iterations: int = 4, work_pixels: int = WORK_PIXELS):
        super().__init__()
        self.name = f"GrabCut fallback ({reason})"
        self.iterations = iterations
        self.work_pixels = work_pixels
        self._rgb: np.ndarray | None = None

    def _set_rgb(self, rgb: np.ndarray) -> None:
        self._rgb = rgb

    def _segment(self, prompt: CheckedPrompt) -> SegmentResult:
        x0, y0, x1, y1 = _roi(prompt)
        crop = self._rgb[y0:y1, x0:x1]
        ch, cw = crop.shape[:2]
        scale = min(1.0, math.sqrt(self.work_pixels / (cw * ch)))
        size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
        work = crop if scale == 1.0 else cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        trimap, seeds = _trimap(prompt, (x0, y0, x1, y1), size)
        fg = _cut(work, trimap, seeds, self.iterations)
        if scale < 1.0:
            fg = cv2.resize(fg.astype(np.uint8) * 255, (cw, ch), interpolation=cv2.INTER_LINEAR) > 127
        mask = np.zeros((prompt.height, prompt.width), bool)
        mask[y0:y1, x0:x1] = fg
        allowed = _allowed(prompt)
        if allowed is not None:
            mask &= allowed
            if mask.sum() < COLLAPSED * allowed.sum():  # the cut collapsed to a speck inside the box
                return SegmentResult(allowed, 0.0)
        if mask.any():
            return SegmentResult(mask, 1.0)  # GrabCut has no quality estimate of its own
        # Nothing stood out (e.g. a flat image): the marks themselves are the best answer,
        # and a score of 0 says so; an empty mask would be a dead end for the user.
        return SegmentResult(_marked_area(prompt), 0.0)


def _box_pixels(box: np.ndarray) -> tuple[int, int, int, int]:
    """Pixels a corner box covers, as an exclusive integer range (at least one pixel)."""
    x1, y1 = int(math.floor(box[0])), int(math.floor(box[1]))
    return x1, y1, max(x1 + 1, int(math.ceil(box[2]))), max(y1 + 1, int(math.ceil(box[3])))


def _allowed(prompt: CheckedPrompt) -> np.ndarray | None:
    """Where the object may be at all: inside the box and the lasso, when given."""
    allowed = None
    if prompt.box is not None:
        x1, y1, x2, y2 = _box_pixels(prompt.box)
        allowed = np.zeros((prompt.height, prompt.width), bool)
        allowed[y1:y2, x1:x2] = True
    if prompt.lasso is not None:
        allowed = prompt.lasso if allowed is None else allowed & prompt.lasso
    return allowed


def _marked_area(prompt: CheckedPrompt) -> np.ndarray:
    area = _allowed(prompt)
    if area is None:
        area = (
            np.zeros((prompt.height, prompt.width), bool) if prompt.stroke is None else prompt.stroke.copy()
        )
        for (x, y), label in zip(prompt.points, prompt.labels, strict=True):
            area[int(y), int(x)] |= bool(label)
    return area


def _roi(prompt: CheckedPrompt) -> tuple[int, int, int, int]:
    """The part of the image worth cutting: the box/lasso plus a margin, else the whole image."""
    w, h = prompt.width, prompt.height
    extents = []
    if prompt.box is not None:
        extents.append(_box_pixels(prompt.box))
    if prompt.lasso is not None:
        ys, xs = np.nonzero(prompt.lasso)
        extents.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    if not extents:
        return 0, 0, w, h
    for x, y in prompt.points:
        extents.append((int(x), int(y), int(x) + 1, int(y) + 1))
    x0, y0 = min(e[0] for e in extents), min(e[1] for e in extents)
    x1, y1 = max(e[2] for e in extents), max(e[3] for e in extents)
    margin = max(8, round(0.1 * max(x1 - x0, y1 - y0)))
    return max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)


def _trimap(prompt: CheckedPrompt, roi: tuple[int, int, int, int], size: tuple[int, int]):
    """GrabCut labels for the working image, and the sure-foreground seeds the user placed."""
    x0, y0, x1, y1 = roi
    ww, wh = size
    sx, sy = ww / (x1 - x0), wh / (y1 - y0)

    def to_work(region: np.ndarray) -> np.ndarray:
        crop = region[y0:y1, x0:x1].astype(np.uint8) * 255
        return (
            cv2.resize(crop, size, interpolation=cv2.INTER_AREA) > 0 if crop.shape[::-1] != size else crop > 0
        )

    allowed = _allowed(prompt)
    if allowed is None:
        trimap = np.full((wh, ww), cv2.GC_PR_BGD, np.uint8)
    else:
        trimap = np.full((wh, ww), cv2.GC_BGD, np.uint8)
        trimap[to_work(allowed)] = cv2.GC_PR_FGD
    seeds = np.zeros((wh, ww), bool)
    if prompt.stroke is not None and prompt.lasso is None:  # an open stroke paints on the object
        seeds |= to_work(prompt.stroke)
    negative = np.zeros((wh, ww), np.uint8)
    positive = np.zeros((wh, ww), np.uint8)
    for (x, y), label in zip(prompt.points, prompt.labels, strict=True):
        centre = (min(ww - 1, int((x - x0) * sx)), min(wh - 1, int((y - y0) * sy)))
        cv2.circle(positive if label else negative, centre, SEED_RADIUS, 1, -1)
    if allowed is None and positive.any() and not seeds.any():  # clicks only: the object is around them
        ys, xs = np.nonzero(positive)
        reach = round(PRIOR_REACH * min(ww, wh))
        trimap[
            max(0, ys.min() - reach) : ys.max() + reach + 1, max(0, xs.min() - reach) : xs.max() + reach + 1
        ] = cv2.GC_PR_FGD
    seeds |= positive.astype(bool)
    trimap[seeds] = cv2.GC_FGD
    trimap[negative.astype(bool)] = cv2.GC_BGD
    seeds &= trimap == cv2.GC_FGD
    return trimap, seeds


def _cut(work: np.ndarray, trimap: np.ndarray, seeds: np.ndarray, iterations: int) -> np.ndarray:
    """Run GrabCut; keep the pieces connected to the user's seeds when there are any."""
    is_fg = (trimap == cv2.GC_FGD) | (trimap == cv2.GC_PR_FGD)
    if not is_fg.any():
        return is_fg
    if is_fg.all():  # GrabCut needs some background to learn from: offer the border
        border = np.ones(trimap.shape, bool)
        border[1:-1, 1:-1] = False
        trimap[border & (trimap == cv2.GC_PR_FGD)] = cv2.GC_PR_BGD
    has_background = np.isin(trimap, (cv2.GC_BGD, cv2.GC_PR_BGD)).any()
    if min(trimap.shape) < 4 or not has_background:
        return is_fg  # too small to model colours: the marks are the answer
    labels = trimap.copy()
    try:
        bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
        cv2.grabCut(
            np.ascontiguousarray(work[..., ::-1]), labels, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK
        )
    except cv2.error:  # degenerate colour statistics (e.g. a flat image): keep the marks' guess
        return is_fg
    fg = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    if seeds.any():
        _, components = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
        keep = np.unique(components[seeds & fg])
        fg = np.isin(components, keep[keep > 0])
    return fg
