"""Who wrote a region's caption: the optional ``caption_source`` of a ``gar-app/1`` region.

A caption is either generated (``by: "model"``: the checkpoint and the decoding settings,
so it can be reproduced) or typed by a person (``by: "person"``). A person may then edit a
generated caption (``edited``) or accept it as it is (``accepted``). Captions a person
wrote, edited or accepted are *kept*: bulk describing never replaces them. A region without
``caption_source`` (files written before it existed, imports that did not say) is of unknown
origin and is kept too, since nothing can tell it was a model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from gar_app.conversation import utc_now
from gar_app.formats.jsonio import bad, get

KINDS = ("model", "person")


@dataclass(frozen=True)
class CaptionSource:
    by: str  # "model" or "person"
    model: str | None = None  # the checkpoint that wrote it (by == "model")
    decoding: dict[str, Any] = field(default_factory=dict)  # GenerationSettings.to_dict() (by == "model")
    person: str | None = None  # who wrote, edited or accepted it, when known
    edited: bool = False  # a person changed the model's text
    accepted: bool = False  # a person approved the text as it is
    time: str | None = None  # UTC of the last change (see utc_now)

    @classmethod
    def generated(cls, model: str, decoding: dict[str, Any]) -> CaptionSource:
        return cls("model", model=model, decoding=dict(decoding), time=utc_now())

    @classmethod
    def typed(cls, person: str | None = None) -> CaptionSource:
        return cls("person", person=person, time=utc_now())

    def edit(self, person: str | None = None) -> CaptionSource:
        """A person changed the text: a model's caption keeps its origin, marked edited."""
        if self.by == "person":
            return replace(self, person=person or self.person, time=utc_now())
        return replace(self, edited=True, person=person or self.person, time=utc_now())

    def accept(self, person: str | None = None) -> CaptionSource:
        return replace(self, accepted=True, person=person or self.person, time=utc_now())

    @property
    def kept(self) -> bool:
        """A person wrote, edited or accepted it: a model must not replace it unasked."""
        return self.by == "person" or self.edited or self.accepted

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "model": self.model,
            "decoding": dict(self.decoding),
            "person": self.person,
            "edited": self.edited,
            "accepted": self.accepted,
            "time": self.time,
        }


def caption_kept(source: CaptionSource | None) -> bool:
    """Whether a caption with this source is a person's to change (unknown origin counts)."""
    return source is None or source.kept


def read_caption_source(data: Any, where: str) -> CaptionSource:
    """A region's ``caption_source`` object, checked; problems name ``where``. Only ``by``
    is required (and ``model`` when a model wrote it), so other tools can write it by hand."""
    if not isinstance(data, dict):
        raise bad(f"{where} must be an object")
    by = get(data, "by", "str", where)
    if by not in KINDS:
        raise bad(f"{where}.by must be 'model' or 'person', not {by!r}")
    model = get(data, "model", "str", where, optional=True) if "model" in data else None
    if by == "model" and not model:
        raise bad(f"{where} says a model wrote the caption but names no model")
    flags = {}
    for key in ("edited", "accepted"):
        value = data.get(key, False)
        if not isinstance(value, bool):
            raise bad(f"{where}.{key} must be true or false")
        flags[key] = value
    time = get(data, "time", "str", where, optional=True) if "time" in data else None
    if time is not None and not _is_utc(time):
        raise bad(f"{where}.time must be an ISO 8601 UTC time like 2025-06-01T12:00:00Z, not {time!r}")
    return CaptionSource(
        by,
        model,
        get(data, "decoding", "dict", where) if "decoding" in data else {},
        get(data, "person", "str", where, optional=True) if "person" in data else None,
        flags["edited"],
        flags["accepted"],
        time,
    )


def _is_utc(text: str) -> bool:
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    offset = stamp.utcoffset()
    return offset is not None and offset.total_seconds() == 0
