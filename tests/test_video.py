"""Video frames come back by index and by time, even from files that misreport their length."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gar_app.errors import InputError
from gar_app.video import Clip, probe, read_frame, sample_indices

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
    cases = [
        (corrupt, "cannot read video corrupt.mp4"),
        (empty, "empty"),
        (tmp_path / "missing.mp4", "not found"),
        (tmp_path, "folder"),
        (no_frames, "no frames"),
    ]
    for path, message in cases:
        for call in (probe, read_frame):
            with pytest.raises(InputError, match=message):
                call(path)


# ---------------------------------------------------------------- clips (sampled, decoded lazily)


def test_one_frame_video_has_one_frame(tmp_path):
    one = _write(tmp_path / "one.avi", "MJPG", frames=1)
    assert probe(one).frame_count == 1  # was 0: the UI said "of 0" frames
    assert len(Clip(one)) == 1 and _index_of(Clip(one).frame(0)) == 0


def test_sampling_caps_the_rate_and_spreads_the_maximum():
    assert sample_indices(10, 30.0) == list(range(10))
    assert sample_indices(61, 30.0, fps_cap=5) == list(range(0, 61, 6))
    assert sample_indices(10, 25.0, fps_cap=10) == [0, 2, 5, 7]  # every 2.5 frames, rounded down
    assert sample_indices(100, 30.0, max_frames=5) == [0, 25, 50, 74, 99]  # first and last included
    assert sample_indices(600, 30.0, fps_cap=10, max_frames=3) == [0, 300, 597]
    assert sample_indices(7, 0.0, fps_cap=1) == list(range(7))  # no frame rate: the cap cannot apply
    for bad in ({"fps_cap": 0}, {"fps_cap": float("nan")}, {"max_frames": 0}):
        with pytest.raises(InputError):
            sample_indices(10, 30.0, **bad)


@pytest.mark.parametrize("codec", ["MJPG", "mp4v"])
def test_clip_reads_sampled_frames_in_either_direction(tmp_path, codec):
    path = _write(tmp_path / f"clip.{'avi' if codec == 'MJPG' else 'mp4'}", codec)
    clip = Clip(path, fps_cap=FPS / 2)
    assert clip.indices == list(range(0, FRAMES, 2)) and clip.time(3) == pytest.approx(6 / FPS)
    forward = [(p, _index_of(f)) for p, f in clip.frames(range(len(clip)))]
    backward = [(p, _index_of(f)) for p, f in clip.frames(range(len(clip) - 1, -1, -1))]
    assert forward == [(p, 2 * p) for p in range(12)] and backward == forward[::-1]
    assert [_index_of(clip.frame(p)) for p in (7, 2, 11, 0)] == [14, 4, 22, 0]  # random access
    assert clip.position_of(5) == 2 and clip.position_of(100) == 11
    with pytest.raises(InputError, match="outside the clip"):
        clip.frame(12)


def test_backward_reading_decodes_each_frame_once_in_bounded_chunks(tmp_path, monkeypatch):
    clip = Clip(_write(tmp_path / "clip.avi", "MJPG"))
    monkeypatch.setattr(Clip, "CHUNK_BYTES", 5 * 3 * BITS * BLOCK * 2 * BLOCK)  # 5 frames a chunk
    decoded, alive, most = [], [], 0
    real_read = Clip._read

    def counting(self, index):
        decoded.append(index)
        return real_read(self, index)

    monkeypatch.setattr(Clip, "_read", counting)
    for position, frame in clip.frames(range(FRAMES - 1, -1, -1)):
        alive.append(position)
        most = max(most, len(decoded) - len(alive) + 1)  # decoded and not yet handed out, plus this one
        assert _index_of(frame) == position
    assert sorted(decoded) == list(range(FRAMES)) and most <= 5


def test_huge_frames_are_refused_before_decoding_with_little_memory(tmp_path, capsys):
    """A real 16000 x 16000 Motion-JPEG video: decoding one frame would take ~1.8 GB."""
    import io
    import subprocess
    import sys

    from conftest import REPO
    from PIL import Image

    from gar_app.cli import main
    from gar_app.tracking.synthetic import write_mjpeg_avi

    buffer = io.BytesIO()
    Image.new("L", (16000, 16000), 128).save(buffer, "JPEG", quality=30)
    path = write_mjpeg_avi(tmp_path / "huge.avi", [buffer.getvalue()], 16000, 16000)
    del buffer
    code = (  # a fresh process, so its peak memory is the refusal's alone
        "from gar_app.errors import InputError; from gar_app.tracking import open_video\n"
        f"try:\n    open_video({str(path)!r})\nexcept InputError as error:\n    print(error)\n"
        # VmHWM, not ru_maxrss: ru_maxrss carries the parent's (pytest's) peak over into the child
        "print(next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120, check=True
    )
    message, peak_kb = done.stdout.strip().splitlines()
    assert "16000x16000" in message and "megapixels" in message
    assert int(peak_kb) < 1_500_000, f"peak memory {int(peak_kb) / 1e6:.2f} GB"
    assert (
        main(["track", "--video", str(path), "--box", "[0, 0, 10, 10]", "--out", str(tmp_path / "x.json")])
        == 2
    )
    assert "16000x16000" in capsys.readouterr().err
    with pytest.raises(InputError, match="megapixels"):
        probe(path)


def test_clip_and_track_refuse_unreadable_videos(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(1).bytes(4096))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    no_frames = _write(tmp_path / "no_frames.avi", "MJPG", frames=0)
    for path, message in [(corrupt, "cannot read video"), (empty, "empty"), (no_frames, "no frames")]:
        with pytest.raises(InputError, match=message):
            Clip(path)
