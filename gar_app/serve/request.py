"""A chat-completions request body, checked and read into a ``ChatRequest``.

What GAR needs that OpenAI's format does not say, and how a request says it:

- one image per conversation: an ``image_url`` part of the first user message;
- regions: ``{"type": "region", "tag": "<PromptK>", ...}`` parts of any user message, with
  the region as ``mask`` (COCO RLE), ``mask_url`` (a PNG data URL) or ``box``
  ``[x1, y1, x2, y2]`` (segmented on the server);
- the whole dialogue: user and assistant messages alternate, the last one is the user's.

Every check here needs no model and no pixels, so a malformed request is refused (400)
before it waits in the queue. Pixels are read later by ``ChatRequest.resolve``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from gar_app.errors import InputError, MaskSizeError
from gar_app.model.settings import MAX_LOGPROBS, GenerationSettings
from gar_app.rle import rle_to_mask
from gar_app.segment.base import Prompt, check_prompt
from gar_app.serve.errors import ApiError, bad_request
from gar_app.serve.media import MediaReader
from gar_app.tags import check_text, parse_tag, tag

DEFAULT_MAX_TOKENS = 1024  # the GAR authors' max_new_tokens
MAX_STOPS = 4  # as OpenAI


@dataclass(frozen=True)
class Message:
    role: str  # "user" | "assistant"
    text: str


@dataclass(frozen=True)
class RegionPart:
    """One region as the client described it; pixels come later (``ChatRequest.resolve``)."""

    index: int
    message: int  # which message declared it
    kind: str  # "mask" | "mask_url" | "box"
    value: Any
    param: str  # where it is in the body, for error messages


@dataclass
class Resolved:
    """A request's pixels: the image, and each region's mask (None for a box not yet segmented)."""

    image: Image.Image
    image_digest: str
    masks: dict[int, np.ndarray | None]
    boxes: dict[int, tuple[float, float, float, float]]
    digests: dict[int, str]  # what identifies each region in a conversation key

    def mask(self, index: int, segment: Callable[[Image.Image, Prompt], np.ndarray]) -> np.ndarray:
        """Region ``index``'s mask, segmenting its box (SAM or the fallback) the first time."""
        mask = self.masks[index]
        if mask is None:
            mask = segment(self.image, Prompt(box=self.boxes[index]))
            if not mask.any():
                raise bad_request(
                    f"the segmenter found nothing in the box of {tag(index)}", None, "empty_mask"
                )
            self.masks[index] = mask
        return mask


@dataclass
class ChatRequest:
    model: str | None
    image_url: str
    image_param: str
    messages: list[Message]
    regions: list[RegionPart]
    settings: GenerationSettings
    stream: bool = False
    include_usage: bool = False
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0

    @property
    def question(self) -> str:
        return self.messages[-1].text

    @property
    def history(self) -> list[tuple[str, str]]:
        """Earlier (question, answer) exchanges, oldest first."""
        earlier = self.messages[:-1]
        return [(earlier[i].text, earlier[i + 1].text) for i in range(0, len(earlier), 2)]

    def resolve(self, media: MediaReader) -> Resolved:
        """Decode the image and the masks (boxes are checked here and segmented when needed)."""
        return resolve_regions(self.image_url, self.image_param, self.regions, media)


def resolve_regions(
    image_url: str, image_param: str, regions: list[RegionPart], media: MediaReader
) -> Resolved:
    """The image behind ``image_url`` and each region's mask (a box is checked, not yet segmented)."""
    image, digest = media.image(image_url, image_param)
    width, height = image.size
    masks: dict[int, np.ndarray | None] = {}
    boxes: dict[int, tuple[float, float, float, float]] = {}
    digests: dict[int, str] = {}
    for region in regions:
        if region.kind == "box":
            try:
                box = check_prompt(width, height, box=region.value).box
            except InputError as error:
                raise bad_request(f"{region.param}: {error}", region.param, "invalid_box") from None
            boxes[region.index] = tuple(float(v) for v in box)
            masks[region.index] = None
            digests[region.index] = "box:" + ",".join(repr(v) for v in boxes[region.index])
            continue
        if region.kind == "mask":
            mask = _rle_mask(region.value, region.param, (width, height))
        else:
            mask = media.mask(region.value, region.param, (width, height))
        if not mask.any():
            raise bad_request(
                f"{region.param}: region {tag(region.index)} is empty (no pixel set)",
                region.param,
                "empty_mask",
            )
        masks[region.index] = mask
        digests[region.index] = "mask:" + hashlib.sha256(np.packbits(mask).tobytes()).hexdigest()
    return Resolved(image, digest, masks, boxes, digests)


def _rle_mask(rle: Any, param: str, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    try:
        return rle_to_mask(rle, param, (height, width))
    except MaskSizeError as error:
        raise bad_request(str(error), param, "mask_size") from None
    except InputError as error:
        raise bad_request(str(error), param, "invalid_mask") from None


# ---------------------------------------------------------------- reading the body


def _number(body: dict, name: str, low: float, high: float, integer: bool = False) -> float | int | None:
    value = body.get(name)
    if value is None:
        return None
    valid = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not valid or not math.isfinite(value) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise bad_request(f"{name} must be {kind} from {low:g} to {high:g}, not {value!r}", name)
    return value


def _unsupported(body: dict) -> None:
    """Refuse OpenAI features GAR does not have, rather than silently ignoring them."""
    if body.get("n") not in (None, 1):
        raise bad_request("n must be 1: the server writes one answer per request", "n")
    for name in ("tools", "functions", "logit_bias"):
        if body.get(name):
            raise bad_request(f"{name} is not supported by GAR", name)
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            raise bad_request(f"{name} is not supported by GAR (leave it 0)", name)
    response_format = body.get("response_format")
    if response_format not in (None, {"type": "text"}):
        raise bad_request("response_format: GAR writes plain text only", "response_format")


def _settings(body: dict) -> GenerationSettings:
    temperature = _number(body, "temperature", 0, 2)
    top_p = _number(body, "top_p", 0, 1)
    if top_p == 0:
        raise bad_request("top_p must be above 0", "top_p")
    seed = _number(body, "seed", -(2**63), 2**63 - 1, integer=True)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    if max_tokens is not None:
        max_tokens = _number({name: max_tokens}, name, 1, 2**31, integer=True)
    # Greedy unless sampling is asked for: GAR's authors decoded greedily, and OpenAI's
    # temperature 0 means greedy too.
    sample = (temperature is not None and temperature > 0) or (
        temperature is None and top_p is not None and top_p < 1
    )
    return GenerationSettings(
        max_new_tokens=int(max_tokens or DEFAULT_MAX_TOKENS),
        do_sample=sample,
        temperature=float(temperature) if temperature else 1.0,
        top_p=float(top_p) if top_p is not None else 1.0,
        seed=None if seed is None else int(seed) % 2**63,
    )


def _stops(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if (
        not isinstance(stops, list)
        or not all(isinstance(s, str) and s for s in stops)
        or len(stops) > MAX_STOPS
    ):
        raise bad_request(f"stop must be a non-empty string or a list of up to {MAX_STOPS} of them", "stop")
    return tuple(stops)


def _logprobs(body: dict) -> tuple[bool, int]:
    wanted = body.get("logprobs")
    if wanted not in (None, True, False):
        raise bad_request("logprobs must be true or false", "logprobs")
    top = _number(body, "top_logprobs", 0, MAX_LOGPROBS, integer=True)
    if top is not None and not wanted:
        raise bad_request("top_logprobs needs logprobs: true", "top_logprobs")
    return bool(wanted), int(top or 0)


def _parts(content: Any, param: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise bad_request(f"{param} must be a string or a list of content parts", param)
    for i, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise bad_request(f"{param}[{i}] must be an object with a 'type'", f"{param}[{i}]")
    return content


def parse_region(part: dict, message: int, where: str, prompt_numbers: int) -> RegionPart:
    """A region content part (``tag`` and one of ``mask``, ``mask_url``, ``box``), checked."""
    try:
        index = parse_tag(part.get("tag", ""))
    except InputError as error:
        raise bad_request(f"{where}.tag: {error}", f"{where}.tag", "invalid_tag") from None
    if index >= prompt_numbers:
        raise bad_request(
            f"{where}: {tag(index)} is beyond this model's {prompt_numbers} regions "
            f"(<Prompt0> to {tag(prompt_numbers - 1)})",
            f"{where}.tag",
            "too_many_regions",
        )
    given = [name for name in ("mask", "mask_url", "box") if name in part]
    if len(given) != 1:
        raise bad_request(
            f"{where}: give the region as exactly one of mask (COCO RLE), mask_url or box", where
        )
    kind = given[0]
    value = part[kind]
    if kind == "box" and not (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise bad_request(f"{where}.box must be [x1, y1, x2, y2] in pixels", f"{where}.box", "invalid_box")
    return RegionPart(index, message, kind, value, f"{where}.{kind}")


def parse_chat_request(body: Any, prompt_numbers: int) -> ChatRequest:
    """Check a chat-completions body and read it; any problem is an ``ApiError`` (400)."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    _unsupported(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty list", "messages")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise bad_request("model must be a string", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad_request("stream_options must be an object", "stream_options")

    read: list[Message] = []
    regions: list[RegionPart] = []
    image_url = image_param = None
    for m, message in enumerate(messages):
        where = f"messages[{m}]"
        if not isinstance(message, dict):
            raise bad_request(f"{where} must be an object with role and content", where)
        role = message.get("role")
        if role in ("system", "developer"):
            raise bad_request(
                f"{where}: GAR takes no system prompt; put instructions in the user message", where
            )
        if role not in ("user", "assistant"):
            raise bad_request(f"{where}.role must be 'user' or 'assistant', not {role!r}", f"{where}.role")
        expected = "user" if m % 2 == 0 else "assistant"
        if role != expected:
            raise bad_request(
                f"{where}: messages must alternate user, assistant, user, ... (starting with the user); "
                f"this one should be {expected}",
                where,
            )
        texts = []
        for p, part in enumerate(_parts(message.get("content"), f"{where}.content")):
            at = f"{where}.content[{p}]"
            kind = part["type"]
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise bad_request(f"{at}.text must be a string", f"{at}.text")
                texts.append(part["text"])
            elif role == "assistant":
                raise bad_request(f"{at}: an assistant message holds text only", at)
            elif kind == "image_url":
                if m != 0 or image_url is not None:
                    raise bad_request(
                        f"{at}: GAR talks about one image per conversation, given in the first user message",
                        at,
                        "one_image",
                    )
                url = part.get("image_url")
                image_url = url.get("url") if isinstance(url, dict) else url
                image_param = f"{at}.image_url"
            elif kind == "region":
                regions.append(parse_region(part, m, at, prompt_numbers))
            else:
                raise bad_request(f"{at}: unknown content part type {kind!r} (text, image_url, region)", at)
        read.append(Message(role, "\n".join(texts)))
    if read[-1].role != "user":
        raise bad_request(
            "the last message must be the user's (the question to answer)", f"messages[{len(read) - 1}]"
        )
    if image_url is None:
        raise bad_request(
            "GAR needs an image: send it as an image_url part of the first user message",
            "messages[0].content",
            "no_image",
        )
    _check_regions(read, regions)
    logprobs, top_logprobs = _logprobs(body)
    try:
        settings = _settings(body)
    except InputError as error:
        raise bad_request(str(error)) from None
    return ChatRequest(
        model=model,
        image_url=image_url,
        image_param=image_param,
        messages=read,
        regions=regions,
        settings=settings,
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        stop=_stops(body),
        logprobs=logprobs,
        top_logprobs=top_logprobs,
    )


def _check_regions(messages: list[Message], regions: list[RegionPart]) -> None:
    """Each tag declared once, and every tag a user message mentions declared by then."""
    declared: dict[int, RegionPart] = {}
    for region in regions:
        if region.index in declared:
            raise bad_request(
                f"{region.param}: {tag(region.index)} is declared twice", region.param, "duplicate_tag"
            )
        declared[region.index] = region
    for m, message in enumerate(messages):
        if message.role != "user":
            continue
        where = f"messages[{m}]"
        if not message.text.strip():
            raise bad_request(
                f"{where}: the user message has no text (ask a question about the regions)", where
            )
        try:
            mentioned = check_text(message.text)
        except InputError as error:
            raise bad_request(f"{where}: {error}", where, "invalid_tag") from None
        for index in mentioned:
            region = declared.get(index)
            if region is None or region.message > m:
                have = ", ".join(tag(k) for k in sorted(declared)) or "none"
                raise bad_request(
                    f"{where} mentions {tag(index)}, but no region part declares it (regions: {have})",
                    where,
                    "unknown_tag",
                )


def check_model(request: ChatRequest, names: set[str]) -> None:
    if request.model is not None and request.model not in names:
        listed = ", ".join(sorted(names))
        raise ApiError(
            404,
            f"the model {request.model!r} is not served here (GET /v1/models lists: {listed})",
            "model",
            "model_not_found",
        )
