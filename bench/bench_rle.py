"""Reading COCO RLE: ``rle_to_mask`` (numpy checks, pycocotools decodes, OpenCV turns the
columns into rows) against the character-by-character Python reader it replaced, and against
pycocotools' decode alone (no checks, the mask left in column order: the floor, and what the
app must not do with untrusted input).

    python bench/bench_rle.py [--width 8000 --height 6000 --repeats 3]

The three readers take turns within each repeat (medians are printed), so a busy machine
slows them alike.

The mask is noise (every pixel a coin flip), the worst case for RLE: about one run per two
pixels, so the counts string is about as long as the mask has pixels / 2 (a 48 MP mask
gives a ~24 MB string). A smooth mask with a few edges is also timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gar_app.rle import mask_to_rle, rle_to_mask  # noqa: E402


def old_rle_to_mask(rle: dict) -> np.ndarray:
    """The reader before this benchmark's change: the counts parsed in Python, one character
    at a time, then the runs expanded with numpy."""
    h, w = rle["size"]
    text = rle["counts"]
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        value = shift = 0
        while True:
            if pos == len(text):
                raise ValueError("RLE counts end in the middle of a number")
            c = ord(text[pos]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"RLE counts contain the character {text[pos]!r}")
            pos += 1
            value |= (c & 0x1F) << shift
            shift += 5
            if not c & 0x20:
                if c & 0x10:
                    value |= -1 << shift
                break
        counts.append(value + (counts[-2] if len(counts) > 2 else 0))
    if any(c < 0 for c in counts) or sum(counts) != h * w:
        raise ValueError("RLE counts do not cover the mask")
    flat = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
    return np.ascontiguousarray(flat.reshape(w, h).T)


def pycocotools_only(rle: dict) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).view(bool)


def old_mask_to_rle(mask: np.ndarray) -> dict:
    """The writer before: numpy's strided copy into column order, then pycocotools."""
    rle = mask_utils.encode(np.asfortranarray(mask != 0, dtype=np.uint8))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}


def timed(readers: dict, given, repeats: int) -> dict[str, float]:
    """Median seconds of each reader (or writer), taking turns within every repeat so that
    they share whatever else the machine is doing; their results are checked to be the same."""
    times: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(repeats):
        results = []
        for name, read in readers.items():
            start = time.perf_counter()
            results.append(read(given))
            times[name].append(time.perf_counter() - start)
        first = results[0]
        assert all(np.array_equal(r, first) if isinstance(r, np.ndarray) else r == first for r in results)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=8000)
    parser.add_argument("--height", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    noise = rng.random((args.height, args.width)) < 0.5
    ys, xs = np.ogrid[: args.height, : args.width]
    smooth = (xs - args.width / 2) ** 2 / (args.width / 3) ** 2 + (ys - args.height / 2) ** 2 / (
        args.height / 3
    ) ** 2 < 1
    for name, mask in [("noise", noise), ("ellipse", smooth)]:
        rle = mask_to_rle(mask)
        print(f"{name}: {args.width}x{args.height} mask, counts {len(rle['counts']) / 1e6:.2f} MB")
        readers = {"checked": rle_to_mask, "old": old_rle_to_mask, "unchecked": pycocotools_only}
        took = timed(readers, rle, args.repeats)
        assert np.array_equal(rle_to_mask(rle), mask)
        print(
            f"  checked reader {took['checked'] * 1e3:8.1f} ms | old Python reader {took['old'] * 1e3:8.1f} ms "
            f"| pycocotools decode alone {took['unchecked'] * 1e3:8.1f} ms"
        )
        print(
            f"  checked reader: {took['old'] / took['checked']:.1f}x faster than the old one, "
            f"{took['checked'] / took['unchecked']:.2f}x the time of pycocotools' decode alone"
        )
        wrote = timed({"new": mask_to_rle, "old": old_mask_to_rle}, mask, args.repeats)
        print(
            f"  writing: mask_to_rle {wrote['new'] * 1e3:.1f} ms, before {wrote['old'] * 1e3:.1f} ms "
            f"({wrote['old'] / wrote['new']:.1f}x faster)"
        )


if __name__ == "__main__":
    main()
