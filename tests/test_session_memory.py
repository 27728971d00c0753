"""What a conversation keeps between turns: the feature map and the KV cache, never the image tiles."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from gar_app.model import GenerationSettings

SHORT = GenerationSettings(max_new_tokens=5)
QUESTIONS = ["What is <Prompt0>?", "And <Prompt1>?", "Which is bigger, <Prompt0> or <Prompt2>?"]


@pytest.fixture(scope="module")
def scene() -> tuple[Image.Image, list[np.ndarray]]:
    """A 300x200 picture (several tiles) with three shapes and their masks."""
    image = Image.new("RGB", (300, 200), (120, 130, 140))
    draw = ImageDraw.Draw(image)
    boxes = [(20, 30, 110, 150), (140, 60, 200, 120), (220, 20, 290, 190)]
    for box, colour in zip(boxes, [(220, 40, 40), (40, 200, 60), (50, 60, 230)], strict=True):
        draw.ellipse(box, fill=colour)
    masks = []
    for x1, y1, x2, y2 in boxes:
        mask = np.zeros((200, 300), bool)
        mask[y1:y2, x1:x2] = True
        masks.append(mask)
    return image, masks


def held_tensors(session) -> list[torch.Tensor]:
    """Every tensor a session's own state refers to (the shared model excluded)."""
    found: list[torch.Tensor] = []
    seen: set[int] = set()

    def visit(value) -> None:
        if id(value) in seen or isinstance(value, (str, bytes, int, float, np.ndarray, Image.Image)):
            return
        seen.add(id(value))
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple, set)):
            for item in value:
                visit(item)
        elif dataclasses.is_dataclass(value) or hasattr(value, "__dict__"):
            for item in vars(value).values():
                visit(item)

    for name, value in vars(session).items():
        if name != "gar":
            visit(value)
    return found


def test_a_conversation_keeps_no_tiles_after_encoding(tiny_gar, scene):
    image, masks = scene
    session = tiny_gar.chat(image, masks)
    tile = tiny_gar.processor.image_processor.tile_size
    cols, rows = tiny_gar.processor.tile_grid(image.size)
    assert cols * rows > 1, "the picture is tiled"

    session.ask(QUESTIONS[0], SHORT)
    kept = held_tensors(session)
    assert kept, "the walk finds the session's tensors"
    assert not [t.shape for t in kept if t.shape[-2:] == (tile, tile)], "no image or region-map tiles"
    feature_map = session._feature_map
    cache = {id(t) for layer in session._cache.layers for t in (layer.keys, layer.values)}
    assert [t for t in kept if id(t) not in cache] == [feature_map], (
        "besides the KV cache, only the feature map"
    )
    assert feature_map.dtype == tiny_gar.model.dtype

    session.ask(QUESTIONS[1], SHORT)  # a region first named now is replayed from the kept map
    assert not [t for t in held_tensors(session) if t.shape[-2:] == (tile, tile)]
    session.release_cache()
    assert held_tensors(session) == []


def test_a_released_conversation_answers_like_an_uninterrupted_one(tiny_gar64, scene):
    image, masks = scene
    uninterrupted = tiny_gar64.chat(image, masks)
    released = tiny_gar64.chat(image, masks)
    for question in QUESTIONS:
        assert released.ask(question, SHORT) == uninterrupted.ask(question, SHORT)
        released.release_cache()
        assert held_tensors(released) == []
    assert uninterrupted.vision_encodings == 1 and released.vision_encodings == len(QUESTIONS)
    assert uninterrupted._feature_map.dtype == torch.float64, (
        "kept in the model's dtype, upcast exactly on use"
    )
    assert released.token_ids == uninterrupted.token_ids
