"""Keyframes, refinement, cancel and the per-frame views of a tracked video.

Refinement rule under test (``gar_app.tracking.tracks``): a mark on frame r changes the
track from r on, away from where the region was first marked, up to the next keyframe.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from helpers import iou
from tracking_helpers import Copier

from gar_app.errors import InputError
from gar_app.regions import region_colour
from gar_app.segment.base import Prompt
from gar_app.tracking.base import Run
from gar_app.tracking.classical import ClassicalTracker
from gar_app.tracking.tracks import VideoTracks
from gar_app.video import Clip


def stamp(clip: Clip, k: int) -> np.ndarray:
    """A mask that says 'keyframe k': a one-pixel-high bar of width k + 1."""
    mask = np.zeros((clip.info.height, clip.info.width), bool)
    mask[k % clip.info.height, : k + 1] = True
    return mask


def owners(tracks: VideoTracks, index: int = 0) -> list[int | None]:
    """Per frame, which stamp (keyframe) its mask came from."""
    out = []
    for position in range(len(tracks.clip)):
        mask = tracks.mask(index, position)
        out.append(None if mask is None else int(mask.sum()) - 1)
    return out


@pytest.fixture
def clip(shape_clip):
    return Clip(shape_clip[0])


def test_first_mark_propagates_both_ways(clip):
    tracks = VideoTracks(clip, Copier())
    tracks.add_region(20, mask=stamp(clip, 20))
    assert sorted(tracks.pending_runs()) == sorted([Run(20, 47), Run(20, 0)])
    assert tracks.propagate().done == 47
    assert owners(tracks) == [20] * 48


def test_refinement_after_the_anchor_changes_frames_from_there_to_the_next_keyframe(clip):
    tracks = VideoTracks(clip, Copier())
    tracks.add_region(10, mask=stamp(clip, 10))
    tracks.propagate()
    assert tracks.mark(0, 30, mask=stamp(clip, 30)) == [Run(30, 47)]
    tracks.propagate()
    assert owners(tracks) == [10] * 30 + [30] * 18
    tracks.mark(0, 20, mask=stamp(clip, 20))  # between two keyframes: only up to the next one
    assert tracks.pending_runs() == {Run(20, 29): [0]}
    tracks.propagate()
    assert owners(tracks) == [10] * 20 + [20] * 10 + [30] * 18


def test_refinement_before_the_anchor_changes_frames_back_to_the_start(clip):
    tracks = VideoTracks(clip, Copier())
    tracks.add_region(24, mask=stamp(clip, 24))
    tracks.propagate()
    assert tracks.mark(0, 8, mask=stamp(clip, 8)) == [Run(8, 0)]
    tracks.propagate()
    assert owners(tracks) == [8] * 9 + [24] * 39


def test_marking_the_anchor_again_reruns_both_sides_up_to_the_neighbours(clip):
    tracks = VideoTracks(clip, Copier())
    tracks.add_region(24, mask=stamp(clip, 24))
    tracks.mark(0, 40, mask=stamp(clip, 40))
    tracks.mark(0, 5, mask=stamp(clip, 5))
    tracks.propagate()
    assert owners(tracks) == [5] * 6 + [24] * 34 + [40] * 8
    tracks.mark(0, 24, mask=stamp(clip, 23))  # a different mask on the anchor frame
    assert sorted(tracks.pending_runs()) == sorted([Run(24, 39), Run(24, 6)])
    tracks.propagate()
    assert owners(tracks) == [5] * 6 + [23] * 34 + [40] * 8


def test_removing_a_keyframe_hands_its_frames_back(clip):
    tracks = VideoTracks(clip, Copier())
    tracks.add_region(10, mask=stamp(clip, 10))
    tracks.mark(0, 30, mask=stamp(clip, 30))
    tracks.propagate()
    tracks.remove_keyframe(0, 30)
    tracks.propagate()
    assert owners(tracks) == [10] * 48
    with pytest.raises(InputError, match="first marked"):
        tracks.remove_keyframe(0, 10)


def test_refining_onto_another_object_changes_only_the_later_frames(shape_clip):
    """The classical tracker, region switched from the orange shape to the purple one on frame 20."""
    path, synthetic = shape_clip
    tracks = VideoTracks(Clip(path), ClassicalTracker())
    tracks.add_region(0, mask=synthetic.truth[0])
    tracks.propagate()
    before = dict(tracks.region(0).masks)
    tracks.mark(0, 20, mask=synthetic.companion[20])
    assert tracks.propagate().done == 27
    after = tracks.region(0).masks
    assert all(after[p] == before[p] for p in range(20))  # bit for bit (same RLE text)
    assert np.array_equal(tracks.mask(0, 20), synthetic.companion[20])
    for position in range(21, 48):
        assert iou(tracks.mask(0, position), synthetic.companion[position]) >= 0.85


def test_cancel_stops_at_the_frame_in_progress_and_the_next_propagate_carries_on(clip):
    copier = Copier()
    tracks = VideoTracks(clip, copier)
    tracks.add_region(0, mask=stamp(clip, 0))
    stop = threading.Event()

    def progress(done, total):
        if done == 5:
            stop.set()

    result = tracks.propagate(progress=progress, cancel=stop)
    assert (result.done, result.total, result.cancelled) == (5, 47, True)
    assert copier.computed == [1, 2, 3, 4, 5]  # nothing computed after the cancel
    assert owners(tracks)[:6] == [0] * 6 and owners(tracks)[6:] == [None] * 42
    assert tracks.pending_runs() == {Run(5, 47): [0]}, "what is left, from the last frame done"
    stop.clear()
    counts = []
    result = tracks.propagate(lambda done, total: counts.append((done, total)), cancel=stop)
    assert (result.done, result.total, result.carried) == (47, 47, 5)
    assert copier.computed == list(range(1, 48)), "frames 1-5 are not tracked again"
    assert counts[0] == (5, 47) and counts[-1] == (47, 47), "the count goes on from the frames done"
    assert owners(tracks) == [0] * 48 and not tracks.pending_runs()


class Counter(Copier):
    """A tracker with a memory: frame k of a run gets the stamp k, so a run that starts again
    (instead of going on) shows in the masks."""

    def track(self, clip, run: Run, masks):
        for step, (position, _found) in enumerate(super().track(clip, run, masks), start=1):
            yield position, dict.fromkeys(masks, stamp(clip, step))


def test_a_paused_run_goes_on_with_the_trackers_memory(clip):
    tracks = VideoTracks(clip, Counter())
    tracks.add_region(20, mask=stamp(clip, 20))
    stop, progress = cancel_at(30)  # back to frame 0 (20 frames), then forward: 10 frames into it
    tracks.propagate(progress, stop)
    assert tracks.pending_runs() == {Run(30, 47): [0]}
    tracks.propagate()
    assert owners(tracks) == list(range(20, 0, -1)) + [20] + list(range(1, 28))


def cancel_at(frame: int) -> tuple[threading.Event, callable]:
    """A Cancel pressed while the frame ``frame`` is tracked (seen after it, as from a click)."""
    stop = threading.Event()

    def progress(done, total):
        if done == frame:
            stop.set()

    return stop, progress


def test_a_mark_on_a_paused_region_starts_its_run_again_and_other_marks_keep_it(clip):
    copier = Copier()
    tracks = VideoTracks(clip, copier)
    tracks.add_region(0, mask=stamp(clip, 0))
    stop, progress = cancel_at(10)
    tracks.propagate(progress, stop)
    tracks.add_region(40, mask=stamp(clip, 40))  # another region: the paused run goes on
    assert tracks.pending_runs() == {Run(10, 47): [0], Run(40, 47): [1], Run(40, 0): [1]}
    tracks.mark(0, 30, mask=stamp(clip, 30))  # the paused region: its run from the keyframe again
    assert tracks.pending_runs() == {Run(0, 29): [0], Run(30, 47): [0], Run(40, 47): [1], Run(40, 0): [1]}
    stop.clear()
    result = tracks.propagate(cancel=stop)
    assert (result.carried, result.cancelled) == (0, False)
    assert owners(tracks) == [0] * 30 + [30] * 18 and owners(tracks, 1) == [40] * 48


def test_cancel_from_another_thread_stops_within_one_frame(clip):
    """As the UI does it: propagation in a worker, Cancel pressed on the main thread."""
    copier = Copier(delay=0.02)
    tracks = VideoTracks(clip, copier)
    tracks.add_region(0, mask=stamp(clip, 0))
    stop, started = threading.Event(), threading.Event()
    results = []
    worker = threading.Thread(
        target=lambda: results.append(tracks.propagate(lambda d, t: started.set(), stop))
    )
    worker.start()
    assert started.wait(30)
    while len(copier.computed) < 3:
        time.sleep(0.001)
    stop.set()
    seen = len(copier.computed)
    worker.join(30)
    assert results[0].cancelled and len(copier.computed) <= seen + 1
    with pytest.raises(InputError, match="already running"):  # one propagation at a time
        tracks._lock.acquire()
        try:
            tracks.propagate()
        finally:
            tracks._lock.release()


def test_frame_views_keep_tags_and_colours(shape_clip):
    path, synthetic = shape_clip
    tracks = VideoTracks(Clip(path), Copier(), limit=3)
    tracks.add_region(0, prompt=Prompt(box=[10, 20, 60, 70]))
    tracks.add_region(0, mask=synthetic.companion[0])
    tracks.propagate()
    regions = tracks.regions_at(12)
    assert regions.tags == ["<Prompt0>", "<Prompt1>"] and regions[1].colour == region_colour(1)
    assert regions[0].source == "mask" and tracks.regions_at(0)[0].source == "box"
    drawn = tracks.render(12)
    assert drawn.shape == (144, 192, 3)
    assert (drawn[synthetic.companion[12]] != np.array(tracks.clip.frame(12))[synthetic.companion[12]]).any()
    tracks.remove_region(0)
    assert tracks.add_region(3, mask=synthetic.truth[3]).index == 0  # the freed number is reused
    with pytest.raises(InputError, match="at most 3"):
        tracks.add_region(0, mask=synthetic.truth[0])
        tracks.add_region(0, mask=synthetic.truth[0])
    with pytest.raises(InputError, match="empty"):
        tracks.mark(0, 5, mask=np.zeros((144, 192), bool))
    with pytest.raises(InputError, match="192x144"):
        tracks.mark(0, 5, mask=np.ones((10, 10), bool))
    with pytest.raises(InputError, match="outside the clip"):
        tracks.mark(0, 48, mask=synthetic.truth[0])
