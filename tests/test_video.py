"""Video frames come back by index and by time, even from files that misreport their length."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gar_app.errors import InputError
from gar_app.video import probe, read_frame

FRAMES, FPS, BITS, BLOCK = 24, 12.0, 8, 16
CODECS = [("mp4v", ".mp4"), ("MJPG", ".avi")]


def _frame(index: int) -> np.ndarray:
    """Black/white blocks spelling the frame's index in binary: survives lossy codecs."""
    frame = np.zeros((2 * BLOCK, BITS * BLOCK, 3), np.uint8)
    for bit in range(BITS):
        if index >> bit & 1:
            frame[:, bit * BLOCK : (bit + 1) * BLOCK] = 255
    frame[:, :, 2] = 128  # a colour, to check BGR -> RGB
    return frame


def _index_of(image) -> int:
    array = np.asarray(image)
    assert array[..., 0].mean() == pytest.approx(128, abs=12)  # red channel carries the constant
    blocks = array[:, :, 1].reshape(2 * BLOCK, BITS, BLOCK).mean(axis=(0, 2))
    return sum(1 << bit for bit in range(BITS) if blocks[bit] > 127)


def _write(path: Path, codec: str, frames: int = FRAMES) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), FPS, (BITS * BLOCK, 2 * BLOCK))
    if not writer.isOpened():
        pytest.skip(f"this OpenCV build cannot write {codec} into {path.suffix}")
    for i in range(frames):
        writer.write(_frame(i))
    writer.release()
    return path


@pytest.fixture(scope="module", params=CODECS, ids=[c for c, _ in CODECS])
def video(request, tmp_path_factory) -> Path:
    codec, suffix = request.param
    return _write(tmp_path_factory.mktemp(codec) / f"clip{suffix}", codec)


def test_probe(video):
    info = probe(video)
    assert (info.name, info.frame_count, info.fps) == (video.name, FRAMES, FPS)
    assert (info.width, info.height) == (BITS * BLOCK, 2 * BLOCK)
    assert info.duration_s == pytest.approx(FRAMES / FPS)


@pytest.mark.parametrize("index", [0, 1, 7, 12, FRAMES - 1])
def test_frame_by_index(video, index):
    image, got, time_s = read_frame(video, index=index)
    assert image.mode == "RGB" and image.size == (BITS * BLOCK, 2 * BLOCK)
    assert (got, _index_of(image)) == (index, index)
    assert time_s == pytest.approx(index / FPS)


@pytest.mark.parametrize(("time_s", "index"), [(0.0, 0), (5 / FPS, 5), (1.0, 12), (0.99, 11), (1.95, 23)])
def test_frame_by_time(video, time_s, index):
    image, got, at = read_frame(video, time_s=time_s)
    assert (got, _index_of(image)) == (index, index)
    assert at == pytest.approx(index / FPS)


def test_default_and_past_the_end(video):
    assert read_frame(video)[1] == 0
    for image, got, _ in (read_frame(video, index=500), read_frame(video, time_s=60.0)):
        assert (got, _index_of(image)) == (FRAMES - 1, FRAMES - 1)


def test_bad_choices(video):
    with pytest.raises(InputError, match="not both"):
        read_frame(video, index=1, time_s=1.0)
    with pytest.raises(InputError, match="index"):
        read_frame(video, index=-1)
    with pytest.raises(InputError, match="time"):
        read_frame(video, time_s=-0.5)


def test_truncated_file_overstates_its_length(tmp_path):
    """An AVI cut short still claims all its frames in the header; we find the real last one."""
    full = _write(tmp_path / "full.avi", "MJPG")
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.7)])
    capture = cv2.VideoCapture(str(cut))
    reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    readable = 0
    while capture.grab():
        readable += 1
    capture.release()
    assert reported == FRAMES and 0 < readable < FRAMES  # the situation under test

    assert probe(cut).frame_count == readable
    image, got, _ = read_frame(cut, index=FRAMES - 1)
    assert (got, _index_of(image)) == (readable - 1, readable - 1)
    assert read_frame(cut, index=3)[1] == 3


def test_unreadable_files(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    no_frames = _write(tmp_path / "no_frames.avi", "MJPG", frames=0)
    cases = [(corrupt, "cannot read video corrupt.mp4"), (empty, "empty"),
             (tmp_path / "missing.mp4", "not found"), (tmp_path, "folder"), (no_frames, "no frames")]
    for path, message in cases:
        for call in (probe, read_frame):
            with pytest.raises(InputError, match=message):
                call(path)
