"""Marking without a browser: marks make regions, strokes stay with their region, undo is exact."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import disc_and_square

from gar_app.errors import InputError
from gar_app.marking import Marking, stroke_mask
from gar_app.segment import GrabCutSegmenter
from gar_app.segment.base import Prompt


class Recorder:
    """A segmenter stand-in that returns the prompt's own footprint, and remembers every prompt."""

    def __init__(self):
        self.prompts: list[Prompt] = []

    def __call__(self, prompt: Prompt) -> np.ndarray:
        self.prompts.append(prompt)
        mask = np.zeros((100, 160), bool)
        for x, y in prompt.points:
            mask[max(0, int(y) - 3) : int(y) + 4, max(0, int(x) - 3) : int(x) + 4] = True
        if prompt.box is not None:
            x1, y1, x2, y2 = (int(v) for v in prompt.box)
            mask[min(y1, y2) : max(y1, y2), min(x1, x2) : max(x1, x2)] = True
        if prompt.scribble is not None:
            mask |= np.asarray(prompt.scribble, bool)
        return mask


@pytest.fixture()
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture()
def marking(recorder) -> Marking:
    return Marking(recorder, (160, 100), limit=5)


def test_points_and_boxes_go_to_the_current_region(marking, recorder):
    first = marking.add_point(45, 50)
    marking.add_point(50, 55, positive=False)
    assert first.tag == "<Prompt0>" and marking.current == 0
    assert [list(p) for p in recorder.prompts[-1].points] == [[45.0, 50.0], [50.0, 55.0]]
    assert list(recorder.prompts[-1].labels) == [1, 0]
    marking.new_region()
    assert marking.box_click(95, 20) is None and marking.corner == (95.0, 20.0)
    second = marking.box_click(150, 75)
    assert second.tag == "<Prompt1>" and second.source == "box"
    assert list(recorder.prompts[-1].box) == [95.0, 20.0, 150.0, 75.0] and not recorder.prompts[-1].points
    marking.set_box([96, 21, 140, 70])  # a new box replaces the old one, points stay
    assert list(marking.regions[1].prompt.box) == [96, 21, 140, 70]
    with pytest.raises(InputError, match="start a region with an include point"):
        marking.new_region()
        marking.add_point(10, 10, positive=False)


def test_a_scribble_for_the_next_region_starts_empty(marking, recorder):
    marking.add_stroke([[20, 50], [60, 50]], radius=3)
    first_strokes = marking.scribble_of(marking.regions[0].prompt)
    assert first_strokes[50, 20:61].all() and first_strokes[50, 40]
    marking.new_region()
    marking.add_stroke([[110, 30], [110, 60]], radius=3)
    second = marking.scribble_of(marking.regions[1].prompt)
    assert second[30:61, 110].all()
    assert not (second & first_strokes).any(), "region 1's scribble holds none of region 0's strokes"
    assert np.array_equal(marking.scribble_of(marking.regions[0].prompt), first_strokes)


def test_the_eraser_removes_strokes_of_the_current_region(marking):
    marking.add_stroke([[20, 50], [60, 50]], radius=3)
    marking.add_stroke([[30, 40], [30, 60]], radius=2, erase=True)
    strokes = marking.scribble_of(marking.regions[0].prompt)
    assert strokes[50, 20] and strokes[50, 60] and not strokes[50, 30]
    assert not marking.regions[0].mask[50, 30], "the mask is segmented again without the erased part"
    with pytest.raises(InputError, match="no marks"):
        marking.add_stroke([[10, 50], [70, 50]], radius=8, erase=True)
    marking.new_region()
    marking.add_point(120, 40)
    with pytest.raises(InputError, match="none there"):
        marking.add_stroke([[120, 40], [125, 40]], radius=2, erase=True)


def test_stroke_mask_is_in_image_pixels():
    mask = stroke_mask([[10, 20], [30, 20]], radius=2, size=(40, 30))
    assert mask.shape == (30, 40)
    assert mask[20, 10:31].all() and mask[18:23, 20].all()
    assert not mask[16, 20] and not mask[24, 20] and not mask[20, 34]
    with pytest.raises(InputError, match="radius"):
        stroke_mask([[1, 1]], radius=0, size=(40, 30))


def test_undo_and_redo_restore_the_exact_masks(marking):
    marking.add_point(45, 50)
    one = marking.regions[0].mask.copy()
    marking.add_point(90, 20)
    two = marking.regions[0].mask.copy()
    assert not np.array_equal(one, two)
    marking.set_caption(0, "typed after the marks")
    assert marking.undo()
    assert np.array_equal(marking.regions[0].mask, one)
    assert [list(p) for p in marking.regions[0].prompt.points] == [[45.0, 50.0]]
    assert marking.regions[0].caption == "typed after the marks", "captions are not undone with marks"
    assert marking.redo()
    assert np.array_equal(marking.regions[0].mask, two)
    assert marking.undo() and marking.undo()
    assert len(marking.regions) == 0 and not marking.undo()
    assert marking.redo() and np.array_equal(marking.regions[0].mask, one)


def test_undo_brings_a_deleted_region_back_with_its_tag_caption_and_strokes(marking):
    marking.add_stroke([[20, 50], [60, 50]], radius=3)
    marking.set_caption(0, "a stroke")
    mask, strokes = marking.regions[0].mask.copy(), marking.scribble_of(marking.regions[0].prompt).copy()
    marking.new_region()
    marking.add_point(120, 40)
    marking.delete("<Prompt0>")
    assert marking.regions.tags == ["<Prompt1>"]
    marking.undo()
    back = marking.regions[0]
    assert back.tag == "<Prompt0>" and back.caption == "a stroke" and back.source == "scribble"
    assert np.array_equal(back.mask, mask) and np.array_equal(marking.scribble_of(back.prompt), strokes)
    marking.redo()
    assert marking.regions.tags == ["<Prompt1>"]
    marking.add_point(30, 30)  # a new change forgets what could be redone
    assert not marking.can_redo


def test_history_keeps_masks_packed():
    big = Marking(lambda prompt: np.ones((1536, 2048), bool), (2048, 1536))
    for step in range(20):
        big.add_point(step, step)
    assert 20 * 2048 * 1536 / 8 <= big.history_bytes < 20 * 2 * 2048 * 1536 / 7, (
        "about one bit per pixel, not one byte"
    )


def test_new_regions_skip_reserved_and_used_tags(recorder):
    reserved = {1}
    marking = Marking(recorder, (160, 100), limit=3, reserved=lambda: reserved)
    assert marking.add_point(10, 10).tag == "<Prompt0>"
    marking.new_region()
    assert marking.add_point(40, 40).tag == "<Prompt2>", "<Prompt1> is still referred to"
    with pytest.raises(InputError, match=r"at most 3 regions; <Prompt1> stays? taken"):
        marking.new_region()
    reserved.clear()
    marking.new_region()
    assert marking.add_point(80, 80).tag == "<Prompt1>"


def test_real_segmenter_on_a_disc_and_square():
    segmenter = GrabCutSegmenter()
    image = disc_and_square()

    def segment(prompt):
        segmenter.set_image(image)
        return segmenter.segment_prompt(prompt).mask

    marking = Marking(segment, image.size)
    disc = marking.add_point(45, 50)
    assert disc.mask[50, 45] and not disc.mask[45, 120]
    marking.new_region()
    square = marking.add_stroke([[110, 40], [135, 55]], radius=3)
    assert square.mask[45, 120] and not square.mask[50, 45]
