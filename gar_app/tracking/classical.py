"""Tracking without SAM 2 weights: each region's look followed frame to frame with OpenCV.

Per frame, for a region in view: predict its pose from its last move and turn, match the
keyframe look around there (``locate``), fit turn and shift exactly (``align``, ECC), and
place the keyframe mask there. Where that fit is only fair (the object bends or changes
look) or the object is half out of the picture, GrabCut re-fits the placed mask to the
edges. When nothing fits and less than a few percent of the object would still be on the
frame, the region has left: ``None``. While it is gone, every frame is searched for the
keyframe's colours; a blob that the object's shape fits (any turn, partly outside the
frame) brings it back, and tracking resumes once it is wholly in view.

Measured on the test clips (a textured shape moving, turning, leaving and coming back):
IoU >= 0.85 with the truth on every frame where at least 5% of the shape is in view. It is
a fallback: it knows one rigid look per keyframe, so objects that deform, turn away from
the camera or share their colours with the background need SAM 2 or more keyframes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import cv2
import numpy as np

import gar_app.tracking.appearance as look
from gar_app.segment.base import Prompt
from gar_app.segment.grabcut import GrabCutSegmenter
from gar_app.tracking.base import FrameMasks, Run, Tracker
from gar_app.video import Clip

GOOD, FAIR = 0.80, 0.50  # ECC scores: trust the rigid fit / re-fit it with GrabCut / not the object
LEFT = 0.03  # under this share of the object on the frame, it has left
BLOB = 0.03  # colour blobs smaller than this share of the object are not looked at
WORK_SIDE = 64.0  # objects are tracked at about this many pixels across (sqrt of the area)


class Follower:
    """One region followed from its keyframe through consecutive frames (either direction)."""

    def __init__(self, rgb: np.ndarray, mask: np.ndarray):
        self.shape = mask.shape
        self.scale = min(1.0, WORK_SIDE / math.sqrt(max(1, np.count_nonzero(mask))))
        small_mask = self._small(mask.astype(np.uint8), nearest=True).astype(bool)
        if not small_mask.any():
            small_mask = self._small(mask.astype(np.float32)) > 0
        self.model = look.appearance(self._small(rgb), small_mask)
        self.centre = self.model.centre
        self.margin = max(8, round(0.25 * max(self.model.mask.shape)))
        self.pose: np.ndarray | None = self.model.keyframe_pose()
        self.previous: np.ndarray | None = None
        self._full_mask, self._full_origin = self._full_crop(mask)

    # -- scales ---------------------------------------------------------------------------

    def _small(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        if self.scale == 1.0:
            return image
        size = (max(1, round(self.shape[1] * self.scale)), max(1, round(self.shape[0] * self.scale)))
        return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)

    def _full_crop(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The keyframe mask at full size, cropped to the model's crop (and where that crop starts)."""
        height, width = self.model.mask.shape
        x0, y0 = (math.floor(v / self.scale) for v in self.model.origin)
        x1 = min(self.shape[1], math.ceil((self.model.origin[0] + width) / self.scale) + 1)
        y1 = min(self.shape[0], math.ceil((self.model.origin[1] + height) / self.scale) + 1)
        return mask[y0:y1, x0:x1].astype(np.uint8), np.array([x0, y0], float)

    def _full(self, pose: np.ndarray) -> np.ndarray:
        """The keyframe mask placed at full size by a working-scale ``pose``."""
        # full crop pixel u -> keyframe full pixel u + F -> keyframe small pixel s(u + F) -> crop small
        # pixel s(u + F) - o -> current small pixel pose(...) -> current full pixel pose(...) / s
        s = self.scale
        inner = look.pose_matrix(0.0, *(s * self._full_origin - np.array(self.model.origin, float)))
        inner[:, :2] *= s
        outer = look.compose(pose, inner)
        outer /= s
        return look.place(self._full_mask, outer, self.shape)

    def _output(self, rgb: np.ndarray, small_rgb: np.ndarray, pose: np.ndarray, refit: bool) -> np.ndarray:
        if not refit:
            return self._full(pose)
        placed = look.place(self.model.mask, pose, small_rgb.shape[:2])
        fitted = look.grabcut_refit(small_rgb, placed)
        if self.scale == 1.0:
            return fitted
        return cv2.resize(fitted.astype(np.float32), (self.shape[1], self.shape[0])) >= 0.5

    def _shown(self, pose: np.ndarray, shape: tuple[int, int]) -> float:
        return np.count_nonzero(look.place(self.model.mask, pose, shape)) / max(1, self.model.area)

    # -- one frame ------------------------------------------------------------------------

    def step(self, rgb: np.ndarray) -> np.ndarray | None:
        """The region's mask on the next frame, or None when it is not in view."""
        small = self._small(rgb)
        feature = self.model.features(small)
        if self.pose is not None:
            return self._follow(rgb, small, feature)
        return self._search(rgb, small, feature)

    def _follow(self, rgb: np.ndarray, small: np.ndarray, feature: np.ndarray) -> np.ndarray | None:
        guess = look.predict(self.pose, self.previous, self.centre)
        near = look.locate(self.model, feature, guess, self.margin)
        starts = [guess] if near is None else [near, guess]
        score, pose = max(
            (look.align(self.model, feature, start, self.margin) for start in starts), key=lambda r: r[0]
        )
        shown = self._shown(pose, small.shape[:2])
        if score >= FAIR and shown >= LEFT:
            self.previous, self.pose = self.pose, pose
            return self._output(rgb, small, pose, refit=score < GOOD or shown < 0.6)
        # no fit: half out of the picture (ECC has too little to hold on to), hidden, or gone
        dead = near if near is not None else guess
        placed = look.place(self.model.mask, dead, small.shape[:2])
        shown = np.count_nonzero(placed) / max(1, self.model.area)
        if shown >= LEFT and self.model.likelihood(small)[placed].mean() >= 0.5:
            self.previous, self.pose = self.pose, dead
            return self._output(rgb, small, dead, refit=True)
        self.pose = self.previous = None
        return None

    def _search(self, rgb: np.ndarray, small: np.ndarray, feature: np.ndarray) -> np.ndarray | None:
        """Look for the object's colours; fit its shape to the biggest such blob."""
        likely = cv2.medianBlur((self.model.likelihood(small) > 0.5).astype(np.uint8), 3)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(likely)
        if count < 2:
            return None
        biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        if stats[biggest, cv2.CC_STAT_AREA] < BLOB * self.model.area:
            return None
        blob = labels == biggest
        fit = look.fit_to_blob(self.model, blob, angles=24)
        if fit is None:
            return None
        score, pose = look.align(self.model, feature, fit[1], self.margin)
        placed = look.place(self.model.mask, pose, small.shape[:2])
        agree = np.count_nonzero(placed & blob) / max(1, np.count_nonzero(placed | blob))
        shown = np.count_nonzero(placed) / max(1, self.model.area)
        if score >= FAIR and agree >= 0.6:
            if shown >= 0.9:  # wholly back in view: follow it again from here
                self.pose, self.previous = pose, None
            return self._output(rgb, small, pose, refit=shown < 0.6)
        if fit[0] >= 0.6:
            return self._output(rgb, small, fit[1], refit=True)
        return None


class ClassicalTracker(Tracker):
    """The fallback tracker; ``name`` says that it is one, and why (shown like the segmenter's)."""

    def __init__(self, reason: str | None = None):
        self.name = "classical OpenCV tracker (template matching + GrabCut)"
        if reason:
            self.name += f" — {reason}"
        self._segmenter = GrabCutSegmenter()

    def segment(self, frame: np.ndarray, prompt: Prompt) -> np.ndarray:
        self._segmenter.set_image(frame)
        return self._segmenter.segment_prompt(prompt).mask

    def track(
        self, clip: Clip, run: Run, masks: Mapping[int, np.ndarray]
    ) -> Iterator[tuple[int, FrameMasks]]:
        keyframe = clip.frame(run.start)
        followers = {region: Follower(keyframe, mask) for region, mask in masks.items()}
        del keyframe
        for position, rgb in clip.frames(run.positions):
            yield position, {region: follower.step(rgb) for region, follower in followers.items()}
