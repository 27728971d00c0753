"""Make the example images and sample video in ``assets/examples/`` and ``assets/README.md``.

The project ships only pictures it may redistribute: scikit-image's bundled photos that its
documentation marks as public domain or CC0 (no download needed). Everything is derived
deterministically, so re-running gives the same files; README.md is written from the same
table so the sizes it states are always those of the files. Run: ``python scripts/make_assets.py``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage
import skimage.data
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "assets" / "examples"
QUALITY = 90
VIDEO = "photo_tour.webm"  # VP8 in WebM: browsers play it natively, OpenCV reads it back
VIDEO_SIZE, FPS, SECONDS_PER_PHOTO = (320, 240), 8, 1.5  # VP8 bitrate grows with fps*w*h
IMAGE_LIMIT, VIDEO_LIMIT = 300_000, 500_000


@dataclass(frozen=True)
class Photo:
    file: str
    loader: str  # skimage.data function
    what: str
    credit: str  # licence as scikit-image's documentation states it


PHOTOS = [
    Photo(
        "astronaut.jpg",
        "astronaut",
        "astronaut Eileen Collins, NASA portrait",
        "NASA Great Images database; no known copyright restrictions, released into the public domain",
    ),
    Photo(
        "coffee.jpg",
        "coffee",
        "cup of coffee on a wooden table",
        "Rachel Michetti, courtesy of Pikolo Espresso Bar; CC0",
    ),
    Photo("cat.jpg", "chelsea", "Chelsea the cat", "Stefan van der Walt; CC0"),
    Photo(
        "rocket.jpg", "rocket", "Falcon 9 launch carrying DSCOVR", "SpaceX; released into the public domain"
    ),
    Photo("camera.jpg", "camera", "photographer with a camera on a tripod (greyscale)", "Lav Varshney; CC0"),
]
# (photo, start box, end box) as fractions of the photo: x0, y0, x1, y1; zoom in, pan, zoom out.
SHOTS = [
    ("cat.jpg", (0.0, 0.0, 1.0, 1.0), (0.25, 0.15, 0.75, 0.75)),
    ("coffee.jpg", (0.0, 0.1, 0.6, 0.9), (0.4, 0.1, 1.0, 0.9)),
    ("astronaut.jpg", (0.25, 0.05, 0.75, 0.55), (0.0, 0.0, 1.0, 1.0)),
]


def _save_photo(photo: Photo) -> Image.Image:
    image = Image.fromarray(getattr(skimage.data, photo.loader)())
    image.save(OUT / photo.file, quality=QUALITY, optimize=True)
    return image


def _shot(image: Image.Image, start: tuple, end: tuple, frames: int) -> list[np.ndarray]:
    """Frames of a smooth pan/zoom: the crop box moves from start to end, trimmed to 4:3."""
    w, h = image.size
    out = []
    for i in range(frames):
        t = i / (frames - 1)
        x0, y0, x1, y1 = (a + (b - a) * t for a, b in zip(start, end, strict=True))
        cx, cy, bw, bh = (x0 + x1) / 2 * w, (y0 + y1) / 2 * h, (x1 - x0) * w, (y1 - y0) * h
        bw, bh = min(bw, bh * 4 / 3), min(bh, bw * 3 / 4)
        box = (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)
        frame = image.convert("RGB").resize(VIDEO_SIZE, Image.BICUBIC, box=box)
        out.append(cv2.cvtColor(np.asarray(frame), cv2.COLOR_RGB2BGR))
    return out


def _fix_track_uid(path: Path) -> None:
    """Replace the random Matroska TrackUID (ID 0x73C5, 8 bytes; repeated as TagTrackUID)
    that FFmpeg's muxer writes with a fixed one, so re-running gives identical bytes."""
    data = path.read_bytes()
    at = data.find(b"\x73\xc5\x88") + 3
    uid = data[at : at + 8]
    if at < 3 or data.count(uid) > 2:
        sys.exit(f"unexpected WebM layout in {path.name}; cannot make it deterministic")
    path.write_bytes(data.replace(uid, b"GAR-APP1"))


def _save_video(images: dict[str, Image.Image]) -> int:
    path = OUT / VIDEO
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), FPS, VIDEO_SIZE)
    if not writer.isOpened():
        sys.exit(f"this OpenCV build cannot write VP8 WebM; {VIDEO} not made")
    count = 0
    for name, start, end in SHOTS:
        for frame in _shot(images[name], start, end, round(FPS * SECONDS_PER_PHOTO)):
            writer.write(frame)
            count += 1
    writer.release()
    _fix_track_uid(path)
    return count


def _readme(images: dict[str, Image.Image], frames: int) -> str:
    rows = [
        f"| `examples/{p.file}` | {images[p.file].width}x{images[p.file].height} | - | {p.what} "
        f"| `skimage.data.{p.loader}()` | {p.credit} |"
        for p in PHOTOS
    ]
    shots = ", ".join(f"`{name}`" for name, _, _ in SHOTS)
    rows.append(
        f"| `examples/{VIDEO}` | {VIDEO_SIZE[0]}x{VIDEO_SIZE[1]} | {frames} @ {FPS} fps "
        f"| pan/zoom over {shots}, {SECONDS_PER_PHOTO} s each, VP8 WebM "
        f"| made from the photos above by `scripts/make_assets.py` | as its photos: public domain / CC0 |"
    )
    return "\n".join(
        [
            "# Assets",
            "",
            "Example inputs the project owns the right to ship. Made by `scripts/make_assets.py`",
            f"(`make assets`) from photos bundled with scikit-image {skimage.__version__}, which its",
            "documentation (the `skimage.data` docstrings) marks as public domain or CC0; photos",
            "with any other or unclear licence note are not used. Images are JPEG quality",
            f"{QUALITY} (each under {IMAGE_LIMIT // 1000} KB), the video is under {VIDEO_LIMIT // 1000} KB.",
            "Do not edit the files by hand: change the script and run it again (it is deterministic;",
            "this file is written by it too).",
            "",
            "| File | Pixels | Frames | Content | Made from | Licence |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    images = {p.file: _save_photo(p) for p in PHOTOS}
    frames = _save_video(images)
    (ROOT / "assets" / "README.md").write_text(_readme(images, frames))
    for path in sorted(OUT.iterdir()):
        limit = VIDEO_LIMIT if path.name == VIDEO else IMAGE_LIMIT
        size = path.stat().st_size
        print(f"{path.relative_to(ROOT)}: {size // 1000} KB")
        if size >= limit:
            sys.exit(f"{path.name} is {size} bytes, over the {limit}-byte limit")


if __name__ == "__main__":
    main()
