"""The region set: tags, colours, limit, removal policy, overlap and rendering."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gar_app.errors import InputError
from gar_app.regions import (
    REGION_COLOURS,
    Region,
    RegionSet,
    hex_to_rgb,
    region_colour,
    render_overlay,
)
from gar_app.segment import Prompt
from gar_app.tags import parse_tag


def square(x0: int, y0: int, x1: int, y1: int, shape: tuple[int, int] = (30, 40)) -> np.ndarray:
    """Boolean mask with pixels x0..x1-1, y0..y1-1 set."""
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_palette_starts_red_green_blue_and_stays_distinguishable():
    assert [hex_to_rgb(c) for c in REGION_COLOURS[:3]] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    assert len(REGION_COLOURS) >= 16 and len(set(REGION_COLOURS)) == len(REGION_COLOURS)
    rgb = np.array([hex_to_rgb(c) for c in REGION_COLOURS], float)
    closest = min(np.linalg.norm(a - b) for a, b in itertools.combinations(rgb, 2))
    assert closest >= 100  # no two colours closer than this in RGB
    assert region_colour(len(REGION_COLOURS)) == REGION_COLOURS[0]  # repeats only past the palette


def test_tags_colours_boxes_and_areas():
    regions = RegionSet(limit=5)
    first = regions.add(square(2, 3, 12, 8), "box", Prompt(box=[2, 3, 12, 8]))
    second = regions.add(
        square(20, 10, 25, 30), prompt=Prompt(points=[[22, 20]], labels=[1]), caption="a post"
    )
    assert (first.tag, first.colour, first.rgb) == ("<Prompt0>", "#FF0000", (255, 0, 0))
    assert (second.tag, second.colour) == ("<Prompt1>", "#00FF00")
    assert first.box == (2, 3, 11, 7)  # inclusive pixel box, as GAR computes it
    assert first.area == 50 and second.area == 100
    assert second.source == "points" and second.prompt.points == [[22, 20]] and second.caption == "a post"
    assert regions.tags == ["<Prompt0>", "<Prompt1>"] and len(regions) == 2
    assert regions.get("<Prompt1>") is second and regions[1] is second and "<Prompt1>" in regions
    assert parse_tag(" <Prompt12> ") == 12
    with pytest.raises(InputError, match="not a region tag"):
        regions.get("Prompt1")
    with pytest.raises(InputError, match="no region <Prompt7>"):
        regions.get(7)


def test_masks_are_copied_frozen_and_checked():
    regions = RegionSet()
    mask = square(0, 0, 5, 5)
    region = regions.add(mask)
    mask[:] = False
    assert region.area == 25  # the caller's array can change; the region does not
    with pytest.raises(ValueError):
        region.mask[0, 0] = False
    with pytest.raises(InputError, match="mask is empty"):
        regions.add(np.zeros((30, 40), bool))
    with pytest.raises(InputError, match="the mask is 10x10 but the image is 40x30"):
        regions.add(np.ones((10, 10), bool))
    with pytest.raises(InputError, match="unknown region source"):
        regions.add(square(0, 0, 2, 2), "lasso")
    uploaded = regions.add(Image.fromarray(square(1, 1, 3, 3).astype(np.uint8) * 255))  # image masks too
    assert uploaded.area == 4 and uploaded.source == "mask" and uploaded.prompt is None


def test_limit_comes_from_prompt_numbers():
    regions = RegionSet(limit=2)
    regions.add(square(0, 0, 5, 5))
    regions.add(square(5, 5, 9, 9))
    assert regions.is_full
    with pytest.raises(InputError, match="at most 2 regions with this model"):
        regions.add(square(10, 10, 12, 12))
    unlimited = RegionSet(limit=None)  # annotation without a model
    for i in range(25):
        unlimited.add(square(i, 0, i + 1, 1))
    assert len(unlimited) == 25 and unlimited[24].tag == "<Prompt24>"
    with pytest.raises(InputError, match="remove or renumber <Prompt2>"):
        unlimited.limit = 2


def test_removal_keeps_tags_and_reuses_the_lowest_free_index():
    regions = RegionSet(limit=3)
    for x in (0, 10, 20):
        regions.add(square(x, 0, x + 5, 5))
    removed = regions.remove("<Prompt1>")
    assert removed.tag == "<Prompt1>"
    assert regions.tags == ["<Prompt0>", "<Prompt2>"]
    assert regions[2].colour == "#0000FF" and regions[2].box == (20, 0, 24, 4)  # unchanged identity
    again = regions.add(square(30, 20, 35, 25))
    assert again.tag == "<Prompt1>" and again.colour == "#00FF00"  # the freed number, below the limit
    with pytest.raises(InputError, match="at most 3"):
        regions.add(square(0, 20, 2, 22))


def test_compact_renumbers_on_request():
    regions = RegionSet()
    for x in (0, 10, 20, 30):
        regions.add(square(x, 0, x + 5, 5))
    regions.remove(0)
    regions.remove(2)
    assert regions.compact() == {1: 0, 3: 1}
    assert regions.tags == ["<Prompt0>", "<Prompt1>"]
    assert regions[0].box == (10, 0, 14, 4) and regions[0].colour == "#FF0000"


def test_update_replaces_mask_and_caption_but_not_tag():
    regions = RegionSet()
    regions.add(square(0, 0, 5, 5), "box", Prompt(box=[0, 0, 5, 5]))
    regions.add(square(10, 0, 15, 5))
    updated = regions.update("<Prompt0>", mask=square(0, 0, 8, 8), prompt=Prompt(points=[[3, 3]]))
    assert updated.tag == "<Prompt0>" and updated.area == 64 and updated.source == "points"
    captioned = regions.update(0, caption="a red square")
    assert captioned.caption == "a red square" and captioned.area == 64
    assert regions[0] is captioned and regions[1].area == 25
    with pytest.raises(InputError, match="comes with a new mask"):
        regions.update(0, source="box")


def test_overlap_is_allowed_and_masks_stay_whole():
    regions = RegionSet()
    a = regions.add(square(0, 0, 10, 10))
    b = regions.add(square(5, 5, 15, 15))
    assert regions.overlap(0, 1) == 25
    assert a.area == 100 and b.area == 100  # nobody loses pixels to the other


def test_import_can_restore_exact_indexes():
    regions = RegionSet(limit=5)
    assert regions.add(square(0, 0, 2, 2), index=3).tag == "<Prompt3>"
    assert regions.add(square(5, 5, 7, 7)).tag == "<Prompt0>"
    with pytest.raises(InputError, match="must be free"):
        regions.add(square(5, 5, 7, 7), index=3)
    with pytest.raises(InputError, match="below 5"):
        regions.add(square(5, 5, 7, 7), index=5)


def test_label_point_is_inside_even_for_a_ring():
    ring = square(5, 5, 35, 25) & ~square(9, 9, 31, 21)
    region = RegionSet().add(ring)
    x, y = region.label_point
    assert ring[y, x]


# --- rendering --------------------------------------------------------------------------


def blend(base: np.ndarray, colour: tuple[int, int, int], alpha: float) -> np.ndarray:
    return base * (1 - alpha) + np.array(colour, float) * alpha


def outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    inner[0, :] = inner[-1, :] = inner[:, 0] = inner[:, -1] = False
    return mask & ~inner


def test_render_fill_and_contour_pixel_by_pixel():
    image = np.full((30, 40, 3), 100, np.uint8)
    image[:, 20:] = (10, 200, 30)
    regions = RegionSet()
    a = square(4, 4, 16, 14)
    b = square(10, 8, 30, 26)
    regions.add(a)
    regions.add(b)
    out = render_overlay(image, regions, alpha=0.5, labels=False)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(image[0, 0], [100, 100, 100])  # the input is not drawn on

    edge_a, edge_b = outline(a), outline(b)
    expected = image.astype(float)
    expected[a] = blend(expected[a], (255, 0, 0), 0.5)
    expected[b] = blend(expected[b], (0, 255, 0), 0.5)  # overlap: green over red, in index order
    expected[edge_a] = (255, 0, 0)
    expected[edge_b] = (0, 255, 0)  # later contours on top
    outside = ~(a | b)
    assert np.array_equal(out[outside], image[outside])  # untouched outside the regions
    assert np.array_equal(out[edge_a | edge_b], expected[edge_a | edge_b].astype(np.uint8))
    fill = (a | b) & ~(edge_a | edge_b)
    assert np.abs(out[fill].astype(int) - expected[fill]).max() <= 1  # rounding only
    overlap_pixel = out[10, 13]  # inside both, on neither contour
    # grey 100 -> half red (177.5, 50, 50) -> half green (88.75, 152.5, 25)
    assert overlap_pixel.tolist() == pytest.approx([89, 152, 25], abs=1)


def test_selected_region_is_outlined_on_top():
    image = np.full((30, 40, 3), 100, np.uint8)
    regions = RegionSet()
    regions.add(square(4, 4, 16, 14))
    regions.add(square(10, 8, 30, 26))
    out = render_overlay(image, regions, selected="<Prompt0>", labels=False)
    # a thicker (3 px) red contour, drawn after the green one
    assert out[8, 15].tolist() == [255, 0, 0]  # red edge crossing green's area
    assert out[8, 16].tolist() == [255, 0, 0] and out[8, 17].tolist() == [255, 0, 0]  # thick, outwards too
    plain = render_overlay(image, regions, labels=False)
    assert plain[8, 15].tolist() != [255, 0, 0] or plain[8, 16].tolist() != [255, 0, 0]


def test_labels_are_drawn_at_each_region():
    image = np.full((200, 300, 3), 128, np.uint8)
    regions = RegionSet()
    regions.add(square(10, 10, 140, 90, (200, 300)))
    regions.add(square(150, 100, 290, 190, (200, 300)))
    without = render_overlay(image, regions, labels=False)
    with_labels = render_overlay(image, regions)
    changed = np.any(with_labels != without, axis=2)
    for region in regions:
        x, y = region.label_point
        near = changed[max(0, y - 15) : y + 15, max(0, x - 60) : x + 60]
        assert near.sum() > 50  # text was drawn around the label point
        patch = with_labels[max(0, y - 15) : y + 15, max(0, x - 60) : x + 60].reshape(-1, 3)
        assert (patch.max(axis=1) < 40).any()  # with a dark outline
    assert not changed[:, :5].any() and not changed[195:].any()  # nowhere else


def test_render_accepts_pil_images_and_checks_sizes():
    regions = RegionSet()
    regions.add(square(0, 0, 5, 5))
    out = render_overlay(Image.new("RGBA", (40, 30), (0, 0, 255, 255)), regions, labels=False)
    assert out.shape == (30, 40, 3) and out[20, 20].tolist() == [0, 0, 255]
    with pytest.raises(InputError, match="<Prompt0>'s mask is 40x30 but the image is 50x30"):
        render_overlay(np.zeros((30, 50, 3), np.uint8), regions)
    assert render_overlay(np.zeros((30, 40, 3), np.uint8), []).sum() == 0


def test_region_is_immutable():
    region = Region(0, square(0, 0, 2, 2))
    with pytest.raises(AttributeError):
        region.index = 3  # type: ignore[misc]


def test_regions_import_without_torch():
    """The UI and exporter use regions without paying torch's multi-second import."""
    import subprocess
    import sys

    code = "import sys, gar_app.regions, gar_app.segment; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
