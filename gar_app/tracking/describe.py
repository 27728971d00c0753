"""Talking about tracked regions. GAR is an image model: it sees one frame at a time.

- ``frame_chat`` starts a conversation about one frame with that frame's masks, so
  ``<PromptN>`` means the region as it is on that frame.
- ``describe_over_time`` captions a region on K keyframes spread over its track (each caption
  is GAR's single-region description of that frame) and pins them to the region, so the
  timeline can show how the description changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import numpy as np

from gar_app.errors import InputError
from gar_app.tracking.tracks import FrameCaption, VideoTracks


def spread(positions: Sequence[int], count: int) -> list[int]:
    """``count`` of ``positions`` spread evenly, first and last included (all when fewer)."""
    if count < 1:
        raise InputError(f"the number of keyframes to describe must be 1 or more, not {count}")
    if len(positions) <= count:
        return list(positions)
    if count == 1:
        return [positions[len(positions) // 2]]
    return [positions[round(i * (len(positions) - 1) / (count - 1))] for i in range(count)]


def frame_chat(gar, tracks: VideoTracks, position: int):
    """A GAR conversation about the frame at ``position``; ``<Promptk>`` is region k's mask there."""
    masks = tracks.masks_at(position)
    if not masks:
        raise InputError("no region is on this frame; mark one or propagate first")
    return gar.chat(tracks.frame_image(position), masks)


def describe_over_time(
    gar,
    tracks: VideoTracks,
    key: int | str,
    count: int = 4,
    settings=None,
    instruction: str | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[FrameCaption]:
    """Caption region ``key`` on ``count`` frames spread over where it is present.

    Yields each caption as it is made and keeps it on the region (replacing earlier
    over-time captions), so stopping early keeps the captions made so far.
    """
    region = tracks.region(key)
    present = [p for p, here in enumerate(tracks.presence(region.index)) if here]
    if not present:
        raise InputError(f"{region.tag} is on no frame yet; propagate it first")
    chosen = spread(present, count)
    region.captions = []
    for position in chosen:
        if cancel is not None and cancel.is_set():
            return
        mask = tracks.mask(region.index, position)
        text = gar.describe(tracks.frame_image(position), np.asarray(mask), settings, instruction)
        caption = FrameCaption(position, text.strip())
        region.captions.append(caption)
        yield caption
