"""One person's session: the image, the marking on it, the conversation about it, the export.

The app keeps one ``Workspace`` per browser session and turns every user action into one
call here (or on its ``marking`` / ``conversation``), so all behaviour can be tested without
a browser. Marking (``gar_app.marking``: regions, marks, undo) and the conversation
(``gar_app.conversation``: transcript, the masks it used, the model's chat) are separate;
this class ties them to one image and keeps their shared rules: which tags are still taken,
whether there is unsaved work, what an export holds. Heavy, shared things (the GAR model,
the segmenter) live in ``Services``; a Workspace only holds references.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from gar_app.conversation import Conversation
from gar_app.errors import InputError
from gar_app.formats.document import (
    AnnotationDocument,
    ExportedRegion,
    ImageInfo,
    VideoFrame,
    check_image,
    image_info,
)
from gar_app.images import load_image, load_mask
from gar_app.marking import Marking
from gar_app.model.settings import GenerationSettings
from gar_app.regions import Region, RegionSet
from gar_app.segment.base import Prompt, Segmenter
from gar_app.tags import find_tags

if TYPE_CHECKING:  # types only: importing the workspace loads neither torch nor the trackers
    from gar_app.model.loading import Gar
    from gar_app.tracking.base import Tracker

ANNOTATION_MODE = (
    "Annotation mode: no GAR checkpoint is loaded, so Describe and the chat are off. "
    "You can still mark regions, type captions and export."
)


@dataclass
class Services:
    """What every session shares: the GAR model (None in annotation mode) and the segmenter."""

    segmenter: Segmenter
    gar: Gar | None = None
    gar_problem: str | None = None  # why there is no model, shown to people
    tracker: Tracker | None = None  # for videos; None: the classical fallback, made when first used
    max_live_chats: int = 8  # conversations that keep their KV cache (GPU memory) between turns
    segment_lock: threading.Lock = field(default_factory=threading.Lock)
    _live: OrderedDict = field(default_factory=OrderedDict)
    _live_lock: threading.Lock = field(default_factory=threading.Lock)
    _segmented: weakref.ref | None = None  # the image the segmenter holds

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
        """A mask from marks. The lock keeps two users' clicks from mixing the segmenter's image;
        the image is only handed over again when it changed (SAM encodes it each time)."""
        with self.segment_lock:
            if self._segmented is None or self._segmented() is not image:
                self.segmenter.set_image(image)
                self._segmented = weakref.ref(image)
            return self.segmenter.segment_prompt(prompt).mask


def _stroke_points(stroke: np.ndarray, step: int = 8) -> list[tuple[int, int]]:
    """A scribble drawn as pixels, kept in the export as a sparse list of its points."""
    ys, xs = np.nonzero(stroke[::step, ::step])
    return [(int(x) * step, int(y) * step) for x, y in zip(xs, ys, strict=True)]


def _dots(points, size: tuple[int, int], step: int = 8) -> np.ndarray:
    """The stroke mask back from exported scribble points (each stands for a step x step cell)."""
    width, height = size
    stroke = np.zeros((height, width), bool)
    for x, y in points:
        x, y = int(round(x)), int(round(y))
        if 0 <= x < width and 0 <= y < height:
            stroke[y : y + step, x : x + step] = True
    return stroke


class Workspace:
    """Image + marking + conversation for one person."""

    def __init__(self, services: Services):
        self.services = services
        self.image: Image.Image | None = None
        self.info: ImageInfo | None = None
        self.video: VideoFrame | None = None
        self.marking: Marking | None = None
        self.conversation = Conversation(services)
        self.stop = threading.Event()
        self._saved_fingerprint = self._fingerprint()

    # -- image ---------------------------------------------------------------------------

    def set_image(
        self,
        source,
        name: str | None = None,
        video: VideoFrame | None = None,
        regions: Mapping[int, np.ndarray] | None = None,
    ) -> None:
        """Start over on a new image or video frame, optionally with regions already on it
        (``regions[k]`` becomes ``<Promptk>``, e.g. masks tracked from an earlier frame)."""
        image = load_image(source)
        info = image_info(image, name=name or "image")
        marking = Marking(self._segmenter_for(image), image.size, self.services.prompt_numbers, self.reserved)
        for index, mask in sorted((regions or {}).items()):
            marking.add_region(load_mask(mask, size=image.size), index=index)
        marking.forget_history()
        self.image, self.info, self.video, self.marking = image, info, video, marking
        self.conversation.clear()
        self.mark_saved()

    def _segmenter_for(self, image: Image.Image):
        return lambda prompt: self.services.segment(image, prompt)

    def require_image(self) -> Image.Image:
        if self.image is None:
            raise InputError("load an image first (upload one, paste one, or pick an example)")
        return self.image

    def require_marking(self) -> Marking:
        self.require_image()
        return self.marking

    @property
    def regions(self) -> RegionSet:
        return self.marking.regions if self.marking is not None else RegionSet()

    def reserved(self) -> set[int]:
        """Tags a new region may not take: the conversation and the captions still refer to them."""
        texts = [t.text for t in self.conversation.turns] + [r.caption for r in self.regions]
        return set(self.conversation.masks) | {k for text in texts for k in find_tags(text)}

    # -- unsaved work --------------------------------------------------------------------

    def _fingerprint(self) -> tuple:
        """What saved work is compared by: the marking and its version, the number of turns,
        the image's hash (cheap to take after every action, unlike an export)."""
        marking = None if self.marking is None else (id(self.marking), self.marking.version)
        return marking, len(self.conversation.turns), self.info and self.info.sha256

    @property
    def unsaved(self) -> bool:
        """Regions or a conversation changed since the image was loaded, imported or exported."""
        has_work = len(self.regions) > 0 or not self.conversation.is_empty
        return has_work and self._fingerprint() != self._saved_fingerprint

    def mark_saved(self) -> None:
        self._saved_fingerprint = self._fingerprint()

    # -- marks that need the workspace ---------------------------------------------------

    def add_mask(self, source) -> tuple[Region, str | None]:
        """An uploaded mask for the current region, and the notice when it had to be scaled
        (one of another aspect ratio is refused: see ``gar_app.images.fit_mask``)."""
        marking = self.require_marking()
        notes: list[str] = []
        mask = load_mask(source, size=marking.size, notify=notes.append)
        return marking.set_mask(mask), (notes[0] if notes else None)

    # -- GAR -----------------------------------------------------------------------------

    def require_gar(self) -> Gar:
        if self.services.gar is None:
            why = f" (no model: {self.services.gar_problem})" if self.services.gar_problem else ""
            raise InputError(ANNOTATION_MODE + why)
        return self.services.gar

    def stream_caption(self, key, settings: GenerationSettings | None = None) -> Iterator[str]:
        """Describe one region with GAR's single-region prompt; its caption fills in as it streams."""
        gar = self.require_gar()
        marking = self.require_marking()
        region = marking.regions.get(key)
        self.stop.clear()
        chat = gar.describe_chat(self.image, region.mask)  # the released single-region input
        text = ""
        for piece in chat.stream_describe(None, settings, stop=self.stop):
            text += piece
            if region.index in marking.regions:
                marking.set_caption(region.index, text.strip())
            yield text

    def stream_answer(self, question: str, settings: GenerationSettings | None = None) -> Iterator[str]:
        """Ask in the conversation; yields the answer so far as it grows."""
        self.require_gar()
        image = self.require_image()
        return self.conversation.stream(
            question, image, self.regions, settings or GenerationSettings(), self.stop
        )

    def new_conversation(self) -> None:
        """Forget the chat (transcript, masks, model state); regions and captions stay."""
        self.conversation.clear()

    # -- export --------------------------------------------------------------------------

    def document(self) -> AnnotationDocument:
        if self.info is None:
            raise InputError("nothing to export yet: load an image and mark a region")
        regions = []
        for region in self.regions:
            prompt = region.prompt or Prompt()
            scribble = prompt.scribble
            if isinstance(scribble, np.ndarray):
                scribble = _stroke_points(scribble)
            regions.append(
                ExportedRegion(
                    index=region.index,
                    colour=region.colour,
                    source=region.source,
                    mask=region.mask,
                    caption=region.caption,
                    points=[tuple(p) for p in prompt.points],
                    labels=[int(v) for v in prompt.labels],
                    prompt_box=None if prompt.box is None else tuple(float(v) for v in prompt.box),
                    scribble=[tuple(p) for p in scribble] if scribble is not None else [],
                )
            )
        dialogue = self.conversation.exported_turns(self.regions)
        return AnnotationDocument(self.info, regions, dialogue, self.video)

    def restore(self, document: AnnotationDocument) -> None:
        """Bring back an exported session on the image it was made on."""
        image = self.require_image()
        check_image(document.image, self.info, image)
        marking = Marking(self._segmenter_for(image), image.size, self.services.prompt_numbers, self.reserved)
        for item in document.regions:
            prompt = None
            if item.source != "mask":
                scribble = _dots(item.scribble, image.size) if item.scribble else None
                prompt = Prompt(
                    points=item.points, labels=item.labels, box=item.prompt_box, scribble=scribble
                )
            marking.add_region(
                item.mask, index=item.index, source=item.source, prompt=prompt, caption=item.caption
            )
        marking.forget_history()
        self.marking = marking
        self.video = document.video or self.video
        self.conversation.restore(document.dialogue, marking.regions)
        self.mark_saved()
