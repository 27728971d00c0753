"""COCO RLE, the one way masks are written and read (exports, API, batch, GARBench, tracks).

Every RLE the app reads goes through ``checked_rle`` (or ``rle_to_mask``, which decodes what
it returns): its declared size against the mask's expected shape and the pixel limit, then
its counts, all before any memory is spent on the mask. pycocotools decodes only what passed,
because it does not check what it decodes: bad counts make it read and write past its buffers.

The counts string is checked with numpy, a block of characters at a time (a huge string
needs under a MB of scratch, not gigabytes, and the work stays in the CPU cache): only COCO's
64 characters, every number finished, no number longer than the mask can need, every run
non-negative, the runs summing to height x width. Errors name the caller's JSON path or
field (``where``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from gar_app.errors import InputError
from gar_app.images import check_image_size, check_mask_shape

BLOCK = 1 << 14  # characters checked at a time: scratch arrays of ~128 KB stay in the CPU cache
MAX_NUMBER_CHARS = 6  # pycocotools' decoder shifts in a C int: a 7th character overflows it


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE ``{"size": [h, w], "counts": str}`` of an H x W mask (any non-zero is inside)."""
    array = np.asarray(mask)
    if array.ndim != 2 or array.size == 0:
        raise InputError(f"a mask must be a non-empty 2-D array, not shape {array.shape}")
    rle = mask_utils.encode(_transposed((array != 0).view(np.uint8)).T)  # pycocotools reads columns
    return {"size": [int(array.shape[0]), int(array.shape[1])], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(
    rle: Any,
    where: str = "the mask",
    shape: tuple[int, int] | None = None,
    image: str = "the image",
) -> np.ndarray:
    """A boolean, C-ordered H x W mask from COCO RLE (counts as text, bytes or a list of runs).

    ``shape`` is the (height, width) the mask must have: another size is refused before the
    counts are read, as a ``MaskSizeError`` saying "``where`` is WxH but ``image`` is WxH".
    """
    checked = checked_rle(rle, where, shape, image)
    height, width = checked["size"]
    if height * width == 0:
        return np.zeros((height, width), bool)
    decoded = mask_utils.decode({"size": [height, width], "counts": checked["counts"].encode("ascii")})
    return _transposed(decoded.T).view(bool)  # pycocotools fills columns (Fortran order)


def _transposed(array: np.ndarray) -> np.ndarray:
    """A C-ordered copy of a 2-D uint8 array's transpose: OpenCV's tiled transpose takes about a
    tenth of the time of numpy's strided copy on a large mask."""
    import cv2

    return cv2.transpose(np.ascontiguousarray(array))


def checked_rle(
    rle: Any,
    where: str = "the mask",
    shape: tuple[int, int] | None = None,
    image: str = "the image",
) -> dict[str, Any]:
    """The RLE as ``{"size": [h, w], "counts": str}`` after every check, without decoding it.

    Text counts come back as they were given; a list of runs comes back as COCO's text.
    """
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise InputError(f"{where} must be an object with 'size' and 'counts' (COCO RLE)")
    size, counts = rle["size"], rle["counts"]
    if not (isinstance(size, list | tuple) and len(size) == 2 and all(_is_int(v) and v >= 0 for v in size)):
        raise InputError(
            f"{where}: RLE size must be [height, width] as two non-negative integers, not {size!r}"
        )
    height, width = int(size[0]), int(size[1])
    if shape is not None:
        check_mask_shape((height, width), shape[1], shape[0], where, image)
    check_image_size(width, height, where)
    if isinstance(counts, str):
        try:
            text = counts.encode("ascii")
        except UnicodeEncodeError as error:
            raise InputError(_bad_character(where, counts[error.start], error.start)) from None
        _check_text(text, where, height, width)
        return {"size": [height, width], "counts": counts}
    if isinstance(counts, bytes):
        _check_text(counts, where, height, width)
        return {"size": [height, width], "counts": counts.decode("ascii")}
    if isinstance(counts, list) and all(_is_int(v) for v in counts):
        _check_runs(counts, where, height, width)
        if height * width == 0:
            return {"size": [height, width], "counts": ""}
        encoded = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
        return {"size": [height, width], "counts": encoded["counts"].decode("ascii")}
    raise InputError(f"{where}: RLE counts must be a COCO counts string or a list of integers")


def max_number_chars(height: int, width: int) -> int:
    """Characters of the longest number a height x width mask's counts can need: a run, or the
    difference of two runs, is within +-(h * w), and each character holds 5 bits (sign included)."""
    return min(MAX_NUMBER_CHARS, -(-((height * width).bit_length() + 1) // 5))


def max_runs(height: int, width: int) -> int:
    """More runs than this is no mask: one per pixel plus a leading empty run, twice over for
    the empty runs other encoders leave in."""
    return 2 * (height * width + 1)


def _check_text(text: bytes, where: str, height: int, width: int) -> None:
    """The checks pycocotools skips, on COCO's compressed counts (see ``_numbers``)."""
    pixels = height * width
    longest = max_number_chars(height, width)
    if len(text) > max_runs(height, width) * longest:
        raise InputError(
            f"{where}: RLE counts are {len(text)} characters long, more than a {height}x{width} mask "
            f"can need ({max_runs(height, width) * longest})"
        )
    codes = np.frombuffer(text, np.uint8)
    chains = np.zeros(2, np.int64)  # the last run of the even and of the odd chain (see _runs)
    done = total = start = 0
    while start < codes.size:
        block = codes[start : start + BLOCK]
        wrong = np.flatnonzero((block < 48) | (block > 111))
        if wrong.size:
            at = start + int(wrong[0])
            raise InputError(_bad_character(where, chr(codes[at]), at))
        digits = block - 48
        ends = np.flatnonzero(digits < 32)  # the last character of each number has no 0x20 bit
        if ends.size == 0:  # no number ends in this block
            if start + block.size == codes.size:
                raise InputError(f"{where}: RLE counts end in the middle of a number")
            raise InputError(_too_long(where, block.size, longest, height, width))
        digits = digits[: ends[-1] + 1]  # a number cut by the block's end is read whole with the next
        runs = _runs(_numbers(digits, ends, longest, where, height, width), done, chains)
        if runs.min() < 0 or runs.max() > pixels:
            bad = int(np.flatnonzero((runs < 0) | (runs > pixels))[0])
            _refuse_run(int(runs[bad]), done + bad, where, height, width)
        total += int(runs.sum())
        done += runs.size
        start += digits.size
    if total != pixels:
        raise InputError(
            f"{where}: RLE counts do not cover a {height}x{width} mask (they sum to {total} pixels)"
        )


def _numbers(
    digits: np.ndarray, ends: np.ndarray, longest: int, where: str, height: int, width: int
) -> np.ndarray:
    """COCO's numbers: 5 bits per character, least significant first; 0x20 says "more follow",
    and 0x10 on the last character makes the number negative."""
    last = digits[ends]
    values = (last & 0x1F).astype(np.int64)
    negative = (last & 0x10).astype(np.int64) >> 4  # 1 where the number is negative
    if ends.size == digits.size:  # every number one character long (the common case)
        values -= negative << 5
        return values
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    extra = ends - starts  # characters before the last one
    if int(extra.max()) >= longest:
        raise InputError(_too_long(where, int(extra.max()) + 1, longest, height, width))
    values <<= 5 * extra
    for k in range(int(extra.max())):
        has = np.flatnonzero(extra > k)
        values[has] |= (digits[starts[has] + k] & 0x1F).astype(np.int64) << (5 * k)
    values -= negative << (5 * (extra + 1))
    return values


def _runs(values: np.ndarray, done: int, chains: np.ndarray) -> np.ndarray:
    """Run lengths from COCO's numbers, in place: from the fourth number on, each one is the
    difference to the run two before it (so even and odd runs form two running sums).

    ``done`` numbers came before these; ``chains`` holds the last run of each chain and is
    updated, so a long string can be read a block at a time.
    """
    for parity in (0, 1):
        first = (parity - done) % 2
        if parity == 0 and done == 0:
            first = 2  # run 0 stands alone; the even chain starts at run 2
        chain = values[first::2]
        if chain.size:
            np.cumsum(chain, out=chain)
            if done + first > 2:  # the chain was already running in an earlier block
                chain += chains[parity]
            chains[parity] = chain[-1]
    return values


def _check_runs(runs: list[int], where: str, height: int, width: int) -> None:
    """Checks on runs given as a list of integers (COCO's uncompressed RLE)."""
    if len(runs) > max_runs(height, width):
        raise InputError(
            f"{where}: RLE counts hold {len(runs)} runs, more than a {height}x{width} mask can have"
        )
    pixels = height * width
    if runs and not 0 <= min(runs) <= max(runs) <= pixels:
        number = next(i for i, run in enumerate(runs) if not 0 <= run <= pixels)
        _refuse_run(runs[number], number, where, height, width)
    if sum(runs) != pixels:
        raise InputError(
            f"{where}: RLE counts do not cover a {height}x{width} mask (they sum to {sum(runs)} pixels)"
        )


def _refuse_run(run: int, number: int, where: str, height: int, width: int) -> None:
    if run < 0:
        raise InputError(f"{where}: RLE run {number} is negative ({run})")
    raise InputError(
        f"{where}: RLE counts do not cover a {height}x{width} mask (run {number} alone is {run} pixels)"
    )


def _bad_character(where: str, character: str, at: int) -> str:
    return f"{where}: RLE counts hold the character {character!r} (at {at}), which COCO RLE never uses"


def _too_long(where: str, length: int, longest: int, height: int, width: int) -> str:
    return (
        f"{where}: RLE counts hold a number of {length} or more characters; "
        f"a {height}x{width} mask needs at most {longest}"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
