"""The GAR network on the tiny checkpoint: feature replay, vision features, streaming, sessions.

Every input is the project's own: example photos from assets/ and regions made in the test.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from conftest import ellipse, example_scene
from torchvision.ops import roi_align
from transformers import PerceptionLMForConditionalGeneration

from gar_app.errors import InputError
from gar_app.model import GenerationSettings
from gar_app.model.processing import question_prompt

SHORT = GenerationSettings(max_new_tokens=12)


@pytest.fixture(scope="module")
def demo3(scene3):
    """One image and three regions (see conftest.scene3)."""
    return scene3


def _stitch(tiles: torch.Tensor, cols: int, rows: int) -> torch.Tensor:
    """Independent tile stitching: copy each 16x16 tile into its place of the big map."""
    side = int(tiles.shape[1] ** 0.5)
    channels = tiles.shape[-1]
    big = torch.zeros(channels, rows * side, cols * side)
    for index in range(rows * cols):
        row, col = divmod(index, cols)
        tile = tiles[index].reshape(side, side, channels).permute(2, 0, 1)
        big[:, row * side : (row + 1) * side, col * side : (col + 1) * side] = tile
    return big[None]


def test_replayed_features_land_exactly_in_placeholder_runs(tiny_gar, demo3):
    image, masks = demo3
    model, processor = tiny_gar.model, tiny_gar.processor
    regions = {0: masks[0], 2: masks[2]}
    inputs = processor.image_inputs(image, regions)
    prompt = question_prompt(
        "How is <Prompt0> related to <Prompt2>?", {k: processor.region_run(k) for k in regions}
    )
    ids = processor.encode(processor.first_turn_text(prompt), inputs.num_tiles)

    features = model.encode_image(inputs.pixel_values, inputs.prompt_values)
    boxes = {k: _box(mask) for k, mask in regions.items()}
    embeds = model.embed(ids, features, model.feature_map(features, inputs.grid), boxes)[0]

    cols, rows = inputs.grid
    big = _stitch(features[1:].float(), cols, rows)
    height, width = big.shape[-2:]
    image_slots = ids[0] == model.config.image_token_id
    assert torch.equal(embeds[image_slots], features.reshape(-1, features.shape[-1]))
    for k, (x1, y1, x2, y2) in boxes.items():
        # the released code scales the box to the map, then roi_align scales it again by 1/28
        roi = torch.tensor([[0, x1 * width, y1 * height, x2 * width, y2 * height]], dtype=torch.float32)
        expected = roi_align(big, roi, (16, 16), spatial_scale=1 / 28, sampling_ratio=2, aligned=True)
        expected = expected[0].permute(1, 2, 0).reshape(256, -1)
        run = (ids[0] == model.config.crop_tokens_ids[k]).nonzero().flatten()
        assert run.numel() == 256 and int(run[-1] - run[0]) == 255  # one contiguous run
        assert torch.allclose(embeds[run], expected, atol=1e-6)
    others = ~image_slots
    for k in boxes:
        others &= ids[0] != model.config.crop_tokens_ids[k]
    plain = model.mllm.get_input_embeddings()(ids)[0]
    assert torch.equal(embeds[others], plain[others])


@pytest.mark.parametrize("grid", [(2, 1), (1, 3), (3, 2), (2, 3)])
def test_tiles_are_stitched_row_major(tiny_gar, grid):
    """The feature map puts tile r * cols + c (after the thumbnail) at row r, column c."""
    cols, rows = grid
    features = torch.randn(1 + cols * rows, 256, 8)
    assert torch.equal(tiny_gar.model.feature_map(features, grid), _stitch(features[1:], cols, rows))


# Crops of the example photos that the tiny checkpoint (4 tiles at most) tiles 2x1 and 1x3, each
# with an off-centre region placed where the twice-scaled RoI (see replay_region) is not
# clamped to the map's border along the grid's long side, so x and y cannot be confused.
NON_SQUARE = [
    pytest.param("coffee.jpg", (0, 50, 600, 350), (2, 1), ((0.62, 0.08), (0.9, 0.3)), id="2x1"),
    pytest.param("astronaut.jpg", (300, 30, 450, 480), (1, 3), ((0.15, 0.45), (0.6, 0.85)), id="1x3"),
]


@pytest.mark.parametrize(("name", "crop", "grid", "corners"), NON_SQUARE)
def test_stitching_and_replay_on_non_square_grids(tiny_gar, name, crop, grid, corners):
    image = example_scene(name, crop)
    width, height = image.size
    (u1, v1), (u2, v2) = corners
    centre = ((u1 + u2) / 2 * width, (v1 + v2) / 2 * height)
    mask = ellipse(image.size, centre, ((u2 - u1) / 2 * width, (v2 - v1) / 2 * height))
    model, processor = tiny_gar.model, tiny_gar.processor
    inputs = processor.image_inputs(image, {1: mask})
    assert inputs.grid == grid
    features = model.encode_image(inputs.pixel_values, inputs.prompt_values)
    cols, rows = grid
    big = _stitch(features[1:].float(), cols, rows)
    assert big.shape[-2:] == (16 * rows, 16 * cols)
    assert torch.equal(model.feature_map(features, inputs.grid), big)

    ys, xs = np.nonzero(mask)
    box = (xs.min() / width, ys.min() / height, xs.max() / width, ys.max() / height)
    map_h, map_w = big.shape[-2:]
    roi = torch.tensor(
        [[0, box[0] * map_w, box[1] * map_h, box[2] * map_w, box[3] * map_h]], dtype=torch.float32
    )
    expected = roi_align(big, roi, (16, 16), spatial_scale=1 / 28, sampling_ratio=2, aligned=True)
    expected = expected[0].permute(1, 2, 0).reshape(256, -1)
    replayed = model.replay_region(model.feature_map(features, inputs.grid), box)
    assert torch.allclose(replayed, expected, atol=1e-6)
    transposed = roi_align(big, roi[:, [0, 2, 1, 4, 3]], (16, 16), 1 / 28, sampling_ratio=2, aligned=True)
    gap = (expected - transposed[0].permute(1, 2, 0).reshape(256, -1)).abs().max()
    assert gap > 100 * 1e-6, "the region must tell x from y on this grid, well above the tolerance"


def test_region_map_changes_vision_features_only_where_asked(tiny_gar, demo3):
    image, masks = demo3
    model, processor = tiny_gar.model, tiny_gar.processor
    empty = processor.image_inputs(image, {})
    with_region = processor.image_inputs(image, {1: masks[1]})
    plain = model.encode_image(empty.pixel_values, empty.prompt_values)
    marked = model.encode_image(with_region.pixel_values, with_region.prompt_values)
    assert not torch.allclose(plain, marked)

    reference = PerceptionLMForConditionalGeneration(model.config.mllm_config).eval()
    reference.load_state_dict(model.mllm.state_dict())
    with torch.no_grad():
        expected = reference.model.get_image_features(
            pixel_values=empty.pixel_values[None], return_dict=True
        ).pooler_output
    assert torch.equal(plain, expected)


def test_streaming_matches_greedy_generate_and_arrives_early(tiny_gar64, demo3):
    tiny_gar = tiny_gar64
    image, masks = demo3
    settings = GenerationSettings(max_new_tokens=24)
    session = tiny_gar.chat(image, masks)
    steps = []
    handle = tiny_gar.model.mllm.lm_head.register_forward_hook(lambda *_: steps.append(1))
    try:
        stream = session.stream("What is <Prompt1> doing?", settings)
        first = next(stream)
        steps_at_first_piece = len(steps)
        pieces = [first, *stream]
    finally:
        handle.remove()
    assert first and steps_at_first_piece < len(steps), "the first piece must come before decoding ends"
    streamed = "".join(pieces)
    assert streamed == session.turns[-1].text

    processor, model = tiny_gar.processor, tiny_gar.model
    inputs = processor.image_inputs(image, {1: masks[1]})
    prompt = question_prompt("What is <Prompt1> doing?", {1: processor.region_run(1)})
    ids = processor.encode(processor.first_turn_text(prompt), inputs.num_tiles)
    features = model.encode_image(inputs.pixel_values, inputs.prompt_values)
    embeds = model.embed(ids, features, model.feature_map(features, inputs.grid), {1: _box(masks[1])})
    out = model.mllm.generate(
        inputs_embeds=embeds,
        max_new_tokens=24,
        do_sample=False,
        eos_token_id=sorted(processor.stop_ids),
        pad_token_id=processor.tokenizer.pad_token_id,
    )
    assert streamed == processor.decode(out[0].tolist()).strip()


def _box(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    return (
        xs.min() / mask.shape[1],
        ys.min() / mask.shape[0],
        xs.max() / mask.shape[1],
        ys.max() / mask.shape[0],
    )


def test_follow_up_turns_match_recomputing_from_scratch(tiny_gar64, demo3):
    tiny_gar = tiny_gar64
    image, masks = demo3
    questions = [
        "What is <Prompt0> holding?",
        "Is it near <Prompt0>?",  # follow-up on a known region
        "How does <Prompt2> relate to <Prompt0>?",  # brings in a new region
    ]
    cached = tiny_gar.chat(image, masks)
    scratch = tiny_gar.chat(image, masks, reuse_cache=False)
    for question in questions:
        assert cached.ask(question, SHORT) == scratch.ask(question, SHORT)
    assert cached.token_ids == scratch.token_ids
    assert cached.vision_encodings == 1
    assert scratch.vision_encodings == len(questions)
    assert [t.role for t in cached.turns] == ["user", "assistant"] * 3
    assert cached.turns[4].tags == ["<Prompt0>", "<Prompt2>"]


def _stopped_describe(session, index: int) -> list[str]:
    """Describe a region and press Stop as soon as the first piece shows."""
    stop = threading.Event()
    pieces = []
    for piece in session.stream_describe(index, GenerationSettings(max_new_tokens=50), stop=stop):
        pieces.append(piece)
        stop.set()
    return pieces


def test_stopped_answer_is_kept_and_the_chat_goes_on(tiny_gar64, demo3):
    tiny_gar = tiny_gar64
    image, masks = demo3
    cached = tiny_gar.chat(image, masks)
    pieces = _stopped_describe(cached, 2)
    assert len(pieces) == 1, "Stop ends the answer after the piece in flight"
    assert cached.turns[-1].text == pieces[0]
    scratch = tiny_gar.chat(image, masks, reuse_cache=False)
    assert _stopped_describe(scratch, 2) == pieces
    assert cached.ask("And <Prompt1>?", SHORT) == scratch.ask("And <Prompt1>?", SHORT)


def test_sampling_is_seeded_and_validated(tiny_gar, demo3):
    image, masks = demo3
    sampled = GenerationSettings(max_new_tokens=16, do_sample=True, temperature=1.0, top_p=0.9, seed=7)
    first = tiny_gar.chat(image, masks).ask("<Prompt0>?", sampled)
    again = tiny_gar.chat(image, masks).ask("<Prompt0>?", sampled)
    assert first == again
    with pytest.raises(InputError):
        GenerationSettings(do_sample=True, temperature=0)
    with pytest.raises(InputError):
        GenerationSettings(top_p=0)


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("What is <Prompt7>?", "beyond this model's 5 regions"),
        ("What is <Prompt3>?", "no such region"),
        ("What is <Prompt1>?", "empty mask"),
        ("   ", "empty"),
    ],
)
def test_bad_questions_are_clear_errors(tiny_gar, demo3, question, message):
    image, masks = demo3
    session = tiny_gar.chat(image, [masks[0], np.zeros_like(masks[0])])
    with pytest.raises(InputError, match=message):
        session.ask(question, SHORT)
    assert session.turns == []  # nothing half-recorded


def test_a_released_cache_is_rebuilt_with_the_same_answers(tiny_gar64, demo3):
    image, masks = demo3
    questions = ["What is <Prompt0>?", "And <Prompt2>?", "Which is bigger, <Prompt0> or <Prompt2>?"]
    released = tiny_gar64.chat(image, masks)
    scratch = tiny_gar64.chat(image, masks, reuse_cache=False)
    for question in questions:
        assert released.ask(question, SHORT) == scratch.ask(question, SHORT)
        released.release_cache()
        assert not released.holds_cache
    assert released.vision_encodings == len(questions)


def test_a_failure_before_decoding_leaves_the_conversation_as_it_was(tiny_gar, demo3, monkeypatch):
    image, masks = demo3
    session = tiny_gar.chat(image, masks)
    first = session.ask("What is <Prompt0>?", SHORT)
    ids = session.token_ids

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(tiny_gar.model, "embed", out_of_memory)
    with pytest.raises(RuntimeError, match="out of memory"):
        session.ask("And <Prompt2>?", SHORT)
    monkeypatch.undo()
    assert session.token_ids == ids and len(session.turns) == 2 and session.used_regions == [0]
    again = tiny_gar.chat(image, masks)
    assert again.ask("What is <Prompt0>?", SHORT) == first
    assert session.ask("And <Prompt2>?", SHORT) == again.ask("And <Prompt2>?", SHORT)


def test_replayed_history_is_what_the_next_turn_sees(tiny_gar64, demo3):
    image, masks = demo3
    original = tiny_gar64.chat(image, masks)
    exchanges = [(q, original.ask(q, SHORT)) for q in ("What is <Prompt0>?", "Is <Prompt2> near it?")]

    replayed = tiny_gar64.chat(image, masks)
    replayed.replay(exchanges)
    assert [t.text for t in replayed.turns] == [text for pair in exchanges for text in pair]
    assert replayed.vision_encodings == 0 and not replayed.holds_cache
    processor = tiny_gar64.processor
    tiles = processor.image_inputs(image, {0: masks[0]}).num_tiles
    first_prompt = processor.encode(
        processor.first_turn_text(question_prompt("What is <Prompt0>?", {0: processor.region_run(0)})), tiles
    )[0].tolist()
    assert replayed.token_ids[: len(first_prompt)] == first_prompt == original.token_ids[: len(first_prompt)]

    reference = tiny_gar64.chat(image, masks, reuse_cache=False)
    reference.replay(exchanges)
    question = "Which of <Prompt0> and <Prompt2> is larger?"
    history = replayed.token_count
    assert replayed.ask(question, SHORT) == reference.ask(question, SHORT)
    assert replayed.vision_encodings == 1 and replayed.holds_cache
    assert replayed.cached_tokens > history, "the whole history went into the model"


def test_placeholders_are_never_generated_so_the_conversation_rereads_the_same(tiny_gar_dir, demo3):
    """A model that loves the image token must not emit it: re-reading the conversation
    (after its cache was released) would take it for an image placeholder."""
    from gar_app.model import load_gar

    gar = load_gar(tiny_gar_dir, device="cpu", dtype="fp32")
    placeholder = gar.config.image_token_id
    with torch.no_grad():
        gar.model.mllm.lm_head.weight[placeholder] *= 1000
        gar.model.mllm.lm_head.weight[gar.config.crop_tokens_ids[0]] *= 1000
    image, masks = demo3
    session = gar.chat(image, masks)
    session.ask(
        "What is <Prompt0>?", GenerationSettings(max_new_tokens=20, do_sample=True, temperature=2.0, seed=0)
    )
    generated = session.token_ids[-20:]
    assert not set(generated) & gar.processor.placeholder_ids
    session.release_cache()
    assert session.ask("And <Prompt1>?", SHORT) is not None  # re-reads the whole conversation


def test_a_conversation_never_outgrows_the_model(tiny_gar, demo3, monkeypatch):
    image, masks = demo3
    session = tiny_gar.chat(image, masks)
    session.ask("What is <Prompt0>?", SHORT)
    used = session.token_count
    monkeypatch.setattr(type(session), "context_length", property(lambda self: used + 40))
    answer_room = 40 - len(tiny_gar.processor.encode(tiny_gar.processor.next_turn_text("More?"))[0])
    session.ask("More?", GenerationSettings(max_new_tokens=500))
    assert session.token_count <= used + 40 and session.token_count - used > answer_room - 1
    with pytest.raises(InputError, match="start a new conversation"):
        session.ask("And more?", SHORT)
    assert len(session.turns) == 4
