"""SAM 2 video tracking end to end on a tiny random checkpoint loaded like a real one."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from gar_app.cli import main
from gar_app.errors import CheckpointError
from gar_app.segment.base import Prompt
from gar_app.tracking import load_tracker
from gar_app.tracking.base import Run
from gar_app.tracking.sam2 import LazyFrames, Sam2Tracker
from gar_app.tracking.synthetic import moving_shape_clip, write_clip
from gar_app.tracking.tracks import VideoTracks
from gar_app.video import Clip

FRAMES = 8


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    synthetic = moving_shape_clip(frames=FRAMES, companion=True)
    return write_clip(
        tmp_path_factory.mktemp("sam2") / "short.mp4", synthetic.frames, synthetic.fps
    ), synthetic


@pytest.fixture(scope="module")
def tracker(tiny_sam2_dir) -> Sam2Tracker:
    return load_tracker(tiny_sam2_dir, device="cpu")


def test_checkpoint_loads_with_from_pretrained(tiny_sam2_dir):
    from transformers import Sam2VideoModel, Sam2VideoProcessor

    model = Sam2VideoModel.from_pretrained(tiny_sam2_dir)
    processor = Sam2VideoProcessor.from_pretrained(tiny_sam2_dir)
    assert model.config.model_type == "sam2_video" and processor.target_size == model.config.image_size


def test_cli_writes_a_loadable_checkpoint(tmp_path):
    assert main(["tiny", "sam2", str(tmp_path / "ckpt")]) == 0
    tracker = load_tracker(tmp_path / "ckpt", device="cpu")
    assert isinstance(tracker, Sam2Tracker) and "SAM 2 video tracker" in tracker.name


def test_tracks_both_ways_with_frame_indices_and_shapes(short_clip, tracker, monkeypatch):
    path, synthetic = short_clip
    clip = Clip(path, max_frames=FRAMES)
    decoded = []
    real_getitem = LazyFrames.__getitem__

    def counting(self, position):
        decoded.append(position)
        return real_getitem(self, position)

    monkeypatch.setattr(LazyFrames, "__getitem__", counting)
    tracks = VideoTracks(clip, tracker)
    region = tracks.add_region(3, prompt=Prompt(box=[20, 40, 90, 110]))  # SAM 2 segments the box
    tracks.add_region(3, mask=synthetic.companion[3])
    assert np.array_equal(tracks.mask(1, 3), synthetic.companion[3])
    result = tracks.propagate()
    assert (result.done, result.cancelled) == (FRAMES - 1, False)
    assert sorted(set(decoded)) == list(range(FRAMES))  # every frame of both runs, decoded on demand
    for position in range(FRAMES):
        for index in (region.index, 1):
            mask = tracks.mask(index, position)
            assert mask is None or (mask.shape == (144, 192) and mask.dtype == bool)
    assert all(tracks.presence(0))  # the random model is built to report the object present
    assert tracker.session is None  # a finished run lets its session go


def test_a_run_paused_by_cancel_goes_on_in_another_thread_as_if_never_stopped(short_clip, tracker):
    """The app propagates in a worker thread: Cancel leaves SAM 2's run paused, and the next
    Propagate (another worker) carries it on. The masks are those of one uninterrupted run,
    and neither thread is left in torch's inference mode."""
    path, synthetic = short_clip

    def tracks_from(mask):
        tracks = VideoTracks(Clip(path), tracker)
        tracks.add_region(0, mask=mask)
        return tracks

    whole = tracks_from(synthetic.truth[0])
    whole.propagate()
    paused = tracks_from(synthetic.truth[0])
    stop = threading.Event()
    modes = []

    def in_a_worker(work):
        thread = threading.Thread(target=lambda: (work(), modes.append(torch.is_inference_mode_enabled())))
        thread.start()
        thread.join(60)

    in_a_worker(lambda: paused.propagate(lambda done, total: done == 3 and stop.set(), stop))
    assert paused.pending_runs() == {Run(3, FRAMES - 1): [0]} and tracker.session is not None
    stop.clear()
    in_a_worker(lambda: paused.propagate(cancel=stop))
    assert modes == [False, False] and not torch.is_inference_mode_enabled()
    assert paused.regions[0].masks == whole.regions[0].masks and tracker.session is None


def test_memory_beyond_the_model_reach_is_dropped(short_clip, tracker, monkeypatch):
    path, synthetic = short_clip
    monkeypatch.setattr(tracker, "memory_frames", 3)
    sizes = []
    tracks = VideoTracks(Clip(path), tracker)
    tracks.add_region(0, mask=synthetic.truth[0])
    steps = tracker.track(tracks.clip, next(iter(tracks.pending_runs())), {0: synthetic.truth[0]})
    for _position, _masks in steps:
        outputs = tracker.session.output_dict_per_obj[0]["non_cond_frame_outputs"]
        sizes.append(len(outputs))
        assert all("high_res_masks" not in out for out in outputs.values())
    assert sizes == [1, 2, 3, 3, 3, 3, 3]  # the frame just tracked and the 2 before it, nothing older


def test_a_named_checkpoint_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="SAM 2"):
        load_tracker(tmp_path / "nowhere", device="cpu")


def test_cli_track_with_sam2(short_clip, tiny_sam2_dir, tmp_path, capsys):
    path, _ = short_clip
    out = tmp_path / "tracks.json"
    code = main(
        [
            "track",
            "--video",
            str(path),
            "--frame",
            "2",
            "--points",
            "[[50, 70]]",
            "--sam2",
            str(tiny_sam2_dir),
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    document = json.loads(out.read_text())
    frames = document["regions"][0]["frames"]
    assert [f["index"] for f in frames] == list(range(FRAMES))
    assert all(f["mask"] is None or f["mask"]["size"] == [144, 192] for f in frames)
    assert "SAM 2 video tracker" in capsys.readouterr().err
