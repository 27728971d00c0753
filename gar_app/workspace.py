"""One person's annotation session: the image, its regions, the marks behind them, the chat.

The app keeps one ``Workspace`` per browser session and turns every user action into one
method call here, so all behaviour can be tested without a browser. Heavy, shared things
(the GAR model, the segmenter) live in ``Services``; a Workspace only holds references.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from gar_app import export
from gar_app.errors import InputError
from gar_app.images import load_image, load_mask
from gar_app.model.generation import GenerationSettings
from gar_app.regions import Region, RegionSet, render_overlay
from gar_app.segment.base import Prompt, Segmenter
from gar_app.tags import check_text, tag

ANNOTATION_MODE = (
    "Annotation mode: no GAR checkpoint is loaded, so Describe and the chat are off. "
    "You can still mark regions, type captions and export."
)


@dataclass
class Services:
    """What every session shares: the GAR model (None in annotation mode) and the segmenter."""

    segmenter: Segmenter
    gar: object | None = None  # gar_app.model.Gar
    gar_problem: str | None = None  # why there is no model, shown to people
    max_live_chats: int = 8  # conversations that keep their KV cache (GPU memory) between turns
    segment_lock: threading.Lock = field(default_factory=threading.Lock)
    _live: OrderedDict = field(default_factory=OrderedDict)
    _live_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def prompt_numbers(self) -> int | None:
        return None if self.gar is None else self.gar.prompt_numbers

    @property
    def model_id(self) -> str | None:
        return None if self.gar is None else self.gar.model_id

    def keep_warm(self, chat) -> None:
        """Mark a conversation as just used; the least recently used beyond the limit give
        their caches back (their next turn recomputes them), so many idle users cannot fill
        the GPU with KV caches."""
        with self._live_lock:
            self._live.pop(id(chat), None)
            self._live[id(chat)] = weakref.ref(chat)
            while len(self._live) > self.max_live_chats:
                _key, ref = self._live.popitem(last=False)
                old = ref()
                if old is not None:
                    old.release_cache()

    def segment(self, image: Image.Image, prompt: Prompt) -> np.ndarray:
        """A mask from marks; the lock keeps two users' clicks from mixing SAM's image state."""
        with self.segment_lock:
            self.segmenter.set_image(image)
            return self.segmenter.segment_prompt(prompt).mask


def _stroke_points(stroke: np.ndarray, step: int = 8) -> list[tuple[int, int]]:
    """A scribble drawn as pixels, kept in the export as a sparse list of its points."""
    ys, xs = np.nonzero(stroke[::step, ::step])
    return [(int(x) * step, int(y) * step) for x, y in zip(xs, ys, strict=True)]


class Workspace:
    """Image + regions + marks + dialogue for one person."""

    def __init__(self, services: Services):
        self.services = services
        self.image: Image.Image | None = None
        self.info: export.ImageInfo | None = None
        self.video: export.VideoFrame | None = None
        self.regions = RegionSet(limit=services.prompt_numbers)
        self.current: int | None = None  # region the next mark edits; None = a new region
        self.corner: tuple[float, float] | None = None  # first click of a two-click box
        self.dialogue: list[export.Turn] = []
        self.chat = None  # gar_app.model.ChatSession of the conversation in progress
        self._chat_masks: dict[int, np.ndarray] = {}
        self.stop = threading.Event()

    # -- image ---------------------------------------------------------------------------

    def set_image(self, source, name: str | None = None, video: export.VideoFrame | None = None) -> None:
        """Start over on a new image (or video frame)."""
        image = load_image(source)
        self.image = image
        self.info = export.image_info(image, name=name or "image")
        self.video = video
        self.regions = RegionSet(limit=self.services.prompt_numbers)
        self.current = None
        self.corner = None
        self.dialogue = []
        self._end_chat()

    def require_image(self) -> Image.Image:
        if self.image is None:
            raise InputError("load an image first (upload one, paste one, or pick an example)")
        return self.image

    def render(self) -> np.ndarray | None:
        """The canvas: the image with every region in its colour and tag, plus a pending corner."""
        if self.image is None:
            return None
        canvas = render_overlay(self.image, self.regions, selected=self.current)
        if self.corner is not None:
            x, y = (int(round(v)) for v in self.corner)
            radius = max(4, min(self.image.size) // 120)
            canvas[max(0, y - radius) : y + radius + 1, max(0, x - 1) : x + 2] = (255, 255, 255)
            canvas[max(0, y - 1) : y + 2, max(0, x - radius) : x + radius + 1] = (255, 255, 255)
        return canvas

    # -- marks ---------------------------------------------------------------------------

    def _current_prompt(self) -> Prompt:
        if self.current is None or self.current not in self.regions:
            return Prompt()
        return self.regions[self.current].prompt or Prompt()

    def _apply(self, prompt: Prompt, mask: np.ndarray | None = None, source: str | None = None) -> Region:
        image = self.require_image()
        if mask is None:
            mask = self.services.segment(image, prompt)
        if not mask.any():
            raise InputError("the segmenter found nothing there; try another point or a box")
        if self.current is not None and self.current in self.regions:
            region = self.regions.update(self.current, mask=mask, prompt=prompt, source=source)
        else:
            region = self.regions.add(mask=mask, prompt=prompt, source=source)
            self.current = region.index
        return region

    def add_point(self, x: float, y: float, positive: bool = True) -> Region:
        """A click: one more point (include or exclude) for the current region."""
        before = self._current_prompt()
        prompt = Prompt(
            points=[*before.points, (float(x), float(y))],
            labels=[*before.labels, 1 if positive else 0],
            box=before.box,
        )
        if not any(prompt.labels) and prompt.box is None:
            raise InputError("start a region with an include point (or a box); exclude points refine it")
        return self._apply(prompt)

    def box_click(self, x: float, y: float) -> Region | None:
        """Two clicks make a box: the first sets a corner, the second segments."""
        if self.corner is None:
            self.require_image()
            self.corner = (float(x), float(y))
            return None
        (x1, y1), self.corner = self.corner, None
        return self.set_box((x1, y1, float(x), float(y)))

    def set_box(self, box: tuple[float, float, float, float]) -> Region:
        before = self._current_prompt()
        return self._apply(Prompt(points=before.points, labels=before.labels, box=box))

    def add_scribble(self, stroke: np.ndarray) -> Region:
        """A brush stroke (H x W, non-zero where drawn) segments the thing it covers."""
        image = self.require_image()
        stroke = load_mask(stroke, size=image.size)
        if not stroke.any():
            raise InputError("the scribble is empty: draw over the object with the brush first")
        return self._apply(Prompt(scribble=stroke))

    def add_mask(self, source) -> Region:
        """An uploaded mask becomes (or replaces) the current region as is."""
        image = self.require_image()
        mask = load_mask(source, size=image.size)
        if not mask.any():
            raise InputError("the uploaded mask is empty (no non-zero pixel)")
        return self._apply(Prompt(), mask=mask, source="mask")

    def new_region(self) -> None:
        """The next mark starts the next <PromptN>."""
        if self.services.prompt_numbers is not None and self.regions.is_full:
            raise InputError(f"this model tells apart at most {self.services.prompt_numbers} regions")
        self.current = None
        self.corner = None

    def select(self, tag_or_index) -> Region:
        region = self.regions.get(tag_or_index)
        self.current = region.index
        return region

    def delete(self, tag_or_index) -> Region:
        region = self.regions.remove(tag_or_index)
        if self.current == region.index:
            self.current = None
        return region

    def set_caption(self, tag_or_index, caption: str) -> Region:
        return self.regions.update(tag_or_index, caption=caption.strip())

    # -- GAR -----------------------------------------------------------------------------

    def require_gar(self):
        if self.services.gar is None:
            why = f" (no model: {self.services.gar_problem})" if self.services.gar_problem else ""
            raise InputError(ANNOTATION_MODE + why)
        return self.services.gar

    def stream_caption(self, tag_or_index, settings: GenerationSettings | None = None) -> Iterator[str]:
        """Describe one region with GAR's single-region prompt; the caption fills in as it streams."""
        gar = self.require_gar()
        region = self.regions.get(tag_or_index)
        self.stop.clear()
        session = gar.describe_chat(self.require_image(), region.mask)  # the released single-region input
        text = ""
        try:
            for piece in session.stream_describe(None, settings, stop=self.stop):
                text += piece
                yield text
        finally:
            if text:
                self.set_caption(region.index, text)

    def _end_chat(self) -> None:
        self.chat = None
        self._chat_masks = {}

    def _chat_session(self):
        """The conversation in progress, or a new one when regions it relies on changed."""
        gar = self.require_gar()
        masks = {r.index: r.mask for r in self.regions}
        if self.chat is not None:
            known = self._chat_masks
            changed = [k for k in known if k not in masks or not np.array_equal(known[k], masks[k])]
            if changed:
                self._end_chat()
            else:
                for index, mask in masks.items():  # regions added since can still join
                    self.chat.masks.setdefault(index, mask)
                    known.setdefault(index, mask)
        if self.chat is None:
            self.chat = gar.chat(self.require_image(), masks)
            self._chat_masks = dict(masks)
        return self.chat

    def new_conversation(self) -> None:
        """Forget the chat (transcript and model state); regions and captions stay."""
        self.dialogue = []
        self._end_chat()

    def stream_answer(self, question: str, settings: GenerationSettings | None = None) -> Iterator[str]:
        """Ask in the running conversation; yields the answer so far as it grows."""
        question = question.strip()
        if not question:
            raise InputError("type a question first (mention regions as <Prompt0>, <Prompt1>, ...)")
        self.require_image()
        missing = [tag(k) for k in check_text(question) if k not in self.regions]
        if missing:
            have = ", ".join(self.regions.tags) or "none yet"
            raise InputError(f"the question mentions {', '.join(missing)}, which is not a region (regions: {have})")
        settings = settings or GenerationSettings()
        session = self._chat_session()
        self.stop.clear()
        stream = session.stream(question, settings, stop=self.stop)
        first = next(stream, None)  # errors surface here, before the question is recorded
        self.dialogue.append(export.Turn("user", question, export.utc_now()))
        answer = export.Turn("assistant", "", export.utc_now(), self.services.model_id, settings.to_dict())
        self.dialogue.append(answer)
        text = first or ""
        try:
            if first is not None:
                answer.text = text
                yield text
            for piece in stream:
                text += piece
                answer.text = text
                yield text
        finally:
            answer.text = session.turns[-1].text if session.turns else text
            answer.time = export.utc_now()
            self.services.keep_warm(session)

    # -- export --------------------------------------------------------------------------

    def document(self) -> export.AnnotationDocument:
        if self.info is None:
            raise InputError("nothing to export yet: load an image and mark a region")
        regions = []
        for region in self.regions:
            prompt = region.prompt or Prompt()
            scribble = prompt.scribble
            if isinstance(scribble, np.ndarray):
                scribble = _stroke_points(scribble)
            regions.append(
                export.ExportedRegion(
                    index=region.index,
                    colour=region.colour.lower(),
                    source=region.source,
                    mask=region.mask,
                    caption=region.caption,
                    points=[tuple(p) for p in prompt.points],
                    labels=[int(v) for v in prompt.labels],
                    prompt_box=None if prompt.box is None else tuple(float(v) for v in prompt.box),
                    scribble=[tuple(p) for p in scribble] if scribble is not None else [],
                )
            )
        return export.AnnotationDocument(self.info, regions, list(self.dialogue), self.video)

    def restore(self, document: export.AnnotationDocument) -> None:
        """Bring back an exported session on the image it was made on."""
        export.check_image(document.image, self.info, self.require_image())
        regions = RegionSet(limit=self.services.prompt_numbers)
        for item in document.regions:
            prompt = None
            if item.source != "mask":
                prompt = Prompt(
                    points=item.points, labels=item.labels, box=item.prompt_box, scribble=item.scribble or None
                )
            regions.add(mask=item.mask, source=item.source, prompt=prompt, caption=item.caption, index=item.index)
        self.regions = regions
        self.dialogue = list(document.dialogue)
        self.video = document.video or self.video
        self.current = None
        self.corner = None
        self._end_chat()
        self._resume_chat()

    def _resume_chat(self) -> None:
        """Give the model the imported dialogue, so the next question continues it."""
        exchanges = [
            (question.text, answer.text)
            for question, answer in zip(self.dialogue, self.dialogue[1:], strict=False)
            if question.role == "user" and answer.role == "assistant"
        ]
        if self.services.gar is None or not exchanges:
            return
        session = self._chat_session()
        try:
            session.replay(exchanges)
        except InputError:  # e.g. a question about a region the file no longer has: start afresh
            self._end_chat()

