"""Shared fixtures: tiny random checkpoints (built once per run) and the shared test data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "assets" / "examples"
# Set by .ci/run: what CI is meant to have must be there, so its absence fails instead of skipping.
REQUIRE_SHARED = "GAR_APP_REQUIRE_SHARED"
REQUIRE_BROWSER = "GAR_APP_REQUIRE_BROWSER"


def unavailable(reason: str, requirement: str) -> None:
    """Skip the test saying why - or fail it when ``requirement`` (an environment variable) is 1."""
    if os.environ.get(requirement) == "1":
        pytest.fail(f"{reason} ({requirement}=1 says it must be there)", pytrace=False)
    pytest.skip(reason)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data (GARBench sample, seed demo): skipped without it, failed in CI."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        unavailable(
            f"shared test data not found at {path} (expected beside the repository in ../shared/data)",
            REQUIRE_SHARED,
        )
    return path


def chromium() -> str:
    """The browser for the real-browser tests: skipped without it, failed in CI."""
    import shutil

    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        unavailable("chromium is not installed (make test installs it)", REQUIRE_BROWSER)
    return path


@pytest.fixture()
def no_ambient_sam(monkeypatch, tmp_path):
    """No SAM checkpoint from the environment or the user's cache: the command's own fallback runs."""
    monkeypatch.delenv("GAR_APP_SAM_CHECKPOINT", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def ellipse(size: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float]):
    """A boolean (H, W) ellipse mask for an image of ``size`` (W, H)."""
    import numpy as np

    width, height = size
    ys, xs = np.mgrid[:height, :width]
    return ((xs - centre[0]) / radii[0]) ** 2 + ((ys - centre[1]) / radii[1]) ** 2 <= 1


def example_scene(name: str, crop: tuple[int, int, int, int] | None = None):
    """One of the project's CC0 example photos (optionally cropped), as GAR's RGB image."""
    from gar_app.images import load_image

    image = load_image(EXAMPLES / name)
    return image.crop(crop) if crop else image


@pytest.fixture(scope="session")
def scene3():
    """The rocket photo (640x427, a 2x2 tile grid on the tiny checkpoint) and three regions
    made here: off-centre, of different sizes, the third overlapping the first."""
    image = example_scene("rocket.jpg")
    masks = [
        ellipse(image.size, (170, 260), (60, 120)),
        ellipse(image.size, (470, 120), (90, 40)),
        ellipse(image.size, (215, 330), (45, 60)),
    ]
    return image, masks


@pytest.fixture(scope="session")
def tiny_gar_dir(tmp_path_factory) -> Path:
    """A tiny random GAR checkpoint folder in the published layout (5 regions, like the release)."""
    from gar_app.model.tiny import write_tiny_gar

    return write_tiny_gar(tmp_path_factory.mktemp("tiny-gar"), seed=0, max_num_tiles=4)


@pytest.fixture(scope="session")
def tiny_gar10_dir(tmp_path_factory) -> Path:
    """A tiny GAR that tells apart 10 regions, enough for every GARBench item (up to 9)."""
    from gar_app.model.tiny import write_tiny_gar

    return write_tiny_gar(tmp_path_factory.mktemp("tiny-gar10"), seed=1, prompt_numbers=10, max_num_tiles=4)


@pytest.fixture(scope="session")
def tiny_gar(tiny_gar_dir):
    """The tiny checkpoint loaded through ``load_gar``, exactly like a real one (float32, CPU)."""
    from gar_app.model import load_gar

    return load_gar(tiny_gar_dir, device="cpu", dtype="fp32")


def write_blank_png(path: Path, width: int, height: int, rows_per_block: int = 64) -> Path:
    """A valid black RGB PNG of any size, written without ever holding its pixels: one
    compressed block of rows, repeated (a full flush makes each block self-contained).
    15000x15000 takes well under a second and 0.7 MB on disk (and 675 MB once decoded)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + 3 * width)  # filter byte 0, then black pixels
    block = row * rows_per_block
    full, rest = divmod(height, rows_per_block)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.compress(row * rest) + deflate.flush()
    checksum = 1
    for _ in range(full):
        checksum = zlib.adler32(block, checksum)
    checksum = zlib.adler32(row * rest, checksum)
    stream = b"\x78\xda" + packed * full + tail + struct.pack(">I", checksum)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")
    )
    return path


def eval_cli(argv: list[str]) -> int:
    """``gar-app eval ...`` with errors raised (``gar_app.cli.main`` would print them as one line)."""
    import argparse

    from gar_app.cli.eval import add_eval

    parser = argparse.ArgumentParser(prog="gar-app")
    add_eval(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


def decode_rles(item: dict):
    """The item's region masks as boolean arrays, decoded with pycocotools directly."""
    import numpy as np
    from pycocotools import mask as mask_utils

    masks = []
    for rle in item["mask_rles"]:
        rle = dict(rle)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode()
        masks.append(mask_utils.decode(rle).astype(bool))
    return [np.ascontiguousarray(m) for m in masks]


SEED_DEMO_CASES = [
    ("demo_image_1.png", ["demo_mask_1.png"]),
    ("demo_image_3.png", ["demo_mask_3_0.png", "demo_mask_3_1.png", "demo_mask_3_2.png"]),
]


@pytest.fixture(scope="session")
def tiny_gar64(tiny_gar_dir):
    """The tiny checkpoint in float64, for comparisons that must not hinge on rounding ties."""
    import torch

    from gar_app.model import load_gar

    return load_gar(tiny_gar_dir, device="cpu", dtype=torch.float64)


@pytest.fixture(scope="session")
def tiny_sam_path(tmp_path_factory) -> Path:
    """A tiny random SAM checkpoint built from segment-anything's own modules."""
    from gar_app.segment import write_tiny_sam

    return write_tiny_sam(tmp_path_factory.mktemp("tiny-sam") / "tiny_sam.pth", seed=0)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningApp:
    """The real app (app.build_demo) served on loopback, for gradio_client and the browser."""

    def __init__(self, services):
        import sys

        sys.path.insert(0, str(REPO))
        from app import build_demo
        from components.style import css

        self.services = services
        self.demo = build_demo(services)
        self.demo.queue(default_concurrency_limit=4)
        _app, self.url, _share = self.demo.launch(
            server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, css=css()
        )

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False)

    def close(self) -> None:
        self.demo.close()


@pytest.fixture(scope="session")
def gar_app_server(tiny_gar):
    """The app with the tiny GAR and the GrabCut segmenter (predictable masks on test images)."""
    from gar_app.segment import GrabCutSegmenter
    from gar_app.workspace import Services

    server = RunningApp(Services(segmenter=GrabCutSegmenter(), gar=tiny_gar))
    yield server
    server.close()


@pytest.fixture(scope="session")
def slow_app(tiny_gar_dir):
    """The app with its own tiny GAR whose every step takes 40 ms, so streaming can be watched."""
    import time

    from gar_app.model import load_gar
    from gar_app.segment import GrabCutSegmenter
    from gar_app.workspace import Services

    gar = load_gar(tiny_gar_dir, device="cpu", dtype="fp32")
    forward = gar.model.forward

    def slow_forward(*args, **kwargs):
        time.sleep(0.04)
        return forward(*args, **kwargs)

    gar.model.forward = slow_forward
    server = RunningApp(Services(segmenter=GrabCutSegmenter(), gar=gar))
    yield server
    server.close()


@pytest.fixture(scope="session")
def tiny_sam2_dir(tmp_path_factory) -> Path:
    """A tiny random SAM 2 video checkpoint folder, written by transformers' own classes."""
    from gar_app.tracking.tiny import write_tiny_sam2

    return write_tiny_sam2(tmp_path_factory.mktemp("tiny-sam2"), seed=0)


@pytest.fixture(scope="session")
def shape_clip(tmp_path_factory):
    """The synthetic tracking clip (orange shape leaving and coming back, purple one in a corner),
    encoded as MPEG-4 like an upload: ``(path, SyntheticClip with the true masks)``."""
    from gar_app.tracking.synthetic import moving_shape_clip, write_clip

    clip = moving_shape_clip(companion=True)
    return write_clip(tmp_path_factory.mktemp("clip") / "shapes.mp4", clip.frames, clip.fps), clip
