"""Turning a painted area into a few well-spread points (SAM takes points, not strokes)."""

from __future__ import annotations

import numpy as np

MAX_SCRIBBLE_POINTS = 8


def spread_points(mask: np.ndarray, count: int = MAX_SCRIBBLE_POINTS, pool: int = 4096) -> np.ndarray:
    """Up to ``count`` pixel centres ``(x, y)`` of ``mask``, spread by farthest-point sampling.

    Deterministic (no randomness), so the same scribble always gives the same mask. The
    first point is the mask pixel nearest to its centroid; large masks are thinned to a
    regular subset of ``pool`` pixels first so this stays cheap on big strokes.
    """
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return np.zeros((0, 2))
    step = max(1, xs.size // pool)
    coords = np.stack([xs[::step], ys[::step]], axis=1).astype(np.float64)
    centre = coords.mean(axis=0)
    chosen = [int(np.argmin(((coords - centre) ** 2).sum(axis=1)))]
    distance = ((coords - coords[chosen[0]]) ** 2).sum(axis=1)
    while len(chosen) < min(count, len(coords)):
        nxt = int(np.argmax(distance))
        if distance[nxt] == 0:
            break
        chosen.append(nxt)
        distance = np.minimum(distance, ((coords - coords[nxt]) ** 2).sum(axis=1))
    return coords[chosen]
