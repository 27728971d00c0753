"""End to end against an independent reference of the released GAR pipeline.

The reference below is written from the release's description, without this project's
processing or modeling code: prompt texts as literal strings rendered by the checkpoint's
chat template, tiles by torchvision's v1 resize on PerceptionLM's tile grid, the region map
by legacy nearest, transformers' PerceptionLM built from config.json and the raw weights,
the mask embedding added to the ViT patch embeddings by calling the timm blocks as the
release does, tiles stitched and RoI-aligned here (box scaled to the map and again by
1/28), and the whole sequence re-run at every greedy step (no cache). ``gar-app ... --json
--logprobs 5`` must agree with it to < 1e-3 on a multiple-choice question about three
regions and on a single-region describe of a wide image (non-square tile grids).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ellipse, example_scene
from PIL import Image
from safetensors.torch import load_file
from torch.nn import functional as nnf
from torchvision.ops import roi_align
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as v1
from transformers import PerceptionLMConfig, PerceptionLMForConditionalGeneration, PerceptionLMImageProcessor

from gar_app.cli import main
from gar_app.eval.garbench import model_predictor
from gar_app.model import GenerationSettings

STEPS = 6
RUN = 256  # placeholder tokens per region run and per tile (448 / 14 / 2 = 16, squared)
MC_QUESTION = "Which region is the astronaut's helmet?"
MC_CHOICES = ["A. <Prompt0>", "B. <Prompt1>", "C. <Prompt2>"]
MC_PROMPT = (
    "There are some objects I am curious about: <Prompt0>; <Prompt1>; <Prompt2>; \n"
    "<Prompt0>: <|reserved_special_token_2|>\n<Prompt1>: <|reserved_special_token_3|>\n"
    "<Prompt2>: <|reserved_special_token_4|>\n\n"
    "Question: Which region is the astronaut's helmet?\nOptions:\nA. <Prompt0>\nB. <Prompt1>\nC. <Prompt2>\n"
    "Answer with the correct option's letter directly."
)
DESCRIBE_PROMPT = (
    "There are some objects I am curious about: <Prompt1>;\n"
    "<Prompt1>: <|reserved_special_token_3|>Describe this masked region in detail."
)


class Reference:
    """The released pipeline, written independently of gar_app (see the module doc)."""

    def __init__(self, folder):
        from transformers import PreTrainedTokenizerFast

        self.config = json.loads((folder / "config.json").read_text())
        self.prompts = self.config["prompt_numbers"]
        self.tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
        self.template = (folder / "chat_template.jinja").read_text()
        self.max_tiles = json.loads((folder / "preprocessor_config.json").read_text())["max_num_tiles"]
        weights = load_file(folder / "model.safetensors")
        self.mask_weight = weights.pop("mask_patch_embedding.weight")
        self.mllm = PerceptionLMForConditionalGeneration(
            PerceptionLMConfig(**self.config["mllm_config"])
        ).eval()
        self.mllm.load_state_dict({k.removeprefix("mllm."): v for k, v in weights.items()})

    def ids(self, prompt: str, tiles: int) -> torch.Tensor:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = self.tokenizer.apply_chat_template(
            messages, chat_template=self.template, tokenize=False, add_generation_prompt=True
        )
        image_id = self.config["mllm_config"]["image_token_id"]
        crops = set(self.config["crop_tokens_ids"])
        ids = []
        for token in self.tokenizer(text, add_special_tokens=False)["input_ids"]:
            ids += [token] * (tiles * RUN if token == image_id else RUN if token in crops else 1)
        return torch.tensor([ids])

    def tiles(self, picture: Image.Image, interpolation) -> tuple[torch.Tensor, tuple[int, int]]:
        pixels = torch.from_numpy(np.array(picture.convert("RGB"))).permute(2, 0, 1)[None]
        stock = PerceptionLMImageProcessor(
            vision_input_type="thumb+tile", tile_size=448, max_num_tiles=self.max_tiles
        )
        _, (cols, rows) = stock.resize(pixels[:0], 448, self.max_tiles)  # PerceptionLM's grid choice
        thumb = v1.resize(pixels, [448, 448], interpolation=interpolation, antialias=True)
        canvas = v1.resize(pixels, [448 * rows, 448 * cols], interpolation=interpolation, antialias=True)
        tiles = [thumb[0]] + [
            canvas[0, :, r * 448 : (r + 1) * 448, c * 448 : (c + 1) * 448]
            for r in range(rows)
            for c in range(cols)
        ]
        return (torch.stack(tiles).float() / 255 - 0.5) / 0.5, (cols, rows)

    @torch.no_grad()
    def greedy(self, image: Image.Image, masks: dict[int, np.ndarray], prompt: str, steps: int) -> list[dict]:
        pixels, (cols, rows) = self.tiles(image, InterpolationMode.BICUBIC)
        region_map = np.full((image.height, image.width), self.prompts, np.uint8)
        for k in sorted(masks, reverse=True):  # the first region (by index) wins where they overlap
            region_map[masks[k]] = k
        map_tiles, _ = self.tiles(Image.fromarray(region_map), InterpolationMode.NEAREST)
        inside = (torch.round((map_tiles + 1) / 2 * 255).clamp(0, self.prompts) != self.prompts).float()
        tower = self.mllm.model.vision_tower.timm_model
        x = tower.patch_embed(pixels)
        x = x + nnf.conv2d(inside, self.mask_weight, stride=self.mask_weight.shape[-1]).flatten(2).transpose(
            1, 2
        )
        x, rope = tower._pos_embed(x)
        x = tower.norm_pre(x)
        for block in tower.blocks:
            x = block(x, rope=rope)
        features = self.mllm.model.multi_modal_projector(tower.norm(x)[:, 1:])  # class token dropped

        ids = self.ids(prompt, tiles=pixels.shape[0])
        embeds = self.mllm.get_input_embeddings()(ids)[0]
        embeds[ids[0] == self.config["mllm_config"]["image_token_id"]] = features.reshape(
            -1, features.shape[-1]
        )
        side = 16
        big = torch.zeros(features.shape[-1], rows * side, cols * side)
        for index in range(rows * cols):
            r, c = divmod(index, cols)
            big[:, r * side : (r + 1) * side, c * side : (c + 1) * side] = (
                features[1 + index].reshape(side, side, -1).permute(2, 0, 1)
            )
        for k, mask in masks.items():
            ys, xs = np.nonzero(mask)
            h, w = mask.shape
            map_w, map_h = cols * side, rows * side
            box = [xs.min() / w * map_w, ys.min() / h * map_h, xs.max() / w * map_w, ys.max() / h * map_h]
            roi = torch.tensor([[0.0, *box]], dtype=torch.float32)
            pooled = roi_align(
                big[None], roi, (side, side), spatial_scale=1 / 28, sampling_ratio=2, aligned=True
            )
            embeds[ids[0] == self.config["crop_tokens_ids"][k]] = pooled[0].permute(1, 2, 0).reshape(RUN, -1)

        out = []
        for _ in range(steps):
            logits = self.mllm(inputs_embeds=embeds[None]).logits[0, -1]
            logprobs = torch.log_softmax(logits.double(), -1)
            token = int(logprobs.argmax())
            top = torch.topk(logprobs, 5)
            best = list(zip(top.indices.tolist(), top.values.tolist(), strict=True))
            out.append({"id": token, "logprob": float(logprobs[token]), "top": best})
            embeds = torch.cat([embeds, self.mllm.get_input_embeddings()(torch.tensor([token]))])
        return out


@pytest.fixture(scope="module")
def reference(tiny_gar_dir) -> Reference:
    return Reference(tiny_gar_dir)


def _tall_scene():
    """A 150x450 crop of the astronaut photo (a 1x3 tile grid) with three regions; the lowest
    lies where the twice-scaled RoI reaches into the map, the first two overlap."""
    image = example_scene("astronaut.jpg", (300, 30, 450, 480))
    masks = [
        ellipse(image.size, (70, 120), (45, 60)),
        ellipse(image.size, (100, 330), (35, 80)),
        ellipse(image.size, (55, 160), (30, 50)),
    ]
    return image, masks


def _wide_scene():
    """A 600x300 crop of the coffee photo (a 2x1 tile grid) with one off-centre region."""
    image = example_scene("coffee.jpg", (0, 50, 600, 350))
    return image, ellipse(image.size, (455, 75), (80, 50))


def _save(tmp_path, image: Image.Image, masks: list[np.ndarray]) -> tuple[str, list[str]]:
    image_path = tmp_path / "image.png"
    image.save(image_path)
    paths = []
    for k, mask in enumerate(masks):
        paths.append(str(tmp_path / f"mask{k}.png"))
        Image.fromarray(mask.astype(np.uint8) * 255).save(paths[-1])
    return str(image_path), paths


def _cli_tokens(capsys, *argv) -> dict:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])


def _assert_agrees(ours: list[dict], theirs: list[dict]) -> None:
    assert [t["id"] for t in ours] == [t["id"] for t in theirs[: len(ours)]], "greedy tokens differ"
    assert len(ours) == STEPS, "the reference never produced the end-of-turn token in these steps"
    for mine, ref in zip(ours, theirs, strict=True):
        assert [t["id"] for t in mine["top"]] == [i for i, _ in ref["top"]]
        assert [t["logprob"] for t in mine["top"]] == pytest.approx([v for _, v in ref["top"]], abs=1e-3)
        assert mine["logprob"] == pytest.approx(ref["logprob"], abs=1e-3)


def test_multiple_choice_logprobs_match_the_reference(capsys, tmp_path, tiny_gar_dir, reference):
    image, masks = _tall_scene()
    image_path, mask_paths = _save(tmp_path, image, masks)
    doc = _cli_tokens(
        capsys,
        "ask",
        "--image",
        image_path,
        "--masks",
        *mask_paths,
        "--question",
        MC_QUESTION,
        "--choices",
        *MC_CHOICES,
        "--model",
        tiny_gar_dir,
        "--json",
        "--logprobs",
        "5",
        "--max-new-tokens",
        STEPS,
        "--device",
        "cpu",
        "--dtype",
        "fp32",
    )
    theirs = reference.greedy(image, dict(enumerate(masks)), MC_PROMPT, STEPS)
    _assert_agrees(doc["tokens"], theirs)


def test_single_region_describe_of_a_wide_image_matches_the_reference(
    capsys, tmp_path, tiny_gar_dir, reference
):
    image, mask = _wide_scene()
    image_path, (mask_path,) = _save(tmp_path, image, [mask])
    doc = _cli_tokens(
        capsys,
        "describe",
        "--image",
        image_path,
        "--mask",
        mask_path,
        "--model",
        tiny_gar_dir,
        "--json",
        "--logprobs",
        "5",
        "--max-new-tokens",
        STEPS,
        "--device",
        "cpu",
        "--dtype",
        "fp32",
    )
    assert [r["tag"] for r in doc["regions"]] == ["<Prompt1>"]
    theirs = reference.greedy(image, {1: mask}, DESCRIBE_PROMPT, STEPS)
    _assert_agrees(doc["tokens"], theirs)


def test_library_describe_is_the_released_single_region_input(tiny_gar, reference):
    image, mask = _wide_scene()
    chat = tiny_gar.describe_chat(image, mask)
    chat.describe(settings=GenerationSettings(max_new_tokens=1))
    tiles = tiny_gar.processor.image_inputs(image, {1: mask}).num_tiles
    prompt = reference.ids(DESCRIBE_PROMPT, tiles)[0].tolist()
    assert chat.token_ids[: len(prompt)] == prompt
    assert tiny_gar.describe(image, mask, GenerationSettings(max_new_tokens=4)) == tiny_gar.describe_chat(
        image, mask
    ).describe(1, GenerationSettings(max_new_tokens=4))


def test_garbench_simple_builds_the_released_input(tiny_gar, reference):
    """``eval run --split simple``: the item's own question in the multi-region format."""
    image, masks = _tall_scene()
    item = {"question": "What is the spatial relationship between <Prompt1> and <Prompt0>?"}
    sessions = []

    class Spy:
        def chat(self, *args, **kwargs):
            sessions.append(tiny_gar.chat(*args, **kwargs))
            return sessions[-1]

    model_predictor(Spy(), "simple", GenerationSettings(max_new_tokens=1))(item, image, masks[:2])
    expected = (
        "There are some objects I am curious about: <Prompt0>; <Prompt1>; \n"
        "<Prompt0>: <|reserved_special_token_2|>\n<Prompt1>: <|reserved_special_token_3|>\n\n"
        "What is the spatial relationship between <Prompt1> and <Prompt0>?"
    )
    tiles = tiny_gar.processor.image_inputs(image, {}).num_tiles
    prompt = reference.ids(expected, tiles)[0].tolist()
    assert sessions[0].token_ids[: len(prompt)] == prompt


def test_a_later_turn_brings_a_new_region_in_the_training_format(tiny_gar, reference):
    image, masks = _tall_scene()
    chat = tiny_gar.chat(image, masks)
    chat.ask("What is <Prompt0> holding?", GenerationSettings(max_new_tokens=3))
    before = chat.token_count
    chat.ask("What is <Prompt2> doing?", GenerationSettings(max_new_tokens=1))
    chat.ask("<Prompt1>: Describe this masked region in detail.", GenerationSettings(max_new_tokens=1))
    chat.ask("And <Prompt0>?", GenerationSettings(max_new_tokens=1))
    tokenizer = reference.tokenizer

    def turn(text: str) -> list[int]:
        ids = []
        for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
            ids += [token] * (RUN if token in reference.config["crop_tokens_ids"] else 1)
        return ids

    header = "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
    answer = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    second = turn(f"{header}<Prompt2>: <|reserved_special_token_4|>What is <Prompt2> doing?{answer}")
    assert chat.token_ids[before : before + len(second)] == second
    third_at = before + len(second) + 1  # one answer token
    third = turn(
        f"{header}<Prompt1>: <|reserved_special_token_3|>Describe this masked region in detail.{answer}"
    )
    assert chat.token_ids[third_at : third_at + len(third)] == third
    fourth_at = third_at + len(third) + 1
    assert chat.token_ids[fourth_at:-1] == turn(f"{header}And <Prompt0>?{answer}")
