"""GrabCut fallback and the prompt rules every segmenter shares (gar_app.segment.base)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import shared_data
from helpers import iou
from PIL import Image

from gar_app.errors import CheckpointError, InputError
from gar_app.images import mask_box
from gar_app.segment import GrabCutSegmenter, check_prompt, load_segmenter


def scene(width: int = 360, height: int = 270, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A noisy two-tone gradient background with three flat-but-noisy shapes of known masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([60 + 60 * xx / width, 110 + 40 * yy / height, 70 + 0 * xx], axis=-1)
    shapes = {name: np.zeros((height, width), np.uint8) for name in ("ellipse", "rectangle", "triangle")}
    s = width / 360
    cv2.ellipse(shapes["ellipse"], (int(95 * s), int(90 * s)), (int(60 * s), int(40 * s)), 25, 0, 360, 1, -1)
    cv2.rectangle(shapes["rectangle"], (int(220 * s), int(40 * s)), (int(320 * s), int(120 * s)), 1, -1)
    triangle = (np.array([[150, 250], [250, 150], [330, 245]]) * s).astype(np.int32)
    cv2.fillPoly(shapes["triangle"], [triangle], 1)
    colours = {"ellipse": (210, 60, 50), "rectangle": (40, 70, 200), "triangle": (230, 210, 60)}
    for name, mask in shapes.items():
        base[mask > 0] = colours[name]
    image = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
    return image, {name: mask > 0 for name, mask in shapes.items()}


def inner_point(mask: np.ndarray) -> list[float]:
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return [float(x), float(y)]


def padded_box(mask: np.ndarray, pad: int = 6) -> list[float]:
    x0, y0, x1, y1 = mask_box(mask)
    return [x0 - pad, y0 - pad, x1 + 1 + pad, y1 + 1 + pad]


def zigzag_inside(mask: np.ndarray) -> list[list[float]]:
    """An open stroke painted across the inner part of a shape."""
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    ys, xs = np.nonzero(eroded)
    order = np.argsort(xs)
    picks = order[np.linspace(0, len(order) - 1, 6).astype(int)]
    return [[float(xs[i]), float(ys[i])] for i in picks]


def lasso_around(mask: np.ndarray, pad: int = 8) -> list[list[float]]:
    contours, _ = cv2.findContours(
        cv2.dilate(mask.astype(np.uint8), np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)),
        cv2.RETR_EXTERNAL,
        cv2.CHAIN_APPROX_SIMPLE,
    )
    outline = contours[0][:, 0, :].astype(float).tolist()
    return outline + outline[:1]  # back to the start, as a hand-drawn lasso does


@pytest.fixture(scope="module")
def synthetic():
    image, shapes = scene()
    segmenter = GrabCutSegmenter()
    segmenter.set_image(image)
    return segmenter, shapes


SHAPES = ["ellipse", "rectangle", "triangle"]


@pytest.mark.parametrize("shape", SHAPES)
def test_box_prompt_finds_the_shape(synthetic, shape):
    segmenter, shapes = synthetic
    result = segmenter.segment(box=padded_box(shapes[shape]))
    assert result.mask.shape == shapes[shape].shape and result.mask.dtype == bool
    assert iou(result.mask, shapes[shape]) >= 0.9


@pytest.mark.parametrize("shape", SHAPES)
def test_point_prompt_finds_the_shape(synthetic, shape):
    segmenter, shapes = synthetic
    result = segmenter.segment(points=[inner_point(shapes[shape])], labels=[1])
    assert iou(result.mask, shapes[shape]) >= 0.9


def test_negative_point_carves_out_a_touching_shape():
    image, shapes = scene()
    joined = shapes["ellipse"].copy()
    stripe = np.zeros_like(joined)
    stripe[80:100, 140:230] = True  # same colour as the ellipse, bridging it to open ground
    image[stripe & ~joined] = image[shapes["ellipse"]][: int((stripe & ~joined).sum())]
    segmenter = GrabCutSegmenter()
    segmenter.set_image(image)
    both = segmenter.segment(points=[inner_point(shapes["ellipse"])])
    assert both.mask[90, 200]  # the bridge is taken along with the ellipse...
    carved = segmenter.segment(points=[inner_point(shapes["ellipse"]), [200, 90]], labels=[1, 0])
    assert not carved.mask[90, 200]  # ...until a negative click says otherwise
    assert carved.mask.sum() < both.mask.sum()
    assert (carved.mask & shapes["ellipse"]).sum() >= 0.95 * shapes["ellipse"].sum()


@pytest.mark.parametrize("shape", SHAPES)
def test_open_scribble_finds_the_shape(synthetic, shape):
    segmenter, shapes = synthetic
    result = segmenter.segment(scribble=zigzag_inside(shapes[shape]))
    assert iou(result.mask, shapes[shape]) >= 0.9


@pytest.mark.parametrize("shape", SHAPES)
def test_lasso_scribble_finds_the_shape(synthetic, shape):
    segmenter, shapes = synthetic
    lasso = lasso_around(shapes[shape])
    checked = check_prompt(360, 270, scribble=lasso)
    assert checked.lasso is not None  # a closed stroke is read as "the object is in here"
    result = segmenter.segment(scribble=lasso)
    assert iou(result.mask, shapes[shape]) >= 0.9


def test_stroke_mask_scribble_is_accepted(synthetic):
    segmenter, shapes = synthetic
    stroke = np.zeros_like(shapes["rectangle"])
    stroke[75:85, 235:300] = True
    result = segmenter.segment(scribble=stroke)
    assert iou(result.mask, shapes["rectangle"]) >= 0.9


def test_box_mask_stays_inside_box_on_demo_image():
    path = shared_data("seed_demo", "demo_image_2.jpg")
    segmenter = GrabCutSegmenter()
    segmenter.set_image(path)
    box = [800, 510, 1790, 990]  # around the running dog
    result = segmenter.segment(box=box)
    assert result.mask.shape == (1365, 2048)
    x0, y0, x1, y1 = mask_box(result.mask)
    assert x0 >= 800 and y0 >= 510 and x1 < 1790 and y1 < 990
    assert 0.2 < result.mask.sum() / ((1790 - 800) * (990 - 510)) < 0.9  # the dog, not the whole box


# --- prompt rules (shared by every backend) ---------------------------------------------


def test_points_outside_the_image_are_rejected(synthetic):
    segmenter, _ = synthetic
    for point in ([360, 10], [-1, 10], [10, 270], [10, -0.5]):
        with pytest.raises(InputError, match="outside the 360x270 image"):
            segmenter.segment(points=[point])


def test_box_rules():
    with pytest.raises(InputError, match="zero area"):
        check_prompt(100, 80, box=[10, 10, 10, 50])
    with pytest.raises(InputError, match="zero area"):
        check_prompt(100, 80, box=[10, 30, 50, 30])
    with pytest.raises(InputError, match="outside"):
        check_prompt(100, 80, box=[120, 10, 150, 50])
    with pytest.raises(InputError, match="four numbers"):
        check_prompt(100, 80, box=[1, 2, 3])
    assert check_prompt(100, 80, box=[50, 60, 10, 5]).box.tolist() == [10, 5, 50, 60]  # dragged up-left
    assert check_prompt(100, 80, box=[-20, 10, 130, 95]).box.tolist() == [0, 10, 100, 80]  # clipped


def test_scribble_and_empty_prompt_rules():
    with pytest.raises(InputError, match="scribble is empty"):
        check_prompt(100, 80, scribble=[[200, 200], [300, 300]])
    with pytest.raises(InputError, match="scribble is empty"):
        check_prompt(100, 80, scribble=np.zeros((80, 100), bool))
    with pytest.raises(InputError, match="scribble is empty"):
        check_prompt(100, 80, scribble=[])
    assert check_prompt(100, 80, points=[[5, 5]], scribble=[]).stroke is None  # ignored beside a click
    with pytest.raises(InputError, match="scribble mask is 10x10"):
        check_prompt(100, 80, scribble=np.ones((10, 10), bool))
    with pytest.raises(InputError, match="no prompt"):
        check_prompt(100, 80)
    with pytest.raises(InputError, match="only background"):
        check_prompt(100, 80, points=[[5, 5]], labels=[0])
    with pytest.raises(InputError, match="2 points but 1 labels"):
        check_prompt(100, 80, points=[[5, 5], [6, 6]], labels=[1])
    with pytest.raises(InputError, match="1 \\(object\\) or 0"):
        check_prompt(100, 80, points=[[5, 5]], labels=[2])
    layer = np.zeros((80, 100, 4), np.uint8)
    layer[20:24, 10:60, 3] = 255  # a black brush on a transparent drawing layer
    assert check_prompt(100, 80, scribble=Image.fromarray(layer, "RGBA")).stroke.sum() == 200
    stroke = check_prompt(100, 80, scribble=[[10, 10], [90, 70]]).stroke
    assert stroke.any() and stroke[40, 50] and stroke.shape == (80, 100)
    assert check_prompt(100, 80, scribble=[[10, 10], [90, 70]]).lasso is None
    almost_closed = [[10, 10], [60, 10], [60, 60], [10, 60], [10, 16]]  # 6 px short of the start
    assert check_prompt(100, 80, scribble=almost_closed).lasso[35, 35]
    assert check_prompt(100, 80, scribble=[[10, 10], [60, 10], [60, 60], [10, 60]]).lasso is None  # a U
    several = check_prompt(100, 80, scribble=[[[5, 5], [20, 5]], [[50, 50], [60, 70], [70, 50]]]).stroke
    assert several[5, 12] and several[60, 55] and not several[55, 60]


def test_segment_before_set_image_is_a_clear_error():
    with pytest.raises(InputError, match="set_image"):
        GrabCutSegmenter().segment(points=[[1, 1]])


# --- odd images -------------------------------------------------------------------------


def test_one_pixel_image():
    segmenter = GrabCutSegmenter()
    segmenter.set_image(np.full((1, 1, 3), 128, np.uint8))
    assert segmenter.segment(box=[0, 0, 1, 1]).mask.tolist() == [[True]]
    assert segmenter.segment(points=[[0, 0]]).mask.tolist() == [[True]]
    with pytest.raises(InputError, match="outside"):
        segmenter.segment(points=[[1, 0]])


def test_flat_image_does_not_crash():
    segmenter = GrabCutSegmenter()
    segmenter.set_image(np.zeros((50, 60, 3), np.uint8))
    result = segmenter.segment(box=[10, 10, 40, 30])
    assert result.mask.shape == (50, 60)
    # nothing stands out, so the box itself comes back, with a score that says so
    assert result.score == 0.0
    assert result.mask.sum() == 30 * 20 and result.mask[10:30, 10:40].all()
    clicked = segmenter.segment(points=[[5, 5]])
    assert clicked.mask[5, 5] and clicked.mask.shape == (50, 60)


def test_cmyk_and_16_bit_images(tmp_path):
    image, shapes = scene()
    cmyk = tmp_path / "scene.jpg"
    Image.fromarray(image).convert("CMYK").save(cmyk, quality=95)
    grey16 = image[..., 2].astype(np.uint16) * 257  # the blue channel: the rectangle stands out
    for source in (cmyk, Image.fromarray(image).convert("CMYK"), grey16):
        segmenter = GrabCutSegmenter()
        segmenter.set_image(source)
        assert segmenter.image_size == (360, 270)
        result = segmenter.segment(box=padded_box(shapes["rectangle"]))
        assert iou(result.mask, shapes["rectangle"]) >= 0.85


def test_40_megapixel_image_is_cut_at_working_size():
    small, small_shapes = scene(width=730, height=548, seed=1)
    image = cv2.resize(small, (7300, 5480), interpolation=cv2.INTER_NEAREST)  # 40 MP
    segmenter = GrabCutSegmenter()
    segmenter.set_image(image)
    x, y = inner_point(small_shapes["rectangle"])
    result = segmenter.segment(points=[[x * 10 + 5, y * 10 + 5]])
    assert result.mask.shape == (5480, 7300)
    for name, box in (("rectangle", None), ("ellipse", padded_box(small_shapes["ellipse"]))):
        truth = (
            cv2.resize(small_shapes[name].astype(np.uint8), (7300, 5480), interpolation=cv2.INTER_NEAREST) > 0
        )
        if box is not None:
            result = segmenter.segment(box=[v * 10 for v in box])
        assert iou(result.mask, truth) >= 0.9


# --- choosing the backend ---------------------------------------------------------------


def test_without_weights_the_fallback_is_used_and_named(monkeypatch, tmp_path):
    monkeypatch.delenv("GAR_APP_SAM_CHECKPOINT", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    segmenter = load_segmenter(device="cpu")
    assert isinstance(segmenter, GrabCutSegmenter)
    assert segmenter.name == "GrabCut fallback (no SAM weights)"


def test_a_named_checkpoint_that_is_missing_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(CheckpointError, match="not found"):
        load_segmenter(tmp_path / "nope.pth", device="cpu")
    monkeypatch.setenv("GAR_APP_SAM_CHECKPOINT", str(tmp_path / "gone.pth"))
    with pytest.raises(CheckpointError, match="GAR_APP_SAM_CHECKPOINT"):
        load_segmenter(device="cpu")


def test_a_box_cut_that_collapses_returns_the_box():
    """A box over flag and suit on the astronaut photo: GrabCut alone keeps ~100 pixels of the
    box's 33,000, a speck nobody can use; the box itself is the honest answer (score 0)."""

    from gar_app.segment import GrabCutSegmenter

    segmenter = GrabCutSegmenter()
    segmenter.set_image(Path(__file__).resolve().parents[1] / "assets" / "examples" / "astronaut.jpg")
    result = segmenter.segment(box=[25.6, 25.6, 153.6, 281.6])
    inside = result.mask[25:282, 25:154]  # the box covers the pixels it touches
    assert inside.mean() >= 0.02 and result.mask.sum() == inside.sum()
    assert result.score == 0.0
