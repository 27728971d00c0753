"""Inputs GAR sees: tiles, the visual-prompt map, region boxes and placeholder runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SEED_DEMO_CASES, decode_rles, garbench_items, shared_data
from PIL import Image
from transformers import PerceptionLMImageProcessor

from gar_app.images import load_image, load_mask
from gar_app.model import GarConfig
from gar_app.model.processing import (
    GarProcessor,
    normalised_box,
    question_prompt,
    visual_prompt_map,
)
from gar_app.tags import find_tags


def _cases() -> list[tuple[str, Image.Image, list[np.ndarray]]]:
    cases = []
    for image_name, mask_names in SEED_DEMO_CASES:
        image = load_image(shared_data("seed_demo", image_name))
        masks = [load_mask(shared_data("seed_demo", m), size=image.size) for m in mask_names]
        cases.append((image_name, image, masks))
    image = load_image(shared_data("seed_demo", "demo_image_2.jpg"))
    box = np.zeros((image.height, image.width), dtype=bool)
    box[500:1000, 800:1800] = True
    cases.append(("demo_image_2.jpg", image, [box]))
    for split in ("vqa", "simple", "detailed"):
        for item in garbench_items(split):
            image = load_image(shared_data("garbench", item["image"]))
            cases.append((item["id"], image, decode_rles(item)))
    return cases


@pytest.fixture(scope="module")
def cases():
    return _cases()


def _processor(folder, max_num_tiles: int) -> GarProcessor:
    config = GarConfig.from_pretrained(folder)
    processor = GarProcessor.from_pretrained(folder, config, tokens_per_tile=256)
    processor.image_processor = PerceptionLMImageProcessor(
        vision_input_type="thumb+tile", tile_size=448, max_num_tiles=max_num_tiles
    )
    return processor


@pytest.fixture(scope="module")
def processor(tiny_gar10_dir) -> GarProcessor:
    """The tiny checkpoint's processor (PerceptionLM's real tile limit, 36, is checked below too)."""
    return _processor(tiny_gar10_dir, 4)


@pytest.mark.parametrize("max_num_tiles", [4, 36])
def test_tiles_match_perception_lm(cases, tiny_gar10_dir, max_num_tiles):
    processor = _processor(tiny_gar10_dir, max_num_tiles)
    reference = PerceptionLMImageProcessor(vision_input_type="thumb+tile", tile_size=448, max_num_tiles=max_num_tiles)
    for name, image, masks in cases:
        inputs = processor.image_inputs(image, dict(enumerate(masks)))
        expected = reference(images=[image], return_tensors="pt")["pixel_values"][0]
        assert inputs.pixel_values.shape == expected.shape, name
        assert torch.equal(inputs.pixel_values, expected), name
        cols, rows = inputs.grid
        assert inputs.num_tiles == cols * rows + 1, name
        assert inputs.prompt_values.shape == inputs.pixel_values.shape, name
        ids = processor.encode(processor.first_turn_text("hi"), inputs.num_tiles)
        image_tokens = int((ids == processor.config.image_token_id).sum())
        assert image_tokens == inputs.num_tiles * (448 // 14 // 2) ** 2, name


def _expected_map(masks: list[np.ndarray], referenced: list[int], none_id: int) -> np.ndarray:
    height, width = masks[0].shape
    expected = np.full((height, width), none_id, dtype=np.uint8)
    for index in sorted(referenced, reverse=True):  # paint later regions first so earlier ones win
        expected[masks[index]] = index
    return expected


def test_visual_prompt_map_holds_referenced_ids_earlier_wins(cases, processor):
    none_id = processor.prompt_numbers
    for name, image, masks in cases:
        referenced = list(range(len(masks)))[::2] or [0]
        prompt_map = visual_prompt_map({k: masks[k] for k in referenced}, image.size, none_id)
        assert np.array_equal(prompt_map, _expected_map(masks, referenced, none_id)), name
        assert set(np.unique(prompt_map)) <= {*referenced, none_id}, name
        inputs = processor.image_inputs(image, {k: masks[k] for k in referenced})
        recovered = torch.round((inputs.prompt_values + 1) / 2 * 255)
        assert torch.equal(recovered[:, 0], recovered[:, 2]), name  # the map is grey: channels agree
        values = set(recovered.unique().long().tolist())
        assert values <= {*referenced, none_id}, name
        thumb = Image.fromarray(prompt_map).resize((448, 448), Image.NEAREST)
        agreement = (recovered[0, 0].numpy() == np.asarray(thumb)).mean()
        assert agreement > 0.98, f"{name}: thumbnail map agrees with a NEAREST resize on {agreement:.3f}"


def test_each_region_box_is_its_own_mask(cases):
    for name, _image, masks in cases:
        for mask in masks:
            if not mask.any():
                continue
            ys, xs = np.nonzero(mask)
            height, width = mask.shape
            expected = (xs.min() / width, ys.min() / height, xs.max() / width, ys.max() / height)
            assert normalised_box(mask) == pytest.approx(expected), name


def test_256_placeholders_per_referenced_region(processor):
    config = processor.config
    runs = {k: processor.region_run(k) for k in (0, 2, 3)}
    ids = processor.encode(processor.first_turn_text(question_prompt("<Prompt0> <Prompt3> <Prompt2>?", runs)), 2)
    for k in range(config.prompt_numbers):
        count = int((ids == config.crop_tokens_ids[k]).sum())
        assert count == (256 if k in runs else 0)


def test_question_prompt_lists_tags_in_index_order(processor):
    question = "Is <Prompt2> left of <Prompt0>? And <Prompt2>?"
    assert find_tags(question) == [0, 2]
    prompt = question_prompt(question, {0: "R0", 2: "R2"})
    assert prompt == (
        "There are some objects I am curious about: <Prompt0>; <Prompt2>; \n"
        "<Prompt0>: R0\n<Prompt2>: R2\n\n" + question
    )


def test_user_text_cannot_inject_placeholders(processor):
    image_token = processor.image_token
    crop = processor.region_run(0)
    text = processor.sanitise(f"look {image_token} at {crop} this")
    assert image_token not in text and crop not in text


def test_answers_hide_control_tokens_but_keep_region_tags(processor):
    tokenizer = processor.tokenizer
    ids = tokenizer("<|start_header_id|>A cup<|eot_id|> next to <Prompt1>.<|reserved_special_token_2|>",
                    add_special_tokens=False)["input_ids"]
    assert processor.decode(ids) == "A cup next to <Prompt1>."
