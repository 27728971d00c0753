"""LLM judge for GARBench captions through any OpenAI-compatible chat endpoint (stdlib HTTP only).

The judge sees the image and, for each region, a crop and a mask view (everything outside
the region darkened), so it can check the prediction against the pixels as well as against
the reference. It answers True or False at temperature 0. Timeouts, dropped connections,
429 and 5xx are retried with exponential backoff; an item whose judge call still fails is
reported as a judge error and gets no verdict, so an outage can never pass for a score.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gar_app.errors import GarAppError, InputError
from gar_app.eval.garbench import decode_masks, resolve_image
from gar_app.images import load_image, mask_box
from gar_app.progress import progress_bar
from gar_app.tags import tag

SYSTEM_PROMPT = (
    "You grade answers of a region-understanding model. Regions of an image are named <Prompt0>, "
    "<Prompt1>, ...; you are shown the whole image and, for each region, a crop around it and a "
    "mask view in which everything outside the region is darkened. Reply with exactly one word: True or False."
)
SIMPLE_PROMPT = (
    "Question about the regions: {question}\nReference answer: {answer}\nModel prediction: {model_output}\n\n"
    "Does the prediction convey the same meaning as the reference answer: the same regions in the same "
    "relation? Wording, articles and synonyms do not matter; a different, reversed or missing relation does. "
    "Answer True or False."
)
DETAILED_PROMPT = (
    "The subject is <Prompt0> (a {subject_name}) and the object is <Prompt1> (a {object_name}). "
    "Annotated relation: <Prompt0> {predicate_name} <Prompt1>.\nModel description of <Prompt0>:\n"
    "{model_output}\n\nDoes the description correctly describe the subject <Prompt0> and its relation to "
    "the object <Prompt1> (consistent with the annotated relation and the image), without describing the "
    "wrong region or stating a wrong relation? Extra correct detail is fine. Answer True or False."
)
RETRY_STATUS = {408, 409, 425, 429}
SETUP_STATUS = {401, 403, 404}  # wrong key, URL or model name: every item would fail the same way
MAX_SIDE = 768


class JudgeError(Exception):
    """One item's judge call failed (after retries); the item gets no verdict."""


def check_url(url: str) -> None:
    """Refuse a judge URL that is not ``http(s)://host[...]`` before any request is tried."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(
            f"--judge-url must be an http:// or https:// URL such as http://localhost:8000/v1, not {url!r}"
        )


def endpoint(url: str) -> str:
    """Chat-completions URL: a full ``.../chat/completions`` URL is kept, a bare host gets ``/v1``, any
    other base (``http://host:8000/v1``, ``https://x/openai``) gets ``/chat/completions`` appended."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if urllib.parse.urlsplit(url).path in ("", "/"):
        url += "/v1"
    return url + "/chat/completions"


def data_url(image: Image.Image) -> str:
    image = image.copy()
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def region_views(image: Image.Image, mask: np.ndarray) -> tuple[Image.Image, Image.Image]:
    """A crop around the region (10% margin) and the image with everything outside the region darkened."""
    box = mask_box(mask)
    crop = image
    if box is not None:
        x0, y0, x1, y1 = box
        mx, my = max(2, (x1 - x0) // 10), max(2, (y1 - y0) // 10)
        crop = image.crop(
            (max(0, x0 - mx), max(0, y0 - my), min(image.width, x1 + mx + 1), min(image.height, y1 + my + 1))
        )
    pixels = np.asarray(image, dtype=np.float32)
    shown = np.where(mask[..., None], pixels, pixels * 0.25)
    return crop, Image.fromarray(shown.astype(np.uint8), "RGB")


def build_messages(
    record: dict[str, Any], split: str, image: Image.Image, masks: list[np.ndarray]
) -> list[dict]:
    """System prompt, then one user turn: image, per region crop and mask view, then the question."""
    template = SIMPLE_PROMPT if split == "simple" else DETAILED_PROMPT
    fields = {
        key: record.get(key, "")
        for key in ("question", "answer", "subject_name", "object_name", "predicate_name")
    }
    content: list[dict[str, Any]] = [{"type": "text", "text": "The image:"}, _image_part(image)]
    for number, mask in enumerate(masks):
        crop, view = region_views(image, mask)
        content += [{"type": "text", "text": f"{tag(number)} crop:"}, _image_part(crop)]
        content += [{"type": "text", "text": f"{tag(number)} mask view:"}, _image_part(view)]
    content.append({"type": "text", "text": template.format(model_output=record["model_output"], **fields)})
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]


def _image_part(image: Image.Image) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": data_url(image)}}


def parse_verdict(text: str) -> bool:
    """True/False from a reply such as ``True``, ``**False**.``, ``Answer: True`` or after a think block."""
    text = re.sub(r"<think>.*?</think>", " ", text, flags=re.S)
    words = re.findall(r"[a-z]+", text.lower())
    if words and words[0] in ("true", "false"):
        return words[0] == "true"
    found = {word for word in words if word in ("true", "false")}
    if len(found) == 1:
        return found.pop() == "true"
    raise JudgeError(f"judge answered neither True nor False: {text.strip()[:80]!r}")


@dataclass
class JudgeClient:
    url: str
    model: str
    api_key: str | None = None
    timeout: float = 60.0
    attempts: int = 4
    backoff: float = 2.0  # seconds before the 2nd attempt, doubling after each failure
    max_backoff: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def complete(self, messages: list[dict]) -> str:
        """The reply text; retries transient failures, raises JudgeError when they persist."""
        body = json.dumps({"model": self.model, "messages": messages, "temperature": 0}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        problem = "no attempt made"
        for attempt in range(max(1, self.attempts)):
            if attempt:
                self.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
            request = urllib.request.Request(endpoint(self.url), data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    reply = response.read()
            except urllib.error.HTTPError as error:
                problem = f"HTTP {error.code}: {_error_body(error)}"
                if error.code in SETUP_STATUS:
                    raise InputError(
                        f"judge at {endpoint(self.url)} refused the request ({problem}); "
                        "check --judge-url, --judge-model and --judge-key-env"
                    ) from None
                if error.code in RETRY_STATUS or error.code >= 500:
                    continue
                raise JudgeError(problem) from None
            except (TimeoutError, urllib.error.URLError, ConnectionError, http.client.HTTPException) as error:
                reason = getattr(error, "reason", error)
                problem = "timed out" if isinstance(reason, TimeoutError) else f"connection failed: {reason}"
                continue
            return _reply_text(reply)
        raise JudgeError(f"{problem} (gave up after {max(1, self.attempts)} attempts)")

    def verdict(self, messages: list[dict]) -> bool:
        return parse_verdict(self.complete(messages))


def _error_body(error: urllib.error.HTTPError) -> str:
    try:
        return error.read()[:200].decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException):
        return str(error.reason)


def _reply_text(reply: bytes) -> str:
    try:
        content = json.loads(reply)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise JudgeError(f"judge reply is not a chat completion: {reply[:120]!r}") from None
    if isinstance(content, list):  # content parts
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def find_image(record: dict[str, Any], images_dir: str | Path | None) -> Path:
    """``--images`` when given, else the ``image_path`` that ``eval run`` recorded."""
    if images_dir is not None:
        return resolve_image(record, images_dir)
    recorded = record.get("image_path")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    raise InputError(f"image {record.get('image')} not found; pass --images DIR (the benchmark folder)")


def judge_records(
    records: list[tuple[str, dict[str, Any]]],
    split: str,
    client: JudgeClient,
    *,
    images_dir: str | Path | None = None,
    progress: bool = True,
    max_errors_in_a_row: int = 5,
) -> tuple[list[tuple[str, bool]], list[tuple[str, str]]]:
    """Verdicts and judge errors for ``(name, record)`` pairs; stops if the judge looks down altogether."""
    paths = [find_image(record, images_dir) for _, record in records]  # fail before any judge call
    verdicts: list[tuple[str, bool]] = []
    errors: list[tuple[str, str]] = []
    in_a_row = 0
    for (name, record), path in progress_bar(
        list(zip(records, paths, strict=True)), what="judge", unit="item", shown=progress
    ):
        image = load_image(path)
        try:
            verdicts.append(
                (name, client.verdict(build_messages(record, split, image, decode_masks(record, image.size))))
            )
            in_a_row = 0
        except JudgeError as error:
            errors.append((name, str(error)))
            in_a_row += 1
            if in_a_row >= max_errors_in_a_row:
                raise GarAppError(
                    f"the judge failed on {in_a_row} items in a row (last: {error}); "
                    f"is it reachable at {endpoint(client.url)}?"
                ) from None
    return verdicts, errors
