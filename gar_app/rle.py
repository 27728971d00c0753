"""COCO RLE, the one way masks are written and read (exports, API, batch, GARBench, tracks).

``rle_counts`` checks an RLE (its size against the pixel limit, its counts against the
size) without building the mask; ``rle_to_mask`` builds it after those checks, so a bad or
oversized RLE is refused before any memory is spent on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from gar_app.errors import InputError
from gar_app.images import max_image_pixels


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


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE ``{"size": [h, w], "counts": str}`` of an H x W mask (any non-zero is inside)."""
    array = np.asarray(mask)
    if array.ndim != 2 or array.size == 0:
        raise InputError(f"a mask must be a non-empty 2-D array, not shape {array.shape}")
    rle = mask_utils.encode(np.asfortranarray(array != 0, dtype=np.uint8))
    return {"size": [int(array.shape[0]), int(array.shape[1])], "counts": rle["counts"].decode("ascii")}


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
