"""The tracker without SAM 2 weights follows a moving, turning shape, and knows when it has left."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import REPO
from helpers import iou

from gar_app.tracking.classical import ClassicalTracker
from gar_app.tracking.synthetic import moving_shape_clip, write_clip
from gar_app.tracking.tracks import VideoTracks
from gar_app.video import Clip

MIN_SHOWN = 0.05  # a shape with at least this share of its area in the frame counts as visible


def check_track(tracks: VideoTracks, index: int, truth: list[np.ndarray]) -> list[float]:
    """IoU >= 0.85 where the shape is visible, None where it has left; returns the IoUs."""
    full = max(m.sum() for m in truth)
    scores = []
    for position, true in enumerate(truth):
        got = tracks.mask(index, position)
        shown = true.sum() / full
        if shown == 0:
            assert got is None, f"frame {position}: the shape has left, but the track has a mask"
        elif shown >= MIN_SHOWN:
            assert got is not None, (
                f"frame {position}: {shown:.0%} of the shape is in view, the track has none"
            )
            scores.append(iou(got, true))
            assert scores[-1] >= 0.85, f"frame {position}: IoU {scores[-1]:.3f} ({shown:.0%} in view)"
        else:  # a sliver at the edge: no mask, or one on the right object
            assert got is None or iou(got, true) >= 0.5, (
                f"frame {position}: a wrong mask on a {shown:.1%} sliver"
            )
    return scores


@pytest.fixture(scope="module")
def forward(shape_clip):
    path, synthetic = shape_clip
    tracks = VideoTracks(Clip(path), ClassicalTracker())
    tracks.add_region(0, mask=synthetic.truth[0])
    tracks.add_region(0, mask=synthetic.companion[0])
    result = tracks.propagate()
    return tracks, synthetic, result


def test_follows_the_shape_out_of_the_frame_and_back(forward):
    tracks, synthetic, result = forward
    assert (result.done, result.total, result.cancelled) == (47, 47, False)  # both regions, one run
    shown = [m.sum() for m in synthetic.truth]
    assert 0 in shown and shown[-1] > 0  # the clip really has the shape leave and come back
    scores = check_track(tracks, 0, synthetic.truth)
    assert len(scores) >= 40
    present = tracks.presence(0)
    left, back = present.index(False), len(present) - present[::-1].index(False)
    assert (
        all(present[:left]) and not any(present[left:back]) and all(present[back:])
    )  # out once, then found again


def test_second_region_stays_on_its_own_shape(forward):
    tracks, synthetic, _ = forward
    assert min(check_track(tracks, 1, synthetic.companion)) >= 0.85
    for position, mask in tracks.masks_at(30).items():  # never the other region's object
        other = synthetic.companion[30] if position == 0 else synthetic.truth[30]
        assert not (mask & other).any()


def test_backward_from_a_later_mark(shape_clip):
    path, synthetic = shape_clip
    tracks = VideoTracks(Clip(path), ClassicalTracker())
    tracks.add_region(40, mask=synthetic.truth[40])  # marked late: tracked back through the exit and return
    assert tracks.propagate().done == 47
    check_track(tracks, 0, synthetic.truth)


class Counted(ClassicalTracker):
    """The classical tracker, counting the runs it starts and the frames it tracks."""

    def __init__(self):
        super().__init__()
        self.runs, self.frames = 0, 0

    def track(self, clip, run, masks):
        self.runs += 1
        for step in super().track(clip, run, masks):
            self.frames += 1
            yield step


@pytest.mark.parametrize("frame", [8, 24])  # the shape in view / out of the picture (frames 22-27)
def test_after_a_cancel_propagate_carries_on_where_it_stopped(shape_clip, frame):
    """Cancel, then Propagate again: the same run goes on (no frame tracked twice) and tracks as
    well as one propagation without a Cancel, also when it stopped while the shape was away."""
    path, synthetic = shape_clip
    tracker = Counted()
    tracks = VideoTracks(Clip(path), tracker)
    tracks.add_region(0, mask=synthetic.truth[0])
    tracks.add_region(0, mask=synthetic.companion[0])
    stop = threading.Event()
    result = tracks.propagate(lambda done, total: done == frame and stop.set(), stop)
    assert (result.done, result.total, result.cancelled) == (frame, 47, True)
    stop.clear()
    counts = []
    result = tracks.propagate(lambda done, total: counts.append(done), stop)
    assert (result.done, result.total, result.carried, result.cancelled) == (47, 47, frame, False)
    assert counts == list(range(frame, 48)), "it counts on from the frames done, one frame at a time"
    assert (tracker.runs, tracker.frames) == (1, 47), "one run, each frame tracked once"
    check_track(tracks, 0, synthetic.truth)
    assert min(check_track(tracks, 1, synthetic.companion)) >= 0.85


def test_large_frames_are_tracked_at_a_working_scale(tmp_path):
    """An object of ~120 px is followed on frames shrunk to ~64 px per object; masks come back full size."""
    synthetic = moving_shape_clip(frames=24, width=576, height=432, shape_size=168)
    path = write_clip(tmp_path / "large.mp4", synthetic.frames, synthetic.fps)
    tracks = VideoTracks(Clip(path), ClassicalTracker())
    tracks.add_region(0, mask=synthetic.truth[0])
    tracks.propagate()
    assert tracks.mask(0, 5).shape == (432, 576)
    check_track(tracks, 0, synthetic.truth)


def test_says_it_is_the_fallback_without_importing_torch():
    code = (
        "import sys; from gar_app.tracking import load_tracker; t = load_tracker(None); "
        "print(t.name); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    name, torch_loaded = out.strip().splitlines()
    assert "classical OpenCV tracker" in name and "no SAM 2 weights" in name
    assert torch_loaded == "False"
