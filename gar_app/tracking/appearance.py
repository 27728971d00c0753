"""The pieces of the classical tracker: an object's look, and ways to find it on a frame.

A region is modelled by its look on the keyframe and a *pose*, the rigid transform (turn +
shift) that places that look on the current frame; poses are 2 x 3 matrices from model-crop
pixels to frame pixels. The look is a *feature image* mixing brightness (the texture) with
how object-like each pixel's colour is (the silhouette, from colour histograms inside and
around the keyframe mask), compared over the object and a thin ring around it: texture
alone lets a striped object slip by one stripe, colour alone cannot see it turn.

``align`` fits a pose with OpenCV's ECC (dense, sub-pixel template matching), which follows
turns as well as moves and works when part of the object is outside the frame; ``locate``
(coarse template matching over the visible part) gets it close first; ``fit_to_blob`` finds
the object again from where the frame has its colours; ``grabcut_refit`` re-fits a mask to
the object's edges where the rigid model no longer fits well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

BINS = 16  # colour histogram bins per channel
_ECC_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 60, 1e-5)


def colour_bins(rgb: np.ndarray) -> np.ndarray:
    q = (rgb // (256 // BINS)).astype(np.int32)
    return (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]


def features(rgb: np.ndarray, histogram: np.ndarray) -> np.ndarray:
    """Half brightness, half object-likeness of each pixel's colour (float32, 0..255)."""
    brightness = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return 0.5 * brightness + 127.5 * histogram[colour_bins(rgb)]


@dataclass(eq=False)
class Appearance:
    """An object as it looked on its keyframe, at the tracker's working scale."""

    feature: np.ndarray  # float32 feature image of a crop around the object
    mask: np.ndarray  # uint8 0/1, the object inside the crop
    weights: np.ndarray  # uint8 0/1, the object and a thin ring of what surrounds it
    origin: tuple[int, int]  # (x, y) of the crop on the keyframe
    histogram: np.ndarray  # P(object | colour) per colour bin, from the keyframe

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def centre(self) -> np.ndarray:
        ys, xs = np.nonzero(self.mask)
        return np.array([xs.mean(), ys.mean()])

    def keyframe_pose(self) -> np.ndarray:
        return pose_matrix(0.0, *self.origin)

    def likelihood(self, rgb: np.ndarray) -> np.ndarray:
        """P(object | colour) per pixel of a frame."""
        return self.histogram[colour_bins(rgb)]

    def features(self, rgb: np.ndarray) -> np.ndarray:
        return features(rgb, self.histogram)


def appearance(rgb: np.ndarray, mask: np.ndarray) -> Appearance:
    """The model of the object ``mask`` marks on ``rgb`` (both at working scale)."""
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    extent = int(max(np.ptp(xs) + 1, np.ptp(ys) + 1))
    pad = max(4, round(0.15 * extent))
    x0, y0 = max(0, xs.min() - pad), max(0, ys.min() - pad)
    x1, y1 = min(width, xs.max() + 1 + pad), min(height, ys.max() + 1 + pad)
    bins = colour_bins(rgb)
    inside = np.bincount(bins[mask], minlength=BINS**3).astype(np.float64)
    near = (
        cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(8, pad)).astype(bool)
        & ~mask
    )
    around = np.bincount(bins[near if near.any() else ~mask], minlength=BINS**3).astype(np.float64)
    p_in, p_out = inside / max(1.0, inside.sum()), around / max(1.0, around.sum())
    histogram = (p_in / np.maximum(p_in + p_out, 1e-12)).astype(np.float32)
    crop = (slice(y0, y1), slice(x0, x1))
    object_mask = mask[crop].astype(np.uint8)
    ring = max(2, round(0.06 * extent))
    weights = cv2.dilate(
        object_mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring + 1, 2 * ring + 1))
    )
    return Appearance(features(rgb[crop], histogram), object_mask, weights, (int(x0), int(y0)), histogram)


# ---------------------------------------------------------------- poses


def pose_matrix(angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]], np.float64)


def pose_angle(pose: np.ndarray) -> float:
    return math.atan2(pose[1, 0], pose[0, 0])


def apply(pose: np.ndarray, point: np.ndarray) -> np.ndarray:
    return pose[:, :2] @ point + pose[:, 2]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``outer`` after ``inner`` (2 x 3 affine matrices)."""
    out = outer[:, :2] @ inner
    out[:, 2] += outer[:, 2]
    return out


def predict(pose: np.ndarray, previous: np.ndarray | None, centre: np.ndarray) -> np.ndarray:
    """The next pose if the object keeps its last shift and turn (constant velocity)."""
    if previous is None:
        return pose
    turn = (pose_angle(pose) - pose_angle(previous) + math.pi) % (2 * math.pi) - math.pi
    moved = pose_matrix(pose_angle(pose) + turn, 0.0, 0.0)
    moved[:, 2] = 2 * apply(pose, centre) - apply(previous, centre) - moved[:, :2] @ centre
    return moved


def place(mask: np.ndarray, pose: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``mask`` (a model crop's) put on a frame of ``shape`` (H, W) at ``pose``; clipped at the edges."""
    warped = cv2.warpAffine(mask.astype(np.float32), pose, (shape[1], shape[0]), flags=cv2.INTER_LINEAR)
    return warped >= 0.5


def _turned(model: Appearance, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model turned by ``angle`` about its crop's centre, on a square canvas that holds it
    whole: (model pixels -> canvas pixels, feature image, weights)."""
    height, width = model.mask.shape
    side = int(math.ceil(math.hypot(height, width))) + 2
    turn = pose_matrix(angle, 0.0, 0.0)
    turn[:, 2] = side / 2 - turn[:, :2] @ np.array([width / 2, height / 2])
    feature = cv2.warpAffine(model.feature, turn, (side, side), flags=cv2.INTER_LINEAR)
    weights = cv2.warpAffine(model.weights.astype(np.float32), turn, (side, side), flags=cv2.INTER_LINEAR)
    return turn, feature, (weights >= 0.5).astype(np.uint8)


def _shrink(image: np.ndarray, scale: float, nearest: bool = False) -> np.ndarray:
    if scale == 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def _rescale_warp(warp: np.ndarray, scale: float) -> np.ndarray:
    """The same rigid warp between images both scaled by ``scale``."""
    out = warp.copy()
    out[:, 2] *= scale
    return out


# ---------------------------------------------------------------- finding the object


def align(
    model: Appearance, frame_features: np.ndarray, pose: np.ndarray, margin: int
) -> tuple[float, np.ndarray]:
    """Refine ``pose`` so the model matches the frame (ECC, rigid); returns (score, pose).

    OpenCV's rigid ECC reads the turn back with ``asin``, so it only handles turns under 90
    degrees: the model is first turned by the guessed angle and ECC solves the small rest,
    coarse to fine. The score is ECC's correlation over the model's pixels that land on the
    frame (1 is a perfect match); -1 when too little is on the frame or ECC does not converge.
    """
    turn, turned_feature, turned_weights = _turned(model, pose_angle(pose))
    start = compose(pose, cv2.invertAffineTransform(turn))  # turned-model pixels -> frame, nearly unturned
    height, width = frame_features.shape
    side = turned_weights.shape[0]
    corners = np.array([[0, 0], [side, 0], [0, side], [side, side]], float) @ start[:, :2].T + start[:, 2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + margin
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return -1.0, pose
    window = np.ascontiguousarray(frame_features[y0:y1, x0:x1])
    local = start.copy()
    local[:, 2] -= (x0, y0)
    warp = cv2.invertAffineTransform(local).astype(np.float32)  # window pixels -> turned-model pixels
    levels = [scale for scale in (0.25, 0.5) if min(model.mask.shape) * scale >= 24] + [1.0]
    score = -1.0
    for scale in levels:
        try:
            score, scaled = cv2.findTransformECC(
                _shrink(window, scale),
                _shrink(turned_feature, scale),
                _rescale_warp(warp, scale),
                cv2.MOTION_EUCLIDEAN,
                _ECC_CRITERIA,
                _shrink(turned_weights, scale, nearest=True),
                5 if scale == 1.0 else 3,
            )
        except cv2.error:
            if scale < 1.0:
                continue  # too coarse to settle; the finer levels start from the guess
            return -1.0, pose
        warp = _rescale_warp(scaled, 1.0 / scale)
    found = cv2.invertAffineTransform(warp).astype(np.float64)
    found[:, 2] += (x0, y0)
    return float(score), compose(found, turn)


def locate(model: Appearance, frame_features: np.ndarray, pose: np.ndarray, radius: int) -> np.ndarray | None:
    """Shift ``pose`` to where the turned model best matches the frame, within ``radius`` px.

    Template matching (least squares) on the feature images at about 32 px per object, so a
    big move lands close enough for ECC to finish. Only the part of the object that would be
    on the frame is compared (each sum is split into correlations with the frame's validity),
    so an object half out of the picture is still found. Places where under a tenth of the
    object would show are not considered; None when none is left.
    """
    turn, turned_feature, turned_weights = _turned(model, pose_angle(pose))
    x, y = compose(pose, cv2.invertAffineTransform(turn))[:, 2]
    side = turned_weights.shape[0]
    scale = min(1.0, 32.0 / max(1.0, math.sqrt(model.area)))
    height, width = frame_features.shape
    x0, y0 = round(x) - radius, round(y) - radius  # the search window, maybe past the frame's edges
    x1, y1 = round(x) + side + radius, round(y) + side + radius
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    window = np.zeros((y1 - y0, x1 - x0), np.float32)
    valid = np.zeros((y1 - y0, x1 - x0), np.float32)
    window[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = frame_features[cy0:cy1, cx0:cx1]
    valid[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = 1.0
    window, valid = _shrink(cv2.GaussianBlur(window, (0, 0), 1.5), scale), _shrink(valid, scale, nearest=True)
    template = _shrink(cv2.GaussianBlur(turned_feature, (0, 0), 1.5), scale)
    weights = _shrink(turned_weights, scale, nearest=True).astype(np.float32)
    # sum over shown pixels of w (I - T)^2 = w I^2 - 2 w I T + w T^2, each term a correlation
    shown = cv2.matchTemplate(valid, weights, cv2.TM_CCORR)
    cost = (
        cv2.matchTemplate(window * window, weights, cv2.TM_CCORR)
        - 2 * cv2.matchTemplate(window, weights * template, cv2.TM_CCORR)
        + cv2.matchTemplate(valid, weights * template * template, cv2.TM_CCORR)
    )
    enough = shown >= 0.1 * weights.sum()
    if not enough.any():
        return None
    cost = np.where(enough, cost / np.maximum(shown, 1.0), np.inf)
    by, bx = np.unravel_index(int(np.argmin(cost)), cost.shape)
    shifted = pose.copy()
    shifted[:, 2] += (x0 + bx / scale - x, y0 + by / scale - y)
    return shifted


def fit_to_blob(model: Appearance, blob: np.ndarray, angles: int = 12) -> tuple[float, np.ndarray] | None:
    """The pose (any turn, any shift, partly off the frame too) whose mask best covers ``blob``.

    Finds the object again after it left, from where the frame has its colours. Pixels of the
    placed mask outside the frame are not counted against a pose, so an object coming back in
    at the edge is found from the part already in. Searched around the blob only, at about
    32 px per object. Returns (IoU on the frame, pose).
    """
    ys, xs = np.nonzero(blob)
    if xs.size == 0:
        return None
    scale = min(1.0, 32.0 / max(1.0, math.sqrt(model.area)))
    size = int(math.ceil(math.hypot(*model.mask.shape) * scale)) + 2  # a stamp holds the model at any turn
    height, width = blob.shape
    # the blob's surroundings (a stamp beyond its box each way), the frame's edges marked by validity
    x0, y0 = xs.min() - round(size / scale), ys.min() - round(size / scale)
    x1, y1 = xs.max() + 1 + round(size / scale), ys.max() + 1 + round(size / scale)
    area = np.zeros((y1 - y0, x1 - x0), np.float32)
    valid = np.zeros_like(area)
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    area[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = blob[cy0:cy1, cx0:cx1]
    valid[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = 1.0
    area, valid = _shrink(area, scale), _shrink(valid, scale, nearest=True)
    blob_area = float(area.sum())
    centre = model.centre
    small = _shrink(model.mask, scale, nearest=True)
    best: tuple[float, np.ndarray] | None = None
    for k in range(angles):
        turned = pose_matrix(2 * math.pi * k / angles, 0.0, 0.0)
        turned[:, 2] = size / 2 - turned[:, :2] @ (centre * scale)  # model centre to the stamp's middle
        stamp = place(small, turned, (size, size)).astype(np.float32)
        overlap = cv2.matchTemplate(area, stamp, cv2.TM_CCORR)
        shown = cv2.matchTemplate(valid, stamp, cv2.TM_CCORR)
        iou = overlap / np.maximum(shown + blob_area - overlap, 1.0)
        _, score, _, (x, y) = cv2.minMaxLoc(iou)
        if best is None or score > best[0]:
            pose = turned.copy()
            pose[:, 2] += (x, y)
            pose[:, 2] /= scale  # back to working pixels; the turn is the same at any scale
            pose[:, 2] += (x0, y0)
            best = (float(score), pose)
    return best


def grabcut_refit(rgb: np.ndarray, mask: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Re-fit a roughly placed mask to the object's edges with GrabCut, in a crop around it."""
    ys, xs = np.nonzero(mask)
    if xs.size < 16:
        return mask
    height, width = mask.shape
    band = max(2, round(0.12 * math.sqrt(xs.size)))
    x0, y0 = max(0, xs.min() - 3 * band), max(0, ys.min() - 3 * band)
    x1, y1 = min(width, xs.max() + 1 + 3 * band), min(height, ys.max() + 1 + 3 * band)
    crop = mask[y0:y1, x0:x1].astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    trimap = np.full(crop.shape, cv2.GC_BGD, np.uint8)
    trimap[cv2.dilate(crop, kernel) > 0] = cv2.GC_PR_BGD
    trimap[crop > 0] = cv2.GC_PR_FGD
    trimap[cv2.erode(crop, kernel) > 0] = cv2.GC_FGD
    if not (trimap == cv2.GC_BGD).any() or not (trimap == cv2.GC_FGD).any():
        return mask
    image = np.ascontiguousarray(cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2BGR))
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(image, trimap, None, background, foreground, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return mask
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = (trimap == cv2.GC_FGD) | (trimap == cv2.GC_PR_FGD)
    return out
