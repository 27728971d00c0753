"""The region set: each marked region's index, tag ``<PromptN>``, colour, mask and caption.

Tags and colours follow the index: ``<Prompt0>`` red, ``<Prompt1>`` green, ``<Prompt2>``
blue, then the fixed ``REGION_COLOURS`` palette, so a region looks the same on the canvas,
in the region list, in the chat and in the export.

Removal policy — **tags are stable; freed numbers are reused.** Removing ``<Prompt1>``
leaves ``<Prompt0>`` and ``<Prompt2>`` exactly as they were (same tag, same colour), so
earlier chat turns that mention them stay true. The next region added takes the lowest
free index (here 1 again). Because every new region takes the lowest free index, a set
holding fewer than ``limit`` regions always has a free index below ``limit``: GAR's rule
that prompt ids are ``< prompt_numbers`` holds without renumbering. Callers who want
contiguous tags anyway (e.g. a fresh dialogue, or training export) call ``compact()``,
which renumbers in index order and returns the old-to-new mapping.

Overlap: regions may overlap; each keeps its whole mask (GAR takes each region's box
from its own mask). Rendering blends overlapping fills in index order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal, get_args

import cv2
import numpy as np
from PIL import Image

from gar_app.errors import InputError
from gar_app.images import ImageSource, check_mask_shape, load_image, mask_box
from gar_app.segment.base import Prompt
from gar_app.tags import parse_tag, tag

RegionSource = Literal["points", "box", "scribble", "mask"]
SOURCES: tuple[str, ...] = get_args(RegionSource)  # how a region can be made, in both document kinds

# Red, green, blue as in the GAR paper's figures, then colours far apart from them and each other.
REGION_COLOURS: tuple[str, ...] = (
    "#FF0000",
    "#00FF00",
    "#0000FF",
    "#FFFF00",
    "#FF00FF",
    "#00FFFF",
    "#FF8000",
    "#8000FF",
    "#00FF80",
    "#FF0080",
    "#0080FF",
    "#80FF00",
    "#800000",
    "#008000",
    "#000080",
    "#808000",
    "#800080",
    "#008080",
    "#FF8080",
    "#8080FF",
)


def region_colour(index: int) -> str:
    """Hex colour of region ``index``; the palette repeats past its end (annotation mode only)."""
    return REGION_COLOURS[index % len(REGION_COLOURS)]


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


@dataclass(frozen=True, eq=False)
class Region:
    """One region. Immutable: ``RegionSet.update`` replaces it, so cached geometry stays right."""

    index: int
    mask: np.ndarray  # (H, W) bool, read-only
    source: RegionSource = "mask"
    prompt: Prompt | None = None  # the marks it was made from; None for an uploaded mask
    caption: str = ""

    @property
    def tag(self) -> str:
        return tag(self.index)

    @property
    def colour(self) -> str:
        return region_colour(self.index)

    @property
    def rgb(self) -> tuple[int, int, int]:
        return hex_to_rgb(self.colour)

    @cached_property
    def box(self) -> tuple[int, int, int, int]:
        """Inclusive pixel box ``(x_min, y_min, x_max, y_max)`` of the mask, as GAR computes it."""
        return mask_box(self.mask)

    @cached_property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    @cached_property
    def label_point(self) -> tuple[int, int]:
        """The pixel deepest inside the mask (``x, y``): a tag there sits on the region even
        when the region is a ring or a C shape, where the centroid would fall outside."""
        x0, y0, x1, y1 = self.box
        crop = self.mask[y0 : y1 + 1, x0 : x1 + 1].astype(np.uint8)
        scale = min(1.0, 128 / max(crop.shape))
        if scale < 1.0:
            size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
            crop = cv2.resize(crop, size, interpolation=cv2.INTER_NEAREST)
        padded = cv2.copyMakeBorder(crop, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        depth = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
        return (min(x1, x0 + int((x + 0.5) / scale)), min(y1, y0 + int((y + 0.5) / scale)))


def _as_mask(mask: ImageSource, shape: tuple[int, int] | None) -> np.ndarray:
    if isinstance(mask, np.ndarray) and mask.ndim == 2:
        array = mask != 0
    elif isinstance(mask, (np.ndarray, Image.Image)):
        from gar_app.images import load_mask

        array = load_mask(mask)
    else:
        raise InputError(f"a region mask must be an image or a 2-D array, not {type(mask).__name__}")
    if shape is not None:
        check_mask_shape(array.shape, shape[1], shape[0])
    if not array.any():
        raise InputError("the mask is empty: nothing was selected, so there is no region to add")
    array = array.copy()
    array.setflags(write=False)
    return array


class RegionSet:
    """The regions of one image, by index (see the module docstring for the removal policy).

    ``limit`` is the model's ``prompt_numbers`` (GAR knows ``<Prompt0>`` .. ``<Prompt{limit-1}>``);
    None means no limit, for annotating without a model.
    """

    def __init__(self, limit: int | None = None, shape: tuple[int, int] | None = None):
        if limit is not None and limit < 1:
            raise InputError(f"the region limit must be at least 1, got {limit}")
        self._limit = limit
        self._given_shape = shape
        self.shape = shape  # (H, W) of the image; set by the first region when not given
        self._regions: dict[int, Region] = {}

    @property
    def limit(self) -> int | None:
        return self._limit

    @limit.setter
    def limit(self, value: int | None) -> None:
        """Switching models may lower the limit; regions above it must go first."""
        too_high = [r.tag for r in self if value is not None and r.index >= value]
        if too_high:
            raise InputError(
                f"this model knows {value} regions (<Prompt0>..<Prompt{value - 1}>); "
                f"remove or renumber {', '.join(too_high)} first"
            )
        self._limit = value

    def __len__(self) -> int:
        return len(self._regions)

    def __iter__(self) -> Iterator[Region]:
        return iter([self._regions[i] for i in sorted(self._regions)])

    def __contains__(self, key: object) -> bool:
        try:
            return parse_tag(key) in self._regions  # type: ignore[arg-type]
        except InputError:
            return False

    def __getitem__(self, key: int | str) -> Region:
        return self.get(key)

    @property
    def tags(self) -> list[str]:
        return [r.tag for r in self]

    @property
    def is_full(self) -> bool:
        return self._limit is not None and len(self) >= self._limit

    def get(self, key: int | str) -> Region:
        """A region by index or tag."""
        index = parse_tag(key)
        if index not in self._regions:
            have = ", ".join(self.tags) or "none yet"
            raise InputError(f"there is no region {tag(index)} (regions: {have})")
        return self._regions[index]

    def next_index(self) -> int:
        """The lowest index not in use."""
        return next(i for i in range(len(self) + 1) if i not in self._regions)

    def add(
        self,
        mask: ImageSource,
        source: RegionSource | None = None,
        prompt: Prompt | None = None,
        caption: str = "",
        index: int | None = None,
    ) -> Region:
        """Add a region at the lowest free index (or at ``index``, e.g. when importing).

        ``source`` defaults to what ``prompt`` says (scribble > box > points), else "mask".
        """
        source = source or (prompt.source if prompt is not None else "mask")
        if source not in SOURCES:
            raise InputError(f"unknown region source {source!r}; use one of {', '.join(SOURCES)}")
        if index is None:
            if self.is_full:
                raise InputError(
                    f"at most {self._limit} regions with this model (<Prompt0>..<Prompt{self._limit - 1}>); "
                    "remove a region before adding another"
                )
            index = self.next_index()
        elif index < 0 or index in self._regions or (self._limit is not None and index >= self._limit):
            limit = "" if self._limit is None else f" below {self._limit}"
            raise InputError(f"cannot add {tag(index)}: the index must be free and{limit} >= 0")
        array = _as_mask(mask, self.shape)
        self.shape = array.shape
        region = Region(index, array, source, prompt, caption)
        self._regions[index] = region
        return region

    def update(
        self,
        key: int | str,
        *,
        mask: ImageSource | None = None,
        source: RegionSource | None = None,
        prompt: Prompt | None = None,
        caption: str | None = None,
    ) -> Region:
        """Replace a region's mask (and how it was made) and/or caption; the tag stays."""
        region = self.get(key)
        changes: dict = {}
        if mask is not None:
            changes["mask"] = _as_mask(mask, self.shape)
            changes["prompt"] = prompt
            changes["source"] = source or ("mask" if prompt is None else prompt.source)
        elif source is not None or prompt is not None:
            raise InputError("a new source or prompt comes with a new mask")
        if caption is not None:
            changes["caption"] = caption
        updated = replace(region, **changes)
        self._regions[region.index] = updated
        return updated

    def remove(self, key: int | str) -> Region:
        """Remove a region; the others keep their tags and colours."""
        region = self.get(key)
        del self._regions[region.index]
        if not self._regions:
            self.shape = self._given_shape
        return region

    def clear(self) -> None:
        self._regions.clear()
        self.shape = self._given_shape

    def compact(self) -> dict[int, int]:
        """Renumber to ``0..n-1`` in index order; returns ``{old: new}`` for the caller's texts."""
        mapping = {old: new for new, old in enumerate(sorted(self._regions))}
        self._regions = {mapping[i]: replace(r, index=mapping[i]) for i, r in self._regions.items()}
        return mapping

    def overlap(self, a: int | str, b: int | str) -> int:
        """Pixels two regions share."""
        return int(np.count_nonzero(self.get(a).mask & self.get(b).mask))


def _ink(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text, whichever reads better on the region's colour."""
    return (0, 0, 0) if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140 else (255, 255, 255)


def render_overlay(
    image: ImageSource,
    regions: RegionSet | Iterable[Region],
    selected: int | str | None = None,
    alpha: float = 0.45,
    labels: bool = True,
) -> np.ndarray:
    """The image with every region drawn on it: translucent fill, contour and tag label.

    Fills go first (in index order, so overlaps blend), then contours, then labels, so no
    region hides another's outline or tag; the ``selected`` region is outlined thicker and
    drawn last. Each region is processed only inside its box, which keeps a redraw of a
    2048 px image with several regions to a few milliseconds. Returns HxWx3 uint8 RGB.
    """
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        out = image.copy()
    else:
        out = np.array(load_image(image))
    height, width = out.shape[:2]
    chosen = None if selected is None else parse_tag(selected)
    ordered = sorted(regions, key=lambda r: (r.index == chosen, r.index))
    for region in ordered:
        check_mask_shape(region.mask.shape, width, height, f"{region.tag}'s mask")
    alpha = float(np.clip(alpha, 0.0, 1.0))
    line = max(1, round(min(height, width) / 400))
    for region in ordered:  # fill: blend the box with the colour, keep the blend where the mask is
        x0, y0, x1, y1 = region.box
        crop = np.ascontiguousarray(out[y0 : y1 + 1, x0 : x1 + 1])
        inside = np.ascontiguousarray(region.mask[y0 : y1 + 1, x0 : x1 + 1]).view(np.uint8)
        row = np.empty((1, crop.shape[1], 3), np.uint8)
        row[:] = region.rgb
        tint = cv2.repeat(row, crop.shape[0], 1)  # ~15x faster than broadcasting into the crop
        cv2.copyTo(cv2.addWeighted(crop, 1.0 - alpha, tint, alpha, 0.0), inside, crop)
        out[y0 : y1 + 1, x0 : x1 + 1] = crop
    for region in ordered:
        thickness = 2 * line + 1 if region.index == chosen else line
        x0, y0, x1, y1 = region.box
        inside = region.mask[y0 : y1 + 1, x0 : x1 + 1].astype(np.uint8)
        contours, _ = cv2.findContours(inside, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))
        cv2.drawContours(out, contours, -1, region.rgb, thickness)
    if labels:
        # tags about 4% of the long side tall, so they stay legible however the canvas scales the image
        scale = max(0.4, 0.04 * max(height, width) / 22)
        stroke = max(1, round(scale * 1.5))
        for region in ordered:
            _draw_label(out, region, scale, stroke)
    return out


def _draw_label(out: np.ndarray, region: Region, scale: float, stroke: int) -> None:
    """The tag on a label in the region's colour, centred on its label point: black or white
    text on the fill, a thin dark border around the label (never around the letters)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(region.tag, font, scale, stroke)
    pad = max(2, th // 3)
    w, h = tw + 2 * pad, th + base + 2 * pad
    x, y = region.label_point
    height, width = out.shape[:2]
    left = int(np.clip(x - w // 2, 0, max(0, width - w - 1)))
    top = int(np.clip(y - h // 2, 0, max(0, height - h - 1)))
    cv2.rectangle(out, (left, top), (left + w, top + h), region.rgb, cv2.FILLED)
    cv2.rectangle(out, (left, top), (left + w, top + h), (0, 0, 0), max(1, stroke // 2))
    cv2.putText(
        out, region.tag, (left + pad, top + pad + th), font, scale, _ink(region.rgb), stroke, cv2.LINE_AA
    )
