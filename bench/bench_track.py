"""Video tracking speed and memory, measured in one run.

    python bench/bench_track.py                          # fallback frames/s (CPU), SAM 2 hiera-tiny size on the CPU
    python bench/bench_track.py --device cuda --sam2-frames 200   # SAM 2 hiera-tiny size (random weights) on a GPU
    python bench/bench_track.py --long                   # + a 10-minute 1080p clip: peak memory while tracking
    python bench/bench_track.py --huge                   # + how fast a 16000 x 16000 video is refused

SAM 2 is built in memory at the released hiera-tiny sizes (transformers' ``Sam2VideoConfig``
defaults) with random weights (``gar-app tiny sam2 DIR --size hiera-tiny`` writes the same
model to disk); its speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gar_app.devices import DTYPES, torch_dtype  # noqa: E402
from gar_app.tracking.classical import ClassicalTracker  # noqa: E402
from gar_app.tracking.sam2 import Sam2Tracker  # noqa: E402
from gar_app.tracking.sam2_checkpoint import Sam2Checkpoint  # noqa: E402
from gar_app.tracking.synthetic import long_clip_frames, moving_shape_clip, write_clip, write_mjpeg_avi  # noqa: E402
from gar_app.tracking.tiny import build_tiny_sam2, tiny_processor  # noqa: E402
from gar_app.tracking.tracks import VideoTracks  # noqa: E402
from gar_app.video import Clip  # noqa: E402


def peak_mb() -> float:
    """This process's peak resident memory since the last ``reset_peak`` (Linux's VmHWM).

    Not ``ru_maxrss``: that one carries over the parent's peak into a child process.
    """
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current resident size


def propagate_fps(clip: Clip, tracker, first_mask, device: str = "cpu") -> tuple[float, int]:
    """Frames per second of one propagation from frame 0 to the end (keyframe excluded)."""
    tracks = VideoTracks(clip, tracker)
    tracks.add_region(0, mask=first_mask)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = tracks.propagate()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return result.done / (time.perf_counter() - start), result.done


def bench_fallback(folder: Path) -> None:
    for width, height, size in ((640, 360, 120), (1920, 1080, 300)):
        synthetic = moving_shape_clip(frames=60, width=width, height=height, shape_size=size)
        path = write_clip(folder / f"shape_{height}.mp4", synthetic.frames, synthetic.fps)
        fps, frames = propagate_fps(Clip(path), ClassicalTracker(), synthetic.truth[0])
        print(f"fallback (classical, CPU), {width}x{height}, {frames} frames: {fps:.1f} frames/s")


def bench_sam2(folder: Path, device: str, dtype: torch.dtype, frames: int) -> None:
    model = build_tiny_sam2("hiera-tiny").to(device=device, dtype=dtype)
    checkpoint = Sam2Checkpoint(
        model,
        tiny_processor("hiera-tiny"),
        __import__("transformers").Sam2VideoInferenceSession,
        "random weights, hiera-tiny size",
    )
    tracker = Sam2Tracker(checkpoint)
    synthetic = moving_shape_clip(frames=frames + 1, width=1280, height=720, shape_size=200)
    path = write_clip(folder / "sam2.mp4", synthetic.frames, synthetic.fps)
    propagate_fps(Clip(path, max_frames=3), tracker, synthetic.truth[0], device)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    fps, done = propagate_fps(Clip(path), tracker, synthetic.truth[0], device)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    memory = (
        f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB"
        if device.startswith("cuda")
        else ""
    )
    print(
        f"SAM 2 hiera-tiny size ({params:.1f} M parameters, {str(dtype).removeprefix('torch.')}) on {device}, "
        f"1280x720, {done} frames: {fps:.2f} frames/s{memory}"
    )


def bench_long(folder: Path, video: Path | None) -> None:
    """Track a 10-minute 1080p clip (5 fps, 3000 frames) with the fallback; report peak memory."""
    video_given = video is not None
    if video is None:
        video = folder / "long.mp4"
        start = time.perf_counter()
        write_clip(video, long_clip_frames(10.0), 5.0)
        print(
            f"10-minute 1080p clip written in {time.perf_counter() - start:.0f} s ({video.stat().st_size >> 20} MB)"
        )
    reset_peak()
    before = peak_mb()
    clip = Clip(video)
    first = next(iter(clip.frames([0])))[1]
    from gar_app.segment.base import Prompt

    tracker = ClassicalTracker()
    mask = tracker.segment(first, Prompt(points=[[960, 540]]))
    tracks = VideoTracks(clip, tracker)
    tracks.add_region(0, mask=mask)

    def progress(done: int, total: int) -> None:
        if done % 100 == 0 or done == total:
            bar = "#" * (30 * done // total)
            print(
                f"\r  [{bar:<30}] {done}/{total} frames, peak RSS {peak_mb():.0f} MB", end="", file=sys.stderr
            )

    start = time.perf_counter()
    result = tracks.propagate(progress=progress)
    seconds = time.perf_counter() - start
    print(file=sys.stderr)
    peak = peak_mb()
    stored = sum(len(str(r)) for region in tracks for r in region.masks.values()) / 2**20
    print(
        f"10-minute 1080p clip, {len(clip)} frames: tracked in {seconds:.0f} s ({result.done / seconds:.1f} frames/s); "
        f"peak RSS {peak:.0f} MB (before opening the clip: {before:.0f} MB; stated bound: 1024 MB); "
        f"masks kept as RLE: {stored:.1f} MB"
    )
    if video_given:
        return
    scores = []  # how well it tracked: IoU with the truth on every 100th frame
    for index, (_frame, truth) in enumerate(long_clip_frames(10.0, truth=True)):
        if index % 100 == 0:
            got = tracks.mask(0, index)
            scores.append(0.0 if got is None else float((got & truth).sum() / (got | truth).sum()))
    print(
        f"  IoU with the truth on every 100th frame: min {min(scores):.3f}, mean {sum(scores) / len(scores):.3f}; "
        f"region present on {sum(tracks.presence(0))} of {len(clip)} frames"
    )


def bench_huge(folder: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (16000, 16000), 128).save(buffer, "JPEG", quality=30)
    path = write_mjpeg_avi(folder / "huge.avi", [buffer.getvalue()], 16000, 16000)
    code = (
        "import time; t = time.perf_counter(); from gar_app.tracking import open_video\n"
        f"try:\n    open_video({str(path)!r})\nexcept Exception as error:\n    message = str(error)\n"
        "peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024\n"
        "print(time.perf_counter() - t, peak, message)"
    )
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    total = time.perf_counter() - start
    seconds, peak, message = out.split(" ", 2)
    print(
        f"16000x16000 video refused {float(seconds):.2f} s after start-up (process total {total:.2f} s), "
        f"peak memory {float(peak):.0f} MB: {message.strip()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=DTYPES)
    parser.add_argument(
        "--sam2-frames", type=int, default=None, help="frames for SAM 2 (default 2 on CPU, 200 on GPU)"
    )
    parser.add_argument("--no-sam2", action="store_true")
    parser.add_argument("--long", action="store_true", help="also track a generated 10-minute 1080p clip")
    parser.add_argument("--long-video", type=Path, help="use this long video instead of generating one")
    parser.add_argument("--huge", action="store_true", help="also time refusing a 16000x16000 video")
    args = parser.parse_args()
    dtype = torch_dtype(args.dtype)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bench_fallback(folder)
        if not args.no_sam2:
            frames = args.sam2_frames or (200 if args.device.startswith("cuda") else 2)
            bench_sam2(folder, args.device, dtype, frames)
        if args.huge:
            bench_huge(folder)
        if args.long or args.long_video:
            bench_long(folder, args.long_video)


if __name__ == "__main__":
    main()
