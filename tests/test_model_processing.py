"""Inputs GAR sees: tiles, the visual-prompt map, region boxes, placeholder runs and prompt text.

Pixels are checked against torchvision's v1 functional resize computed here (the released
GAR processor's kernel); prompt texts are pinned character for character as the release
writes them. Behaviour tests use the project's own example photos and regions made here,
and the project's own GARBench-form sample (``garbench_sample.py``).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import decode_rles, ellipse, example_scene
from garbench_sample import garbench_items, own_garbench
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as v1
from transformers import PerceptionLMImageProcessor

from gar_app.errors import CheckpointError
from gar_app.images import load_image
from gar_app.model import GarConfig
from gar_app.model.image_processing import GarImageProcessor
from gar_app.model.processing import (
    GarProcessor,
    describe_prompt,
    follow_up_prompt,
    multiple_choice_question,
    normalised_box,
    question_prompt,
    visual_prompt_map,
)
from gar_app.tags import find_tags


def _owned_cases() -> list[tuple[str, Image.Image, list[np.ndarray]]]:
    """Example photos (square, landscape, grey, and crops that tile 2x1 and 1x3) with
    off-centre, overlapping regions made here."""
    cases = []
    for name, crop in [
        ("rocket.jpg", None),
        ("cat.jpg", None),
        ("camera.jpg", None),
        ("coffee.jpg", (0, 50, 600, 350)),
        ("astronaut.jpg", (300, 30, 450, 480)),
    ]:
        image = example_scene(name, crop)
        w, h = image.size
        masks = [
            ellipse(image.size, (0.3 * w, 0.6 * h), (0.2 * w, 0.25 * h)),
            ellipse(image.size, (0.75 * w, 0.25 * h), (0.15 * w, 0.1 * h)),
            ellipse(image.size, (0.4 * w, 0.7 * h), (0.1 * w, 0.2 * h)),  # overlaps the first
        ]
        cases.append((f"{name}{crop or ''}", image, masks))
    return cases


@pytest.fixture(scope="module")
def cases():
    return _owned_cases()


def _processor(folder, max_num_tiles: int) -> GarProcessor:
    config = GarConfig.from_pretrained(folder)
    processor = GarProcessor.from_pretrained(folder, config, tokens_per_tile=256)
    processor.image_processor = GarImageProcessor(
        vision_input_type="thumb+tile", tile_size=448, max_num_tiles=max_num_tiles
    )
    return processor


@pytest.fixture(scope="module")
def processor(tiny_gar10_dir) -> GarProcessor:
    """The tiny checkpoint's processor (PerceptionLM's real tile limit, 36, is checked below too)."""
    return _processor(tiny_gar10_dir, 4)


def _v1_tiles(picture: Image.Image, grid: tuple[int, int], interpolation: InterpolationMode) -> torch.Tensor:
    """Thumbnail + row-major tiles, resized by torchvision's v1 functional API and normalised
    with mean = std = 0.5, written out here as the released processor does it."""
    pixels = torch.from_numpy(np.array(picture.convert("RGB"))).permute(2, 0, 1)[None]
    cols, rows = grid
    thumb = v1.resize(pixels, [448, 448], interpolation=interpolation, antialias=True)
    canvas = v1.resize(pixels, [448 * rows, 448 * cols], interpolation=interpolation, antialias=True)
    tiles = [thumb[0]] + [
        canvas[0, :, r * 448 : (r + 1) * 448, c * 448 : (c + 1) * 448]
        for r in range(rows)
        for c in range(cols)
    ]
    return (torch.stack(tiles).float() / 255 - 0.5) / 0.5


def _expected_map(masks: list[np.ndarray], referenced: list[int], none_id: int) -> np.ndarray:
    height, width = masks[0].shape
    expected = np.full((height, width), none_id, dtype=np.uint8)
    for index in sorted(referenced, reverse=True):  # paint later regions first so earlier ones win
        expected[masks[index]] = index
    return expected


@pytest.mark.parametrize("max_num_tiles", [4, 36])
def test_tiles_are_torchvision_v1_resizes_on_perception_lms_grid(cases, tiny_gar10_dir, max_num_tiles):
    processor = _processor(tiny_gar10_dir, max_num_tiles)
    stock = PerceptionLMImageProcessor(
        vision_input_type="thumb+tile", tile_size=448, max_num_tiles=max_num_tiles
    )
    grids = set()
    for name, image, masks in (
        cases if max_num_tiles == 4 else cases[1:2] + cases[4:]
    ):  # 36 tiles: 7x5 and 3x9
        inputs = processor.image_inputs(image, dict(enumerate(masks)))
        grids.add(inputs.grid)
        expected = _v1_tiles(image, inputs.grid, InterpolationMode.BICUBIC)
        assert inputs.pixel_values.shape == expected.shape, name
        assert torch.allclose(inputs.pixel_values, expected, atol=1e-6), name
        # the grid and layout are PerceptionLM's own: transformers' processor (v2 kernel) agrees
        # but for its rounding (a few 1/255 steps on some pixels), which the v1 path removes
        theirs = stock(images=[image], return_tensors="pt")["pixel_values"][0]
        assert theirs.shape == expected.shape, name
        assert (theirs - inputs.pixel_values).abs().mean() < 2 / 255, name
        ids = processor.encode(processor.first_turn_text("hi"), inputs.num_tiles)
        assert int((ids == processor.config.image_token_id).sum()) == inputs.num_tiles * 256, name
    if max_num_tiles == 4:
        assert {(2, 1), (1, 3), (2, 2)} <= grids


def test_map_tiles_are_legacy_nearest_resizes(cases, processor):
    none_id = processor.prompt_numbers
    exact_differs = False
    for name, image, masks in cases:
        referenced = [0, 2]
        prompt_map = visual_prompt_map({k: masks[k] for k in referenced}, image.size, none_id)
        assert np.array_equal(prompt_map, _expected_map(masks, referenced, none_id)), name
        inputs = processor.image_inputs(image, {k: masks[k] for k in referenced})
        map_image = Image.fromarray(_expected_map(masks, referenced, none_id))
        expected = _v1_tiles(map_image, inputs.grid, InterpolationMode.NEAREST)
        assert torch.allclose(inputs.prompt_values, expected, atol=1e-6), name
        recovered = torch.round((inputs.prompt_values + 1) / 2 * 255)
        assert set(recovered.unique().long().tolist()) <= {*referenced, none_id}, name
        exact = _v1_tiles(map_image, inputs.grid, InterpolationMode.NEAREST_EXACT)
        exact_differs |= not torch.allclose(exact, expected)
    assert exact_differs, "nearest-exact (transformers 5's NEAREST) samples other pixels on these images"


def test_map_resampling_follows_the_checkpoint_processor_config(tiny_gar_dir, tmp_path, cases):
    config = GarConfig.from_pretrained(tiny_gar_dir)
    assert GarProcessor.from_pretrained(tiny_gar_dir, config, 256).map_resample == InterpolationMode.NEAREST
    copy = tmp_path / "ckpt"
    shutil.copytree(tiny_gar_dir, copy)
    settings = copy / "preprocessor_config.json"
    values = json.loads(settings.read_text())
    settings.write_text(json.dumps({**values, "visual_prompt_resample": "nearest-exact"}))
    processor = GarProcessor.from_pretrained(copy, config, 256)
    assert processor.map_resample == InterpolationMode.NEAREST_EXACT
    name, image, masks = cases[0]
    inputs = processor.image_inputs(image, {0: masks[0]})
    map_image = Image.fromarray(_expected_map(masks, [0], processor.prompt_numbers))
    expected = _v1_tiles(map_image, inputs.grid, InterpolationMode.NEAREST_EXACT)
    assert torch.allclose(inputs.prompt_values, expected, atol=1e-6)
    settings.write_text(json.dumps({**values, "visual_prompt_resample": "lanczos"}))
    with pytest.raises(CheckpointError, match="visual_prompt_resample"):
        GarProcessor.from_pretrained(copy, config, 256)


def test_each_region_box_is_its_own_mask(cases):
    for name, _image, masks in cases:
        for mask in masks:
            ys, xs = np.nonzero(mask)
            height, width = mask.shape
            expected = (xs.min() / width, ys.min() / height, xs.max() / width, ys.max() / height)
            assert normalised_box(mask) == pytest.approx(expected), name


@pytest.mark.slow
def test_garbench_sample_inputs(processor):
    """Every GARBench-VQA sample item (1 to 9 regions): image and map tiles on the v1 path."""
    for item in garbench_items("vqa"):
        image = load_image(own_garbench() / item["image"])
        masks = decode_rles(item)
        inputs = processor.image_inputs(image, dict(enumerate(masks)))
        expected = _v1_tiles(image, inputs.grid, InterpolationMode.BICUBIC)
        assert torch.allclose(inputs.pixel_values, expected, atol=1e-6), item["id"]
        map_image = Image.fromarray(_expected_map(masks, list(range(len(masks))), processor.prompt_numbers))
        expected = _v1_tiles(map_image, inputs.grid, InterpolationMode.NEAREST)
        assert torch.allclose(inputs.prompt_values, expected, atol=1e-6), item["id"]


def test_256_placeholders_per_referenced_region(processor):
    config = processor.config
    runs = {k: processor.region_run(k) for k in (0, 2, 3)}
    ids = processor.encode(
        processor.first_turn_text(question_prompt("<Prompt0> <Prompt3> <Prompt2>?", runs)), 2
    )
    for k in range(config.prompt_numbers):
        count = int((ids == config.crop_tokens_ids[k]).sum())
        assert count == (256 if k in runs else 0)


# -- prompt texts, as the release writes them (R stands for a region's placeholder run) --------


def test_describe_prompt_is_the_released_caption_prompt():
    assert describe_prompt(1, "R1") == (
        "There are some objects I am curious about: <Prompt1>;\n<Prompt1>: R1Describe this masked region in detail."
    )


def test_question_prompt_lists_the_named_regions_in_index_order():
    question = "Is <Prompt2> left of <Prompt0>? And <Prompt2>?"
    assert find_tags(question) == [0, 2]
    assert question_prompt(question, {2: "R2", 0: "R0"}) == (
        "There are some objects I am curious about: <Prompt0>; <Prompt2>; \n"
        "<Prompt0>: R0\n<Prompt2>: R2\n\nIs <Prompt2> left of <Prompt0>? And <Prompt2>?"
    )


def test_multiple_choice_wording():
    question = multiple_choice_question(
        "What is the relationship between <Prompt0> and <Prompt1>?",
        ["A. <Prompt0> holds <Prompt1>", "B. none"],
    )
    assert question == (
        "Question: What is the relationship between <Prompt0> and <Prompt1>?\nOptions:\n"
        "A. <Prompt0> holds <Prompt1>\nB. none\nAnswer with the correct option's letter directly."
    )


def test_follow_up_prompt_is_the_training_format():
    assert follow_up_prompt("And <Prompt0>?", {}) == "And <Prompt0>?"
    assert follow_up_prompt("What is <Prompt2> doing?", {2: "R2"}) == "<Prompt2>: R2What is <Prompt2> doing?"
    assert follow_up_prompt("<Prompt2>: Describe this masked region in detail.", {2: "R2"}) == (
        "<Prompt2>: R2Describe this masked region in detail."
    )
    assert follow_up_prompt("Is <Prompt3> on <Prompt1>?", {3: "R3", 1: "R1"}) == (
        "<Prompt1>: R1\n<Prompt3>: R3Is <Prompt3> on <Prompt1>?"
    )
    assert follow_up_prompt("<Prompt3>: Compare with <Prompt1>.", {3: "R3", 1: "R1"}) == (
        "<Prompt1>: R1\n<Prompt3>: R3Compare with <Prompt1>."
    )


def test_user_text_cannot_inject_placeholders(processor):
    image_token = processor.image_token
    crop = processor.region_run(0)
    text = processor.sanitise(f"look {image_token} at {crop} this")
    assert image_token not in text and crop not in text


def test_answers_hide_control_tokens_but_keep_region_tags(processor):
    tokenizer = processor.tokenizer
    ids = tokenizer(
        "<|start_header_id|>A cup<|eot_id|> next to <Prompt1>.<|reserved_special_token_2|>",
        add_special_tokens=False,
    )["input_ids"]
    assert processor.decode(ids) == "A cup next to <Prompt1>."
