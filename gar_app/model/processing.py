"""Turning an image, region masks and a question into GAR's inputs.

Image tiles come from PerceptionLM's own image processor (tile grid, thumbnail,
normalisation) with one change, the resize kernel (``GarImageProcessor``); the
visual-prompt map goes through the same processor with its own resampling
(``map_resample``, legacy nearest by default) so region ids survive; prompt text follows
the released GAR prompts (``describe_prompt``, ``question_prompt``, ``follow_up_prompt``)
and is rendered with the checkpoint's own chat template.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from gar_app.errors import CheckpointError, InputError
from gar_app.images import mask_box
from gar_app.model.configuration import GarConfig
from gar_app.model.image_processing import MAP_RESAMPLE_KEY, GarImageProcessor, map_resampling
from gar_app.tags import tag

DESCRIBE_INSTRUCTION = "Describe this masked region in detail."
# Every released single-region path (the mask demo, the caption benchmarks) puts the one
# region in as <Prompt1>: visual-prompt id 1, crop token <|reserved_special_token_3|>.
SINGLE_REGION_INDEX = 1
Box = tuple[float, float, float, float]


def multiple_choice_question(question: str, choices: Sequence[str]) -> str:
    """The GARBench / demo multiple-choice wording."""
    options = "".join(f"\n{choice}" for choice in choices)
    return f"Question: {question}\nOptions:{options}\nAnswer with the correct option's letter directly."


def describe_prompt(index: int, run: str, instruction: str = DESCRIBE_INSTRUCTION) -> str:
    """Single-region description, as the released caption evaluation builds it (first turn)."""
    t = tag(index)
    return f"There are some objects I am curious about: {t};\n{t}: {run}{instruction}"


def question_prompt(question: str, runs: Mapping[int, str]) -> str:
    """A first-turn question about the regions in ``runs`` (index -> placeholder run), in
    index order, as the released multi-region evaluation builds it."""
    indices = sorted(runs)
    listed = "".join(f"{tag(k)}; " for k in indices)
    features = "".join(f"{tag(k)}: {runs[k]}\n" for k in indices)
    return f"There are some objects I am curious about: {listed}\n{features}\n{question}"


def follow_up_prompt(question: str, new_runs: Mapping[int, str]) -> str:
    """A later turn in the release's multi-turn training format: a region first mentioned
    now comes as ``<Promptk>: `` + its run, directly followed by the question (no line
    break), e.g. ``<Prompt2>: `` + run + ``Describe this masked region in detail.``.

    Training has one new region per later turn; several are written one after another in
    index order, separated by line breaks. A question that already opens with a new
    region's ``<Promptk>: `` gets that region's run right after it (its name is not
    repeated), so ``<Promptk>: Describe...`` reads exactly as the training turn.
    """
    if not new_runs:
        return question
    order = sorted(new_runs)
    opener = next((k for k in order if question.startswith(f"{tag(k)}: ")), None)
    if opener is not None:
        order = [k for k in order if k != opener] + [opener]
        question = question[len(f"{tag(opener)}: ") :]
    runs = "\n".join(f"{tag(k)}: {new_runs[k]}" for k in order)
    return runs + question


def normalised_box(mask: np.ndarray) -> Box:
    """The region's own mask box as GAR uses it: inclusive pixel extremes over W and H."""
    box = mask_box(mask)
    if box is None:
        raise InputError("empty mask")
    height, width = mask.shape
    x_min, y_min, x_max, y_max = box
    return x_min / width, y_min / height, x_max / width, y_max / height


def visual_prompt_map(masks: Mapping[int, np.ndarray], size: tuple[int, int], none_id: int) -> np.ndarray:
    """(H, W) uint8 map: each pixel gets the id of the first region (by index) covering it, else ``none_id``."""
    width, height = size
    prompt_map = np.full((height, width), none_id, dtype=np.uint8)
    unset = np.ones((height, width), dtype=bool)
    for index in sorted(masks):
        fill = unset & masks[index]
        prompt_map[fill] = index
        unset &= ~fill
    return prompt_map


@dataclass
class ImageInputs:
    """One image as tiles, its region map as tiles, and the tile grid (columns, rows)."""

    pixel_values: torch.Tensor
    prompt_values: torch.Tensor
    grid: tuple[int, int]

    @property
    def num_tiles(self) -> int:
        return int(self.pixel_values.shape[0])


def _processor_setting(folder: Path, key: str):
    """``key`` from the checkpoint's processor configs (``preprocessor_config.json`` first)."""
    for name in ("preprocessor_config.json", "processor_config.json"):
        path = folder / name
        if path.is_file():
            value = json.loads(path.read_text()).get(key)
            if value is not None:
                return value
    return None


def _read_chat_template(folder: Path, tokenizer: PreTrainedTokenizerBase) -> str:
    """The checkpoint's chat template, wherever this transformers generation saved it."""
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text()
    for name in ("chat_template.json", "processor_config.json"):
        path = folder / name
        if path.is_file():
            template = json.loads(path.read_text()).get("chat_template")
            if template:
                return template
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template
    raise CheckpointError(f"{folder} has no chat template (chat_template.jinja / .json or in the tokenizer)")


class GarProcessor:
    """Tiles images, builds region maps and renders prompts into token ids."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        image_processor: GarImageProcessor,
        chat_template: str,
        config: GarConfig,
        tokens_per_tile: int,
        map_resample: InterpolationMode = InterpolationMode.NEAREST,
    ):
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.map_resample = map_resample  # how the visual-prompt map is resampled (see image_processing)
        self.chat_template = chat_template
        self.config = config
        self.tokens_per_tile = tokens_per_tile
        self.prompt_numbers = config.prompt_numbers
        self.image_token = tokenizer.convert_ids_to_tokens(config.image_token_id)
        self._reserved = {self.image_token} | {
            tokenizer.convert_ids_to_tokens(i) for i in config.crop_tokens_ids
        }
        self._turn_end = self._assistant_turn_end()
        # Control tokens (every special added token: headers, reserved ids...) are hidden from
        # answers, but region tags like <Prompt1> are words of the answer.
        tags = set(
            tokenizer.convert_tokens_to_ids([tag(k) for k in range(self.prompt_numbers)] + ["<NO_Prompt>"])
        )
        special = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
        self._hidden_ids = (special | set(tokenizer.all_special_ids)) - tags

    @classmethod
    def from_pretrained(cls, folder: str | Path, config: GarConfig, tokens_per_tile: int) -> GarProcessor:
        folder = Path(folder)
        try:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
            image_processor = GarImageProcessor.from_pretrained(folder)
        except (OSError, ValueError) as error:
            raise CheckpointError(
                f"cannot load the tokenizer / image processor from {folder}: {error}"
            ) from None
        map_resample = map_resampling(_processor_setting(folder, MAP_RESAMPLE_KEY))
        chat_template = _read_chat_template(folder, tokenizer)
        return cls(tokenizer, image_processor, chat_template, config, tokens_per_tile, map_resample)

    # -- images ---------------------------------------------------------------------------

    def tile_grid(self, size: tuple[int, int]) -> tuple[int, int]:
        """(columns, rows) of tiles PerceptionLM's processor picks for an image of ``size`` (W, H)."""
        return self.image_processor.tile_grid(*size)

    def _tiles(self, image: Image.Image, resample: InterpolationMode | None) -> torch.Tensor:
        kwargs = {"resample": resample} if resample is not None else {}
        batch = self.image_processor(images=[image], return_tensors="pt", **kwargs)
        return batch["pixel_values"][0]

    def image_inputs(self, image: Image.Image, masks: Mapping[int, np.ndarray]) -> ImageInputs:
        """Tiles of the image (the processor's bicubic) and of its visual-prompt map (same
        tiling, ``map_resample``)."""
        if self.image_processor.vision_input_type != "thumb+tile":
            raise CheckpointError("GAR needs the image processor's 'thumb+tile' mode")
        prompt_map = visual_prompt_map(masks, image.size, none_id=self.prompt_numbers)
        map_image = Image.fromarray(prompt_map, "L").convert("RGB")
        # The two tilings are independent and mostly memory copies in torch, which releases the
        # GIL: side by side they take ~25% less of the first turn than one after the other.
        with ThreadPoolExecutor(1) as pool:
            map_tiles = pool.submit(self._tiles, map_image, self.map_resample)
            pixel_values = self._tiles(image, None)
            return ImageInputs(
                pixel_values=pixel_values, prompt_values=map_tiles.result(), grid=self.tile_grid(image.size)
            )

    # -- text -----------------------------------------------------------------------------

    def region_run(self, index: int) -> str:
        """One placeholder token standing for region ``index``'s run (expanded in ``encode``)."""
        return self.tokenizer.convert_ids_to_tokens(self.config.crop_tokens_ids[index])

    def sanitise(self, text: str) -> str:
        """User text must not smuggle in image or region placeholder tokens."""
        for token in self._reserved:
            text = text.replace(token, "")
        return text

    def _render(self, messages: list[dict], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages,
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=generation_prompt,
        )

    @staticmethod
    def _message(role: str, text: str, image: bool = False) -> dict:
        content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]
        return {"role": role, "content": content}

    def _assistant_turn_end(self) -> str:
        """What the template writes after an assistant answer (``<|eot_id|>`` for Llama 3)."""
        marker = "\u2063ANSWER\u2063"
        rendered = self._render([self._message("user", "q"), self._message("assistant", marker)], False)
        return rendered.split(marker, 1)[1]

    def first_turn_text(self, prompt: str) -> str:
        return self._render([self._message("user", prompt, image=True)], True)

    def next_turn_text(self, prompt: str) -> str:
        """The text that closes the previous answer and opens a new user turn plus the answer header."""
        first = self._message("user", "q", image=True)
        answered = self._render([first, self._message("assistant", "a")], False)
        both = self._render([first, self._message("assistant", "a"), self._message("user", prompt)], True)
        if not both.startswith(answered):
            raise CheckpointError("the chat template does not render conversations incrementally")
        return self._turn_end + both[len(answered) :]

    def encode(self, text: str, num_tiles: int = 0) -> torch.Tensor:
        """Token ids (1, L) with the image token expanded to ``num_tiles * tokens_per_tile``
        placeholders and each region token to a run of ``tokens_per_tile``."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        image_id = self.config.image_token_id
        crop_ids = set(self.config.crop_tokens_ids)
        expanded: list[int] = []
        for token in ids:
            if token == image_id:
                expanded.extend([token] * (num_tiles * self.tokens_per_tile))
            elif token in crop_ids:
                expanded.extend([token] * self.tokens_per_tile)
            else:
                expanded.append(token)
        return torch.tensor([expanded], dtype=torch.long)

    def token_text(self, token: int) -> str:
        """One token as text, control tokens included (for log-probability listings)."""
        return self.tokenizer.decode([token], skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def decode(self, ids: Sequence[int]) -> str:
        visible = [i for i in ids if i not in self._hidden_ids]
        return self.tokenizer.decode(visible, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    @property
    def placeholder_ids(self) -> set[int]:
        """Input-only tokens: the image placeholder and the region feature runs."""
        return {self.config.image_token_id, *self.config.crop_tokens_ids}

    @property
    def stop_ids(self) -> set[int]:
        """Tokens that end an answer: the tokenizer's eos and the template's end-of-turn token."""
        ids = {self.tokenizer.eos_token_id}
        turn_end = self.tokenizer(self._turn_end, add_special_tokens=False)["input_ids"]
        if len(turn_end) >= 1:
            ids.add(turn_end[0])
        return {i for i in ids if i is not None}
