"""A chat with GAR: a multi-turn conversation about one image and its regions.

The first turn encodes the image (with the map of the regions it mentions) once and keeps
the projected features; every turn extends one KV cache, so a follow-up question only runs
the language model over its own new tokens. A region first mentioned in a later turn gets
its RoI-replayed features from the kept feature map.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from PIL import Image
from transformers import DynamicCache

from gar_app.errors import InputError
from gar_app.images import load_mask
from gar_app.model.processing import (
    DESCRIBE_INSTRUCTION,
    GarProcessor,
    describe_prompt,
    follow_up_prompt,
    normalised_box,
    question_prompt,
)
from gar_app.model.settings import GenerationSettings
from gar_app.model.tokens import TextStream, TokenChooser, TokenLogprob, token_logprob
from gar_app.tags import check_text, tag

if TYPE_CHECKING:
    from gar_app.model.configuration import GarConfig
    from gar_app.model.modeling import GarForConditionalGeneration
    from gar_app.model.static_decode import StaticDecoder


class ChatModel(Protocol):
    """What a chat uses of a loaded GAR (``gar_app.model.loading.Gar``), named here so this
    module need not import the loader that builds chats."""

    model: GarForConditionalGeneration
    processor: GarProcessor
    lock: AbstractContextManager  # serialises model calls

    @property
    def config(self) -> GarConfig: ...

    @property
    def prompt_numbers(self) -> int: ...

    def static_decoder(self, length: int) -> StaticDecoder | None: ...

    def forget_cache(self, cache: DynamicCache | None) -> None: ...


@dataclass
class ChatTurn:
    """One message of the dialogue as people see it (placeholder runs are never shown);
    the transcript a person saves is ``gar_app.conversation.Turn``."""

    role: str
    text: str
    tags: list[str] = field(default_factory=list)
    settings: dict | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    tokens: list[TokenLogprob] = field(
        default_factory=list
    )  # with ``settings.logprobs``: one per answer token


class ChatSession:
    """Ask questions about regions of one image; ``masks[k]`` is region ``<Promptk>``.

    ``reuse_cache=False`` recomputes everything (vision features and the whole conversation)
    on every turn; it exists to check and measure what the cache saves.
    """

    def __init__(
        self,
        gar: ChatModel,
        image: Image.Image,
        masks: Sequence[np.ndarray | None] | Mapping[int, np.ndarray],
        reuse_cache: bool = True,
    ):
        self.gar = gar
        self.image = image
        items = masks.items() if isinstance(masks, Mapping) else enumerate(masks)
        self.masks = {int(k): load_mask(m, size=image.size) for k, m in items if m is not None}
        self.reuse_cache = reuse_cache
        self.turns: list[ChatTurn] = []
        self._ids: list[int] = []  # the whole conversation so far, as token ids
        self._pending: list[int] = []  # conversation ids not yet in the cache
        self._cache: DynamicCache | None = None
        self._image_inputs = None
        self._map_regions: dict[int, np.ndarray] = {}
        self._features: torch.Tensor | None = None
        self._feature_map: torch.Tensor | None = None
        self._introduced: list[int] = []
        self.vision_encodings = 0  # how many times the image went through the vision tower

    # -- public ---------------------------------------------------------------------------

    def ask(self, question: str, settings: GenerationSettings | None = None) -> str:
        return "".join(self.stream(question, settings))

    def describe(
        self,
        index: int | None = None,
        settings: GenerationSettings | None = None,
        instruction: str | None = None,
    ) -> str:
        return "".join(self.stream_describe(index, settings, instruction))

    def stream_describe(
        self,
        index: int | None = None,
        settings: GenerationSettings | None = None,
        instruction: str | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        """Describe one region (``None``: the session's only region).

        As the first turn this is the released single-region caption prompt (only this
        region listed and in the map); later it is the training format's
        ``<Promptk>: `` + run + instruction, the run only if the region is new.
        """
        index = self._only_region() if index is None else index
        instruction = (instruction or DESCRIBE_INSTRUCTION).strip()
        shown = f"{tag(index)}: {instruction}"
        if self.turns:
            yield from self.stream(shown, settings, stop)
            return
        named = set(check_text(instruction)) - {index}
        if named:
            raise InputError(
                f"a description is about {tag(index)} only; ask a question to bring in {tag(min(named))}"
            )
        self._check_regions([index])
        processor = self.gar.processor
        prompt = describe_prompt(index, processor.region_run(index), processor.sanitise(instruction))
        yield from self._turn(shown, prompt, [index], settings, stop)

    def _only_region(self) -> int:
        if len(self.masks) != 1:
            raise InputError(f"say which region to describe: this conversation has {len(self.masks)}")
        return next(iter(self.masks))

    def stream(
        self, question: str, settings: GenerationSettings | None = None, stop: threading.Event | None = None
    ) -> Iterator[str]:
        """Stream the answer to ``question``, piece by piece, as the model generates it."""
        prompt, indices = self._question_prompt(question)
        yield from self._turn(question.strip(), prompt, indices, settings, stop)

    def replay(self, exchanges: Sequence[tuple[str, str]]) -> None:
        """Rebuild an earlier conversation (e.g. from an export) without generating.

        The answers are taken as given; the next question computes the image and the whole
        history once, then the conversation goes on with its cache as usual.
        """
        for question, answer in exchanges:
            prompt, indices = self._question_prompt(question)
            new_ids = self._turn_ids(prompt, indices)
            self._introduced += [k for k in indices if k not in self._introduced]
            answer_ids = self.gar.processor.tokenizer(answer.strip(), add_special_tokens=False)["input_ids"]
            self._ids += new_ids[0].tolist() + answer_ids
            self.turns.append(ChatTurn("user", question.strip(), [tag(k) for k in indices]))
            self.turns.append(ChatTurn("assistant", answer.strip(), finished=time.time()))
        self.release_cache()

    def add_region(self, index: int, mask: np.ndarray) -> None:
        """Make ``mask`` region ``<Prompt{index}>`` of this conversation.

        A region no turn has used yet may be replaced; one the conversation has used keeps
        its mask (changing it would change what earlier turns were about), so another mask
        for it is refused.
        """
        mask = load_mask(mask, size=self.image.size)
        if index in self._introduced and not np.array_equal(self.masks[index], mask):
            raise InputError(
                f"{tag(index)} is already part of this conversation with another mask; "
                "start a new conversation to use the new one"
            )
        self.masks[int(index)] = mask

    def _question_prompt(self, question: str) -> tuple[str, list[int]]:
        """GAR's prompt for a question: the first turn lists the regions it names (the
        released evaluation format), later ones bring the regions they name first."""
        question = question.strip()
        if not question:
            raise InputError("the question is empty")
        indices = check_text(question)
        self._check_regions(indices)
        processor = self.gar.processor
        text = processor.sanitise(question)
        if not self.turns:
            return question_prompt(text, {k: processor.region_run(k) for k in indices}), indices
        new = [k for k in indices if k not in self._introduced]
        return follow_up_prompt(text, {k: processor.region_run(k) for k in new}), indices

    # -- checks ---------------------------------------------------------------------------

    def _check_regions(self, indices: Sequence[int]) -> None:
        limit = self.gar.prompt_numbers
        for index in indices:
            if index >= limit:
                raise InputError(
                    f"{tag(index)} is beyond this model's {limit} regions (<Prompt0> to {tag(limit - 1)})"
                )
            if index not in self.masks:
                have = ", ".join(tag(k) for k in sorted(self.masks)) or "none"
                raise InputError(f"{tag(index)} is mentioned but there is no such region (regions: {have})")
            if not self.masks[index].any():
                raise InputError(f"region {tag(index)} has an empty mask")

    # -- turns ----------------------------------------------------------------------------

    @property
    def context_length(self) -> int:
        """Longest conversation (prompt and answers, in tokens) the language model was built for."""
        return self.gar.config.mllm_config.text_config.max_position_embeddings

    def _turn(
        self,
        shown: str,
        prompt: str,
        indices: Sequence[int],
        settings: GenerationSettings | None,
        stop: threading.Event | None,
    ) -> Iterator[str]:
        settings = settings or GenerationSettings()
        first = not self.turns
        new_ids = self._turn_ids(prompt, indices)
        saved = (len(self._ids), list(self._introduced), list(self._pending))
        self._introduced += [k for k in indices if k not in self._introduced]
        self._ids += new_ids[0].tolist()  # (pending tokens are already in _ids, just not in the cache)
        room = self.context_length - len(self._ids)
        try:
            if room < 1:
                raise InputError(
                    f"the conversation would be {len(self._ids)} tokens, more than this model's "
                    f"{self.context_length}; start a new conversation"
                )
            step_inputs = self._prefill_inputs(new_ids, first)
        except BaseException:  # too long, or e.g. out of GPU memory: leave the conversation as it was
            length, self._introduced, self._pending = saved
            del self._ids[length:]
            if first:
                self._image_inputs = self._features = self._feature_map = None
            raise
        settings = replace(settings, max_new_tokens=min(settings.max_new_tokens, room))
        self.turns.append(ChatTurn("user", shown, [tag(k) for k in indices]))
        answer = ChatTurn("assistant", "", settings=settings.to_dict())
        self.turns.append(answer)
        yield from self._generate(step_inputs, settings, answer, stop)

    def _turn_ids(self, prompt: str, indices: Sequence[int]) -> torch.Tensor:
        """Token ids of a user turn; the first one also fixes the image's region map."""
        processor = self.gar.processor
        if self.turns:
            return processor.encode(processor.next_turn_text(prompt))
        self._map_regions = {k: self.masks[k] for k in indices}
        self._image_inputs = processor.image_inputs(self.image, self._map_regions)
        return processor.encode(processor.first_turn_text(prompt), self._image_inputs.num_tiles)

    def _encode_vision(self) -> None:
        """Encode the image with its region map. The float32 tiles of both (about 87 MB each
        at 36 tiles) are dropped once encoded and made again if a released cache needs them:
        a conversation keeps only the feature map (in the model's dtype; RoI replay upcasts
        it exactly) and its KV cache."""
        inputs = self._image_inputs or self.gar.processor.image_inputs(self.image, self._map_regions)
        self._image_inputs = None
        model = self.gar.model
        with self.gar.lock:
            self._features = model.encode_image(inputs.pixel_values, inputs.prompt_values)
            self._feature_map = model.feature_map(self._features, inputs.grid).to(self._features.dtype)
        self.vision_encodings += 1

    def _boxes(self) -> dict[int, tuple[float, float, float, float]]:
        return {k: normalised_box(self.masks[k]) for k in self._introduced}

    def _prefill_inputs(self, new_ids: torch.Tensor, first: bool) -> torch.Tensor:
        """Embeddings to feed before decoding: the new tokens, or everything when there is no
        cache to extend (``reuse_cache=False``, or the cache was released)."""
        rebuild = not first and (not self.reuse_cache or self._cache is None)
        if first or rebuild:
            self._encode_vision()
        if rebuild:
            self._cache = None
            ids = torch.tensor([self._ids], dtype=torch.long)
        else:
            ids = torch.tensor([self._pending + new_ids[0].tolist()], dtype=torch.long)
        self._pending = []
        features, self._features = self._features, None  # in the cache after this prefill
        with self.gar.lock:
            return self.gar.model.embed(ids, features, self._feature_map, self._boxes())

    def release_cache(self) -> None:
        """Free the KV cache and vision features (GPU memory); the next turn recomputes them."""
        self.gar.forget_cache(self._cache)
        self._cache = None
        self._image_inputs = None
        self._features = None
        self._feature_map = None
        self._pending = []

    @property
    def token_count(self) -> int:
        """Tokens of the conversation so far, image and region placeholders included."""
        return len(self._ids)

    @property
    def token_ids(self) -> list[int]:
        """The conversation so far as the model reads it (placeholder runs included): a copy."""
        return list(self._ids)

    @property
    def used_regions(self) -> list[int]:
        """Regions the conversation has brought in, in order; their masks are fixed for it."""
        return list(self._introduced)

    @property
    def holds_cache(self) -> bool:
        return self._cache is not None

    @property
    def cached_tokens(self) -> int:
        """Tokens whose keys and values the KV cache holds (0 once released)."""
        return 0 if self._cache is None else self._cache.get_seq_length()

    def _generate(
        self,
        inputs_embeds: torch.Tensor,
        settings: GenerationSettings,
        answer: ChatTurn,
        stop: threading.Event | None,
    ) -> Iterator[str]:
        model = self.gar.model
        processor = self.gar.processor
        stop_ids = processor.stop_ids
        choose = TokenChooser(settings, model.device, banned=processor.placeholder_ids)
        stream = TextStream(processor.decode)
        if self._cache is None:
            self._cache = DynamicCache(config=model.config.mllm_config.text_config)
        generated: list[int] = []
        fed = 0
        decoder = self.gar.static_decoder(len(self._ids) + settings.max_new_tokens)
        try:
            with self.gar.lock, torch.inference_mode():
                logits = model(inputs_embeds, cache=self._cache, logits_to_keep=1).logits[0, -1]
            while len(generated) < settings.max_new_tokens and not (stop and stop.is_set()):
                token = choose(logits)
                if token in stop_ids:
                    break
                if settings.logprobs:
                    answer.tokens.append(
                        token_logprob(logits, token, settings.logprobs, processor.token_text)
                    )
                generated.append(token)
                piece = stream.push(token)
                if piece:
                    answer.text = answer.text + piece
                    yield piece
                if len(generated) >= settings.max_new_tokens or (stop and stop.is_set()):
                    break
                with self.gar.lock, torch.inference_mode():
                    if decoder is not None:
                        logits = decoder.step(self._cache, token)
                    else:
                        step = model.embed(torch.tensor([[token]]))
                        logits = model(step, cache=self._cache, logits_to_keep=1).logits[0, -1]
                fed = len(generated)
            rest = stream.flush()
            if rest:
                answer.text += rest
                yield rest
        finally:
            if decoder is not None:
                with self.gar.lock, torch.inference_mode():
                    decoder.write_back()  # the generated tokens' keys and values join the conversation's cache
            answer.text = stream.text
            answer.finished = time.time()
            self._ids += generated
            self._pending = generated[fed:]
