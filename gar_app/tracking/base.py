"""What every tracker does: carry regions' masks from a keyframe to the frames beside it.

A *run* is one propagation: from the keyframe at clip position ``start`` (or the frame
where a cancelled run carries on) towards ``stop`` (inclusive), forward or backward.
``Tracker.track`` yields each frame's masks in order, one frame at a time, so the caller can
show progress, store masks as they come and stop at any frame (closing the generator is all
a Cancel takes). A region the tracker cannot see on a frame (it left the picture, or is
hidden) gets ``None`` there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from gar_app.errors import InputError
from gar_app.images import check_mask_shape
from gar_app.segment.base import Prompt
from gar_app.video import Clip


@dataclass(frozen=True, order=True)
class Run:
    """Propagate from the masks on frame ``start`` through ``stop`` (either side of it)."""

    start: int
    stop: int

    @property
    def step(self) -> int:
        return 1 if self.stop >= self.start else -1

    @property
    def positions(self) -> range:
        """The frames the run computes, in order (the keyframe itself is not one of them)."""
        return range(self.start + self.step, self.stop + self.step, self.step)

    def __len__(self) -> int:
        return len(self.positions)


FrameMasks = dict[int, np.ndarray | None]  # region index -> its mask on one frame, None when absent


class Tracker(ABC):
    """A video segmenter: marks on one frame to a mask, and masks carried through a clip."""

    name: str = "tracker"

    @abstractmethod
    def segment(self, frame: np.ndarray, prompt: Prompt) -> np.ndarray:
        """The mask the marks ``prompt`` make on ``frame`` (H x W x 3 RGB)."""

    @abstractmethod
    def track(
        self, clip: Clip, run: Run, masks: Mapping[int, np.ndarray]
    ) -> Iterator[tuple[int, FrameMasks]]:
        """Carry ``masks`` (region index -> mask on frame ``run.start``) along ``run``.

        Yields ``(position, {region: mask or None})`` for every position of the run, in order.
        """


def check_keyframe_mask(mask: np.ndarray, clip: Clip) -> np.ndarray:
    """A region's mask on a keyframe, as a boolean array the size of the clip's frames."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise InputError(f"a region mask must be a 2-D array, not shape {array.shape}")
    check_mask_shape(array.shape, clip.info.width, clip.info.height, image="each video frame")
    array = array != 0
    if not array.any():
        raise InputError("the mask is empty: nothing was selected, so there is no region to track")
    return array
