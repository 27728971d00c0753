"""Clicks per second with SAM's cached image embedding vs recomputing it, overlay redraw time,
and GrabCut time per click, all measured in one run.

    python bench/bench_segment.py                      # tiny random SAM on the CPU
    python bench/bench_segment.py --random-size vit_h --device cuda   # real-size SAM, random weights
    python bench/bench_segment.py --sam ~/.cache/gar-app/sam/sam_vit_b_01ec64.pth --device cuda
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gar_app.devices import default_device  # noqa: E402
from gar_app.regions import RegionSet, render_overlay  # noqa: E402
from gar_app.segment import REGISTRY, GrabCutSegmenter, SamSegmenter, build_sam, load_segmenter  # noqa: E402
from gar_app.segment.tiny import write_tiny_sam  # noqa: E402

WIDTH, HEIGHT = 2048, 1536


def synthetic_image(seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """A noisy gradient with five filled ellipses (their masks are the five regions)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = np.stack([60 + 60 * xx / WIDTH, 110 + 40 * yy / HEIGHT, 70 + 0 * xx], -1).astype(np.float32)
    masks = []
    for i in range(5):
        mask = np.zeros((HEIGHT, WIDTH), np.uint8)
        cv2.ellipse(mask, (250 + 380 * i, 500 + 120 * (i % 3)), (170, 260), 20 * i, 0, 360, 1, -1)
        image[mask > 0] = rng.integers(30, 230, 3)
        masks.append(mask > 0)
    image += rng.normal(0, 10, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), masks


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls (one warm-up call first)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_sam(args) -> SamSegmenter:
    if args.random_size:
        with torch.device(args.device):  # initialise on the device: much faster for vit_h
            model = build_sam(REGISTRY[args.random_size])
        model = model.to(args.device)  # any buffer the legacy constructors left on the CPU
        return SamSegmenter(model.eval(), name=f"SAM {args.random_size} (random weights)")
    path = args.sam or write_tiny_sam(Path(tempfile.mkdtemp()) / "tiny_sam.pth")
    segmenter = load_segmenter(path, device=args.device)
    assert isinstance(segmenter, SamSegmenter)
    return segmenter


def bench_sam(args, image: np.ndarray, masks: list[np.ndarray]) -> None:
    sam = make_sam(args)
    clicks = [[float(x), float(y)] for y, x in (np.argwhere(m)[len(np.argwhere(m)) // 2] for m in masks)]
    print(f"segmenter: {sam.name} on {args.device}")
    variants = [sam]
    if sam.device.type == "cuda":  # the encoder in float32 too, to see what bfloat16 saves
        variants.append(SamSegmenter(sam.model, name=sam.name, half=not sam.half))
    for segmenter in variants:

        def click(i=[0], segmenter=segmenter):  # noqa: B006 - a counter that cycles over the clicks
            segmenter.segment(points=[clicks[i[0] % len(clicks)]])
            i[0] += 1
            sync(args.device)

        def recompute(segmenter=segmenter, click=click):
            segmenter.clear_cache()
            segmenter.set_image(image)
            click()

        segmenter.set_image(image)
        cached = timed(click, args.clicks)
        fresh = timed(recompute, max(3, args.clicks // 4))
        precision = "bfloat16" if segmenter.half else "float32"
        print(f"image encoder in {precision}:")
        print(f"  SAM click, cached embedding:     {cached * 1000:8.1f} ms  ({1 / cached:7.1f} clicks/s)")
        print(f"  SAM click, embedding recomputed: {fresh * 1000:8.1f} ms  ({1 / fresh:7.1f} clicks/s)")
        print(
            f"  speed-up from caching: {fresh / cached:.1f}x  (embeddings computed: {segmenter.embeddings_computed})"
        )


def bench_overlay(args, image: np.ndarray, masks: list[np.ndarray]) -> None:
    regions = RegionSet(limit=5)
    for mask in masks:
        regions.add(mask, "mask")
    render_overlay(image, regions)  # label points are computed once per region, then cached
    redraw = timed(lambda: render_overlay(image, regions, selected=2), args.repeats)
    print(f"overlay redraw, {WIDTH}x{HEIGHT}, 5 regions: {redraw * 1000:8.1f} ms")


def bench_grabcut(args, image: np.ndarray, masks: list[np.ndarray]) -> None:
    grabcut = GrabCutSegmenter()
    grabcut.set_image(image)
    ys, xs = np.nonzero(masks[1])
    box = [xs.min() - 20, ys.min() - 20, xs.max() + 20, ys.max() + 20]
    point = [[float(xs[len(xs) // 2]), float(ys[len(ys) // 2])]]
    repeats = max(3, args.repeats // 5)
    print(f"GrabCut click, box:   {timed(lambda: grabcut.segment(box=box), repeats) * 1000:8.1f} ms")
    print(f"GrabCut click, point: {timed(lambda: grabcut.segment(points=point), repeats) * 1000:8.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", help="SAM checkpoint to time (default: a tiny random one)")
    parser.add_argument("--random-size", choices=sorted(REGISTRY), help="random SAM of a released size")
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--clicks", type=int, default=20, help="timed clicks with the cached embedding")
    parser.add_argument("--repeats", type=int, default=20, help="timed overlay redraws")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (1 avoids OpenMP stalls on a busy machine)"
    )
    parser.add_argument("--skip-grabcut", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    image, masks = synthetic_image()
    bench_sam(args, image, masks)
    bench_overlay(args, image, masks)
    if not args.skip_grabcut:
        bench_grabcut(args, image, masks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
