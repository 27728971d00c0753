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
progress and keeps every frame already tracked. The run it stopped is kept *paused* (the
tracker's own generator, with its state: its memory of the object, where it was last seen),
so the next ``propagate`` carries on from the next frame exactly as if there had been no
Cancel, and counts on from the frames already done. A mark on (or the removal of) one of
the paused run's regions drops it: that run starts again from its keyframe. Masks are kept
as COCO RLE, so a long clip's tracks take megabytes, not gigabytes.
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
from gar_app.tracking.base import FrameMasks, Run, Tracker, check_keyframe_mask
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

    def caption_at(self, position: int) -> str:
        """The caption pinned to the frame at ``position`` ("" when none)."""
        return next((c.text for c in self.captions if c.position == position), "")

    def pin_caption(self, position: int, text: str) -> None:
        """Pin ``text`` to the frame at ``position``, replacing the one there ("" removes it)."""
        captions = [c for c in self.captions if c.position != position]
        if text:
            captions.append(FrameCaption(position, text))
        self.captions = sorted(captions, key=lambda c: c.position)

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
    """What one ``propagate`` call did. ``done`` and ``total`` count the frames of the runs it
    worked on, including the ``carried`` frames that a cancelled ``propagate`` had done."""

    done: int  # frames done
    total: int  # frames to do
    cancelled: bool
    carried: int = 0  # of ``done``: frames done before this call (it carried on after a Cancel)


@dataclass
class _Work:
    """One run for ``propagate`` to compute: the frames left, and the tracker's paused run, if any."""

    keyframe_run: Run  # the whole run, from the keyframe
    regions: list[int]
    reached: int  # the last frame done (the keyframe when none)
    steps: Iterator[tuple[int, FrameMasks]] | None = None  # the tracker's run, paused after ``reached``

    @property
    def rest(self) -> Run:
        return Run(self.reached, self.keyframe_run.stop)

    @property
    def keys(self) -> set[tuple[int, int, int]]:
        run = self.keyframe_run
        return {(index, run.start, run.step) for index in self.regions}


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
        self._paused: _Work | None = None  # the run a Cancel stopped, to carry on with
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
        self._unpause(region.index)
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
        self._unpause(region.index)
        self._pending = {p for p in self._pending if p[:2] != (region.index, position)}
        heir = region.owner(position)
        self._pending |= {(region.index, heir, run.step) for run in region.runs(heir, len(self.clip))}

    def remove_region(self, key: int | str) -> TrackedRegion:
        region = self.region(key)
        del self.regions[region.index]
        self._unpause(region.index)
        self._pending = {p for p in self._pending if p[0] != region.index}
        return region

    # -- propagation ----------------------------------------------------------------------

    def pending_runs(self) -> dict[Run, list[int]]:
        """The runs still to compute (a paused one from the frame after the last done), each with
        the regions it carries."""
        runs: dict[Run, list[int]] = {}
        for work in self._work():
            runs.setdefault(work.rest, []).extend(work.regions)
        return runs

    def _work(self) -> list[_Work]:
        """The pending runs, the paused one with its tracker state, in the order they are computed."""
        paused = self._paused
        work = [paused] if paused is not None else []
        groups: dict[Run, list[int]] = {}
        for index, keyframe, step in sorted(self._pending - (paused.keys if paused else set())):
            for run in self.regions[index].runs(keyframe, len(self.clip)):
                if run.step == step:
                    groups.setdefault(run, []).append(index)
        work += [_Work(run, indices, run.start) for run, indices in groups.items()]
        return sorted(work, key=lambda w: (w.rest.start, w.rest.step))

    def _unpause(self, index: int) -> None:
        """A change to one of the paused run's regions: that run starts again from its keyframe."""
        if self._paused is not None and index in self._paused.regions:
            self._paused.steps.close()
            self._paused = None

    def propagate(
        self, progress: Progress | None = None, cancel: threading.Event | None = None
    ) -> Propagation:
        """Compute every pending run, frame by frame (see the module docstring for Cancel)."""
        if not self._lock.acquire(blocking=False):
            raise InputError("a propagation is already running for this video; wait for it or cancel it")
        try:
            work = self._work()
            carried = sum(len(w.keyframe_run) - len(w.rest) for w in work)
            total, done = carried + sum(len(w.rest) for w in work), carried
            if progress is not None:
                progress(done, total)
            for item in work:
                if cancel is not None and cancel.is_set():
                    return Propagation(done, total, True, carried)
                if item.steps is None:
                    masks = {i: self.mask(i, item.keyframe_run.start) for i in item.regions}
                    item.steps = self.tracker.track(self.clip, item.keyframe_run, masks)
                self._paused = None
                try:
                    for position, found in item.steps:
                        for index, mask in found.items():
                            self.regions[index].masks[position] = None if mask is None else mask_to_rle(mask)
                        item.reached, done = position, done + 1
                        if progress is not None:
                            progress(done, total)
                        if cancel is not None and cancel.is_set() and position != item.keyframe_run.stop:
                            self._paused = item
                            return Propagation(done, total, True, carried)
                finally:
                    if self._paused is not item:
                        item.steps.close()
                self._pending -= item.keys
            return Propagation(done, total, False, carried)
        finally:
            self._lock.release()

    def close(self) -> None:
        """Let go of a paused run's tracker state and of the video file."""
        if self._paused is not None:
            self._paused.steps.close()
            self._paused = None
        self.clip.close()

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
            regions.add(
                mask,
                keyframe.source if keyframe else "mask",
                keyframe.prompt if keyframe else None,
                region.caption_at(position),
                index=index,
            )
        return regions

    def frame_image(self, position: int) -> Image.Image:
        return Image.fromarray(np.array(self.clip.frame(position)))

    def render(self, position: int, selected: int | str | None = None) -> np.ndarray:
        """The frame at ``position`` with its regions drawn on it (RGB array)."""
        from gar_app.regions import render_overlay

        return render_overlay(np.array(self.clip.frame(position)), self.regions_at(position), selected)
