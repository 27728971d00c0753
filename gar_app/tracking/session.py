"""One video's tracked regions: keyframes, per-frame masks, captions — what the UI and CLI call.

A region is marked on a frame (its first *keyframe*, the region's *anchor*) and propagated
through the clip. Marking it again on another frame adds a keyframe there (refinement).
Every frame's mask comes from exactly one keyframe, the one that *owns* the frame:

- frames after the anchor are owned by the nearest keyframe at or before them (tracked
  forward from it);
- frames before the anchor by the nearest keyframe at or after them (tracked backward).

So a new mark on frame r changes the track *from r on, away from the anchor*: for r after
the anchor, frames r .. (next keyframe - 1) or the end; for r before it, frames
(previous keyframe + 1) .. r or the start. Nothing on the anchor's side of r changes, and
neither does anything past the next keyframe. Marking the anchor again re-runs both of its
sides. Removing a keyframe hands its frames back to the keyframe that owned them before.

``mark`` only records what has to be recomputed; ``propagate`` does it, frame by frame,
with a progress callback and a ``threading.Event`` to cancel: it stops after the frame in
progress, keeps every frame already tracked, and leaves the interrupted runs pending (the
next ``propagate`` runs them again from their keyframe). Masks are kept as COCO RLE, so a
long clip's tracks take megabytes, not gigabytes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from gar_app.errors import InputError
from gar_app.regions import RegionSet, region_colour
from gar_app.rle import mask_to_rle, rle_to_mask
from gar_app.segment.base import Prompt
from gar_app.tags import parse_tag, tag
from gar_app.tracking.base import Run, Tracker, check_keyframe_mask
from gar_app.video import Clip

Progress = Callable[[int, int], None]  # (frames done, frames to do)


@dataclass(frozen=True)
class Keyframe:
    position: int
    source: str  # how its mask was made: points / box / scribble / mask
    prompt: Prompt | None = None


@dataclass(frozen=True)
class FrameCaption:
    """A caption of a region on one frame (*Describe over time* pins these to the timeline)."""

    position: int
    text: str


@dataclass
class TrackedRegion:
    """A region through the clip. Tag and colour follow the index, as for image regions."""

    index: int
    anchor: int  # position of the first keyframe
    keyframes: dict[int, Keyframe] = field(default_factory=dict)
    masks: dict[int, dict | None] = field(default_factory=dict)  # position -> RLE, None where absent
    captions: list[FrameCaption] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return tag(self.index)

    @property
    def colour(self) -> str:
        return region_colour(self.index)

    def owner(self, position: int) -> int:
        """The keyframe whose propagation gives ``position`` its mask (see the module docstring)."""
        if position >= self.anchor:
            return max(k for k in self.keyframes if k <= position)
        return min(k for k in self.keyframes if k >= position)

    def runs(self, keyframe: int, length: int) -> list[Run]:
        """The frames ``keyframe`` owns, as runs away from it (none of length 0)."""
        runs = []
        if keyframe >= self.anchor:
            later = [k for k in self.keyframes if k > keyframe]
            runs.append(Run(keyframe, min(later) - 1 if later else length - 1))
        if keyframe <= self.anchor:
            earlier = [k for k in self.keyframes if k < keyframe]
            runs.append(Run(keyframe, max(earlier) + 1 if earlier else 0))
        return [run for run in runs if len(run)]


@dataclass(frozen=True)
class Propagation:
    """What one ``propagate`` call did."""

    done: int  # frames computed
    total: int  # frames it had to compute
    cancelled: bool


class VideoTracks:
    """The regions tracked through one clip, with the tracker that computes their masks.

    ``limit`` is the model's ``prompt_numbers`` (regions ``<Prompt0>`` .. ``<Prompt{limit-1}>``),
    None for annotating without a model.
    """

    def __init__(self, clip: Clip, tracker: Tracker, limit: int | None = None):
        self.clip = clip
        self.tracker = tracker
        self.limit = limit
        self.regions: dict[int, TrackedRegion] = {}
        self._pending: set[tuple[int, int, int]] = set()  # (region, keyframe, direction +1/-1)
        self._lock = threading.Lock()  # one propagation at a time

    # -- regions and marks ----------------------------------------------------------------

    def region(self, key: int | str) -> TrackedRegion:
        index = parse_tag(key)
        if index not in self.regions:
            have = ", ".join(r.tag for r in self) or "none yet"
            raise InputError(f"there is no tracked region {tag(index)} (regions: {have})")
        return self.regions[index]

    def __iter__(self) -> Iterator[TrackedRegion]:
        return iter([self.regions[i] for i in sorted(self.regions)])

    def _mask_for(self, position: int, mask: np.ndarray | None, prompt: Prompt | None) -> np.ndarray:
        self.clip.check_position(position)
        if (mask is None) == (prompt is None):
            raise InputError("mark a region with either marks (points, box, scribble) or a mask, not both")
        if mask is None:
            mask = self.tracker.segment(self.clip.frame(position), prompt)
        return check_keyframe_mask(mask, self.clip)

    def add_region(
        self,
        position: int,
        mask: np.ndarray | None = None,
        prompt: Prompt | None = None,
        index: int | None = None,
    ) -> TrackedRegion:
        """A new region marked on the frame at ``position`` (lowest free index unless given)."""
        if index is None:
            if self.limit is not None and len(self.regions) >= self.limit:
                raise InputError(
                    f"at most {self.limit} regions with this model; remove one before adding another"
                )
            index = next(i for i in range(len(self.regions) + 1) if i not in self.regions)
        elif index in self.regions or index < 0 or (self.limit is not None and index >= self.limit):
            raise InputError(
                f"cannot add {tag(index)}: the index must be free and within the model's regions"
            )
        array = self._mask_for(position, mask, prompt)
        region = TrackedRegion(index, anchor=position)
        self.regions[index] = region
        self._set_keyframe(region, position, array, prompt)
        return region

    def mark(
        self, key: int | str, position: int, mask: np.ndarray | None = None, prompt: Prompt | None = None
    ) -> list[Run]:
        """Mark an existing region again on frame ``position`` (refinement); returns the runs
        that the next ``propagate`` will compute for it."""
        region = self.region(key)
        array = self._mask_for(position, mask, prompt)
        return self._set_keyframe(region, position, array, prompt)

    def _set_keyframe(
        self, region: TrackedRegion, position: int, mask: np.ndarray, prompt: Prompt | None
    ) -> list[Run]:
        region.keyframes[position] = Keyframe(position, "mask" if prompt is None else prompt.source, prompt)
        region.masks[position] = mask_to_rle(mask)
        runs = region.runs(position, len(self.clip))
        self._pending |= {(region.index, position, run.step) for run in runs}
        return runs

    def remove_keyframe(self, key: int | str, position: int) -> None:
        """Forget a keyframe; its frames go back to the keyframe that owned them before."""
        region = self.region(key)
        if position not in region.keyframes:
            raise InputError(f"{region.tag} has no keyframe at frame position {position}")
        if position == region.anchor:
            raise InputError(f"{region.tag} was first marked on this frame; remove the region instead")
        del region.keyframes[position]
        self._pending = {p for p in self._pending if p[:2] != (region.index, position)}
        heir = region.owner(position)
        self._pending |= {(region.index, heir, run.step) for run in region.runs(heir, len(self.clip))}

    def remove_region(self, key: int | str) -> TrackedRegion:
        region = self.region(key)
        del self.regions[region.index]
        self._pending = {p for p in self._pending if p[0] != region.index}
        return region

    # -- propagation ----------------------------------------------------------------------

    def pending_runs(self) -> dict[Run, list[int]]:
        """The runs still to compute, each with the regions it carries."""
        runs: dict[Run, list[int]] = {}
        for index, keyframe, step in sorted(self._pending):
            for run in self.regions[index].runs(keyframe, len(self.clip)):
                if run.step == step:
                    runs.setdefault(run, []).append(index)
        return runs

    def propagate(
        self, progress: Progress | None = None, cancel: threading.Event | None = None
    ) -> Propagation:
        """Compute every pending run, frame by frame (see the module docstring for Cancel)."""
        if not self._lock.acquire(blocking=False):
            raise InputError("a propagation is already running for this video; wait for it or cancel it")
        try:
            runs = self.pending_runs()
            total, done = sum(len(run) for run in runs), 0
            if progress is not None:
                progress(0, total)
            for run, indices in sorted(runs.items(), key=lambda item: (item[0].start, item[0].step)):
                masks = {i: self.mask(i, run.start) for i in indices}
                steps = self.tracker.track(self.clip, run, masks)
                try:
                    for position, found in steps:
                        for index, mask in found.items():
                            self.regions[index].masks[position] = None if mask is None else mask_to_rle(mask)
                        done += 1
                        if progress is not None:
                            progress(done, total)
                        if cancel is not None and cancel.is_set():
                            return Propagation(done, total, cancelled=True)
                finally:
                    steps.close()
                self._pending -= {(i, run.start, run.step) for i in indices}
            return Propagation(done, total, cancelled=False)
        finally:
            self._lock.release()

    # -- reading the tracks ---------------------------------------------------------------

    def mask(self, key: int | str, position: int) -> np.ndarray | None:
        """A region's mask on the frame at ``position``; None where it is absent or not tracked yet."""
        rle = self.region(key).masks.get(position)
        return None if rle is None else rle_to_mask(rle)

    def masks_at(self, position: int) -> dict[int, np.ndarray]:
        """Every region present on the frame at ``position``: index -> mask."""
        self.clip.check_position(position)
        return {r.index: rle_to_mask(r.masks[position]) for r in self if r.masks.get(position) is not None}

    def presence(self, key: int | str) -> list[bool]:
        """Per frame position, whether the region has a mask there (the timeline's bar)."""
        masks = self.region(key).masks
        return [masks.get(p) is not None for p in range(len(self.clip))]

    def regions_at(self, position: int) -> RegionSet:
        """The frame's regions as a ``RegionSet`` (same tags and colours), for the chat and the overlay.

        Captions are the region's caption on that frame when it has one (*Describe over time*).
        """
        regions = RegionSet(self.limit, (self.clip.info.height, self.clip.info.width))
        for index, mask in self.masks_at(position).items():
            region = self.regions[index]
            keyframe = region.keyframes.get(position)
            caption = next((c.text for c in region.captions if c.position == position), "")
            regions.add(
                mask,
                keyframe.source if keyframe else "mask",
                keyframe.prompt if keyframe else None,
                caption,
                index=index,
            )
        return regions

    def frame_image(self, position: int) -> Image.Image:
        return Image.fromarray(np.array(self.clip.frame(position)))

    def render(self, position: int, selected: int | str | None = None) -> np.ndarray:
        """The frame at ``position`` with its regions drawn on it (RGB array)."""
        from gar_app.regions import render_overlay

        return render_overlay(np.array(self.clip.frame(position)), self.regions_at(position), selected)
