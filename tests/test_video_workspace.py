"""A video tracked on the canvas, without a browser or Gradio: what a mark, a deletion, a
caption or an undo on the frame shown does to the whole video's tracks.

The canvas's side is the image ``Workspace`` (its ``marking`` takes the same calls as the
canvas tools); ``VideoWorkspace.sync`` runs after each, as the app runs it after every event.
"""

from __future__ import annotations

import numpy as np
import pytest
from api_helpers import RectangleSegmenter
from PIL import Image
from tracking_helpers import Copier

from gar_app.errors import InputError
from gar_app.formats.video_document import video_from_json, video_to_json
from gar_app.rle import mask_to_rle
from gar_app.tracking.base import Run
from gar_app.tracking.synthetic import moving_shape_clip, write_clip
from gar_app.tracking.tracks import FrameCaption
from gar_app.tracking.video_workspace import VideoWorkspace
from gar_app.workspace import Services, Workspace

BOX = (20, 30, 60, 70)  # x1, y1, x2, y2 on the 192 x 144 frames
OTHER = (100, 40, 150, 90)


def box(x1, y1, x2, y2) -> np.ndarray:
    mask = np.zeros((144, 192), bool)
    mask[y1:y2, x1:x2] = True
    return mask


@pytest.fixture
def workspace() -> Workspace:
    """An image workspace whose segmenter gives a box's own rectangle, and a tracker that copies
    each keyframe's mask along its run (which keyframe made a frame's mask shows directly)."""
    return Workspace(Services(segmenter=RectangleSegmenter(), tracker=Copier()))


@pytest.fixture
def video(workspace, shape_clip) -> VideoWorkspace:
    """The 48-frame shapes clip open for tracking, every frame kept."""
    return VideoWorkspace.open(workspace, shape_clip[0], "shapes.mp4", 0, 0)


def assert_closed(video: VideoWorkspace) -> None:
    """The video file was let go: no frame can be read from it any more."""
    with pytest.raises(InputError, match="cannot be decoded"):
        video.clip.frame(41)


def mark_box(video: VideoWorkspace, rect) -> None:
    """A box drawn on the canvas, then what the app does after every event."""
    video.workspace.marking.set_box(rect)
    assert video.sync()


def test_opening_shows_the_first_frame_and_nothing_is_unsaved(video):
    ws = video.workspace
    assert (video.position, len(video.clip)) == (0, 48) and np.array_equal(
        np.asarray(ws.image), video.clip.frame(0)
    )
    assert ws.info.name == "shapes_frame00000.png" and ws.video.frame_index == 0
    assert not video.unsaved and not ws.unsaved and len(ws.regions) == 0


def test_a_new_region_on_a_frame_starts_a_track_anchored_there(video):
    video.show(10)
    mark_box(video, BOX)
    track = video.tracks.regions[0]
    assert track.anchor == 10 and sorted(track.keyframes) == [10]
    assert track.keyframes[10].source == "box" and list(track.keyframes[10].prompt.box) == list(BOX)
    assert video.tracks.pending_runs() == {Run(10, 0): [0], Run(10, 47): [0]}
    assert video.unsaved and video.pending_frames == 47
    video.propagate()
    assert all(np.array_equal(video.tracks.mask(0, p), box(*BOX)) for p in (0, 30, 47))


def test_marking_again_on_another_frame_adds_a_keyframe_that_undo_takes_back(video):
    mark_box(video, BOX)
    video.propagate()
    before = dict(video.tracks.regions[0].masks)
    video.show(30)
    assert video.workspace.regions.tags == ["<Prompt0>"], "the tracked mask is on the frame shown"
    video.workspace.marking.select(0)
    mark_box(video, OTHER)
    track = video.tracks.regions[0]
    assert sorted(track.keyframes) == [0, 30] and track.keyframes[30].source == "box"
    assert video.tracks.pending_runs() == {Run(30, 47): [0]}, "from the new keyframe to the end"

    video.workspace.marking.undo()  # the box on frame 30 taken back: so is its keyframe
    assert video.sync()
    assert sorted(track.keyframes) == [0] and track.masks == before
    assert video.tracks.pending_runs() == {Run(0, 47): [0]}, "keyframe 0 takes its frames back"

    video.workspace.marking.redo()
    assert video.sync()
    video.propagate()
    assert sorted(track.keyframes) == [0, 30]
    assert all(track.masks[p] == before[p] for p in range(30)), "frames before the keyframe are untouched"
    assert all(np.array_equal(video.tracks.mask(0, p), box(*OTHER)) for p in range(30, 48))


def test_deleting_a_region_on_a_frame_deletes_it_from_the_whole_video(video):
    mark_box(video, BOX)
    video.workspace.marking.new_region()
    mark_box(video, OTHER)
    video.propagate()
    video.show(25)
    video.workspace.marking.delete(0)
    assert video.sync()
    assert sorted(video.tracks.regions) == [1] and video.tracks.pending_runs() == {}
    video.show(3)
    assert video.workspace.regions.tags == ["<Prompt1>"], "gone from every frame, the other kept"


def test_a_caption_is_pinned_to_the_frame_it_was_written_on(video):
    mark_box(video, BOX)
    video.propagate()
    video.show(12)
    video.workspace.marking.set_caption(0, "a textured shape, moving right")
    assert video.sync()
    assert video.tracks.regions[0].captions == [FrameCaption(12, "a textured shape, moving right")]
    video.show(13)
    assert video.workspace.regions[0].caption == "", "only on its frame"
    video.show(12)
    assert video.workspace.regions[0].caption == "a textured shape, moving right"
    video.workspace.marking.set_caption(0, "")
    assert video.sync()
    assert video.tracks.regions[0].captions == [], "an emptied caption is unpinned"


def test_a_region_absent_on_a_frame_keeps_its_tag_and_can_be_marked_there_under_it(video):
    mark_box(video, BOX)  # frame 0, not propagated: <Prompt0> is on no other frame yet
    video.show(20)
    assert len(video.workspace.regions) == 0
    assert video.workspace.marking.next_index() == 1, "a new mark here would not take <Prompt0>'s tag"
    assert video.pick("<Prompt0>") is True
    mark_box(video, OTHER)
    assert sorted(video.tracks.regions) == [0], "no <Prompt1>"
    assert sorted(video.tracks.regions[0].keyframes) == [0, 20]
    assert video.workspace.regions.tags == ["<Prompt0>"], "shown under its own tag"
    assert video.tracks.regions[0].keyframes[20].source == "box"
    assert video.pick("<Prompt0>") is False and video.workspace.marking.current == 0, "present: selected"
    with pytest.raises(InputError, match="no tracked region <Prompt5>"):
        video.pick("<Prompt5>")


def test_unsaved_work_is_never_dropped(workspace, shape_clip, tmp_path):
    path = shape_clip[0]
    workspace.set_image(Image.new("RGB", (64, 48)), name="photo.png")
    workspace.marking.set_box((4, 4, 30, 30))
    with pytest.raises(InputError, match="the image has unsaved work"):
        VideoWorkspace.open(workspace, path, "shapes.mp4")
    workspace.mark_saved()  # exported
    video = VideoWorkspace.open(workspace, path, "shapes.mp4", 0, 0)

    video.show(5)
    assert not video.unsaved, "looking at frames is no work"
    assert video.propagate().total == 0 and not video.unsaved, "nor is a Propagate with nothing to do"
    mark_box(video, BOX)
    assert video.unsaved
    with pytest.raises(InputError, match="the tracked video has work that is not exported"):
        VideoWorkspace.open(workspace, path, "shapes.mp4", replacing=video)
    assert video.on_canvas and len(video.tracks.regions) == 1, "kept"
    video.document()
    video.mark_saved()
    assert not video.unsaved
    video.propagate()
    assert video.unsaved, "propagated frames are work"
    video.mark_saved()

    other = write_clip(tmp_path / "other.mp4", moving_shape_clip(frames=6, seed=2).frames, 12.0)
    replacement = VideoWorkspace.open(workspace, other, "other.mp4", 0, 0, replacing=video)
    assert len(replacement.clip) == 6
    assert_closed(video)


def test_opening_another_image_ends_tracking(video):
    mark_box(video, BOX)
    video.mark_saved()
    video.workspace.set_image(Image.new("RGB", (64, 48)), name="photo.png")
    assert video.sync() is False and not video.on_canvas
    assert_closed(video)


def test_export_and_import_of_the_video_form_restore_the_tracks(workspace, shape_clip):
    path = shape_clip[0]
    video = VideoWorkspace.open(workspace, path, "shapes.mp4", 12, 24)  # 24 of the 48 frames
    mark_box(video, BOX)
    video.propagate()
    video.show(9)
    video.workspace.marking.select(0)
    mark_box(video, OTHER)  # a keyframe on frame 9, not propagated yet
    video.workspace.marking.set_caption(0, "the shape on the left")
    assert video.sync()
    assert video.pending_frames == 14, "the export notes what waits for Propagate"
    text = video_to_json(video.document())
    document = video_from_json(text)
    assert (document.frames, document.video.fps_cap, document.video.max_frames) == (24, 12, 24)
    assert [(k.index, k.source) for k in document.regions[0].keyframes] == [
        (0, "box"),
        (video.clip.indices[9], "box"),
    ]

    fresh = VideoWorkspace.open(Workspace(workspace.services), path, "shapes.mp4", 0, 0)  # other sampling
    fresh.show(30)
    fresh.restore(document)
    assert len(fresh.clip) == 24 and fresh.position == 23, "the document's sampling; the frame kept in range"
    assert not fresh.unsaved
    assert video_to_json(fresh.document()) == text, "bit for bit"
    assert fresh.tracks.regions[0].captions == [FrameCaption(9, "the shape on the left")]
    fresh.show(9)
    assert fresh.workspace.regions[0].caption == "the shape on the left"
    assert fresh.workspace.regions[0].mask.tolist() == box(*OTHER).tolist()

    other = Workspace(workspace.services)
    clip = moving_shape_clip(frames=6, seed=2)
    six = write_clip(path.with_name("six.mp4"), clip.frames, 12.0)
    different = VideoWorkspace.open(other, six, "six.mp4", 0, 0)
    with pytest.raises(InputError, match=r"made on another video \(shapes.mp4\)"):
        different.restore(document)
    assert len(different.clip) == 6 and different.on_canvas, "the video open stays as it was"


def test_propagate_redraws_the_frame_shown_and_carries_on_after_a_cancel(video):
    mark_box(video, BOX)
    video.show(20)
    assert len(video.workspace.regions) == 0, "not tracked to frame 20 yet"
    seen = []

    def progress(done, total):
        seen.append(done)
        if len(seen) == 16:
            video.cancel.set()  # pressed while frame 15 is tracked

    result = video.propagate(progress)
    assert (result.done, result.cancelled) == (15, True) and len(video.workspace.regions) == 0
    result = video.propagate(progress)
    assert (result.done, result.total, result.carried) == (47, 47, 15) and seen[16] == 15
    assert video.workspace.regions[0].mask.tolist() == box(*BOX).tolist(), "frame 20 now has the mask"
    assert mask_to_rle(video.workspace.regions[0].mask) == video.tracks.regions[0].masks[20]
