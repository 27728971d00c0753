"""The conversation about one image: its transcript, the masks it used, and the model's state.

The transcript (``Turn``) is the one record of what was said; the model's chat
(``chat``, a ``gar_app.model.ChatSession``) is only its working state (image features, KV
cache) and can be rebuilt from the transcript. Honesty rules, so a saved dialogue never means something else:

- A region the conversation has used keeps, *for this conversation*, the tag and the mask
  it had when first mentioned (``masks``). Editing or deleting it afterwards does not change
  what the old turns were about: ``changed()`` lists such tags, the person chooses between a
  new conversation and keeping the old masks (``keep_old_masks``), and a question that
  mentions a changed tag is refused until they start a new conversation.
- The tags in ``masks`` are reserved: a new region does not take them while this
  conversation exists (see ``Workspace.reserved``).
- The export gives each user turn the masks it saw that differ from the exported regions
  (``Turn.masks``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from gar_app.errors import InputError
from gar_app.model.settings import GenerationSettings
from gar_app.regions import RegionSet
from gar_app.rle import mask_to_rle, rle_to_mask
from gar_app.tags import check_text, find_tags, parse_tag, tag, tags_in

if TYPE_CHECKING:
    from gar_app.model.chat import ChatSession


def utc_now() -> str:
    """Now as ISO 8601 UTC with milliseconds, e.g. ``2025-06-01T12:00:00.123Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Turn:
    role: str  # "user" | "assistant"
    text: str
    time: str  # ISO 8601 UTC, see utc_now()
    model: str | None = None  # model id that wrote an assistant turn
    decoding: dict[str, Any] = field(default_factory=dict)  # e.g. {"do_sample": False, ...}
    # tag -> COCO RLE of the mask a user turn saw, where that differs from the exported region
    masks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def tags(self) -> list[str]:
        return tags_in(self.text)


class Conversation:
    """Turns and the masks they were about; the model's chat is made on the first question."""

    def __init__(self, services):
        self.services = services  # gar_app.workspace.Services
        self.turns: list[Turn] = []
        self.masks: dict[int, np.ndarray] = {}  # region index -> the mask this conversation uses
        self.kept: set[int] = set()  # changed regions whose old masks the person chose to keep
        self.chat: ChatSession | None = None  # the model's chat state, None until needed
        self.resumable = True  # False: an imported dialogue the model cannot continue

    # -- state ---------------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        return not self.turns

    def changed(self, regions: RegionSet) -> list[int]:
        """Regions this conversation used that were since edited or deleted."""
        return [
            k
            for k, mask in sorted(self.masks.items())
            if k not in regions or not np.array_equal(regions[k].mask, mask)
        ]

    def conflicts(self, regions: RegionSet) -> list[int]:
        """Changed regions the person has not yet decided about."""
        return [k for k in self.changed(regions) if k not in self.kept]

    def keep_old_masks(self, regions: RegionSet) -> None:
        """Go on with this conversation: its turns keep the masks they were about."""
        self.kept |= set(self.changed(regions))

    def clear(self) -> None:
        """Forget the conversation: transcript, masks and model state."""
        self.turns = []
        self.masks = {}
        self.kept = set()
        self.chat = None
        self.resumable = True

    # -- asking --------------------------------------------------------------------------

    def _check(self, question: str, regions: RegionSet) -> list[int]:
        indices = check_text(question)
        missing = [tag(k) for k in indices if k not in regions]
        if missing:
            have = ", ".join(regions.tags) or "none yet"
            raise InputError(
                f"the question mentions {', '.join(missing)}, which is not a region (regions: {have})"
            )
        stale = [tag(k) for k in indices if k in self.changed(regions)]
        if stale:
            raise InputError(
                f"{', '.join(stale)} changed after this conversation used it; the conversation keeps the old "
                "mask, so start a New conversation to ask about the new one"
            )
        if not self.resumable:
            raise InputError(
                "the imported conversation cannot be continued (it mentions a region the file has "
                "no mask for); start a New conversation"
            )
        return indices

    def _chat(self, image: Image.Image) -> ChatSession:
        if self.chat is None:
            gar = self.services.gar
            self.chat = gar.chat(image, {})
            for index, mask in sorted(self.masks.items()):
                self.chat.add_region(index, mask)
            exchanges = _exchanges(self.turns)
            if exchanges:
                self.chat.replay(exchanges)
        return self.chat

    def stream(
        self,
        question: str,
        image: Image.Image,
        regions: RegionSet,
        settings: GenerationSettings,
        stop: threading.Event,
    ) -> Iterator[str]:
        """Ask in this conversation; yields the answer so far as it grows."""
        question = question.strip()
        if not question:
            raise InputError("type a question first (mention regions as <Prompt0>, <Prompt1>, ...)")
        indices = self._check(question, regions)
        chat = self._chat(image)
        for index in indices:
            if index not in self.masks:
                chat.add_region(index, regions[index].mask)
                self.masks[index] = regions[index].mask
        stop.clear()
        stream = chat.stream(question, settings, stop=stop)
        try:
            first = next(stream, None)  # errors surface here, before the question is recorded
        except BaseException:
            for index in indices:  # a question that never started used no region
                if not any(index in find_tags(t.text) for t in self.turns):
                    self.masks.pop(index, None)
            raise
        self.turns.append(Turn("user", question, utc_now()))
        answer = Turn("assistant", "", utc_now(), self.services.model_id, settings.to_dict())
        self.turns.append(answer)
        try:
            if first is not None:
                answer.text = first
                yield answer.text
            for piece in stream:
                answer.text += piece
                yield answer.text
        finally:
            answer.time = utc_now()
            self.services.keep_warm(chat)

    # -- export and import ---------------------------------------------------------------

    def exported_turns(self, regions: RegionSet) -> list[Turn]:
        """The transcript for an export: user turns about a changed region carry the mask they saw."""
        changed = set(self.changed(regions))
        turns = []
        for turn in self.turns:
            seen = {
                tag(k): mask_to_rle(self.masks[k])
                for k in find_tags(turn.text)
                if turn.role == "user" and k in changed
            }
            turns.append(Turn(turn.role, turn.text, turn.time, turn.model, dict(turn.decoding), seen))
        return turns

    def restore(self, turns: list[Turn], regions: RegionSet) -> None:
        """Take over an exported dialogue; masks come from its turns, else from the regions."""
        self.clear()
        self.turns = [Turn(t.role, t.text, t.time, t.model, dict(t.decoding)) for t in turns]
        masks: dict[int, np.ndarray] = {}
        for turn in turns:
            for name, rle in turn.masks.items():
                masks.setdefault(parse_tag(name), rle_to_mask(rle))
        for turn in turns:
            for index in find_tags(turn.text) if turn.role == "user" else []:
                if index not in masks and index in regions:
                    masks[index] = regions[index].mask
        self.masks = masks
        mentioned = {k for t in turns if t.role == "user" for k in find_tags(t.text)}
        self.resumable = mentioned <= set(masks)
        self.kept = set(self.changed(regions))  # the file already says which masks its turns saw


def _exchanges(turns: list[Turn]) -> list[tuple[str, str]]:
    return [
        (q.text, a.text)
        for q, a in zip(turns, turns[1:], strict=False)
        if q.role == "user" and a.role == "assistant"
    ]
