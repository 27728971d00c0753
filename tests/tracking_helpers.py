"""Helpers for the tracking tests: a tracker whose masks say which keyframe they came from, a
tracker slow enough to cancel half-way, and the server-side session tracking a given video."""

from __future__ import annotations

import time

import numpy as np

from gar_app.tracking.base import Run, Tracker


class Copier(Tracker):
    """Gives every frame of a run the keyframe's mask: which keyframe owns a frame shows directly."""

    name = "copier"

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.computed: list[int] = []

    def segment(self, frame, prompt):
        x1, y1, x2, y2 = (int(v) for v in prompt.box)
        mask = np.zeros(frame.shape[:2], bool)
        mask[y1:y2, x1:x2] = True
        return mask

    def track(self, clip, run: Run, masks):
        for position in run.positions:
            time.sleep(self.delay)
            self.computed.append(position)
            yield position, dict(masks)


class SlowTracker:
    """The classical tracker at ``seconds`` a frame (0.2: a Cancel lands in the middle of a
    propagation), noting when each frame is done (``done_at[n]``: the n-th frame, 1-based)."""

    def __init__(self, seconds: float = 0.2):
        from gar_app.tracking.classical import ClassicalTracker

        self.inner = ClassicalTracker()
        self.seconds = seconds
        self.name = "slow tracker"
        self.done_at: list[float] = [-1.0]  # (none at 0)

    def segment(self, frame, prompt):
        return self.inner.segment(frame, prompt)

    def track(self, clip, run, masks):
        for step in self.inner.track(clip, run, masks):
            time.sleep(self.seconds)
            self.done_at.append(time.monotonic())
            yield step


def tracking_session(app, name: str):
    """The server-side ``Session`` of the page or client tracking the video ``name``."""
    from components.session import Session

    for state in list(app.demo.state_holder.session_data.values()):
        for value in list(state.state_data.values()):
            if isinstance(value, Session) and value.tracking is not None and value.tracking.name == name:
                return value
    raise AssertionError(f"no session tracks {name}")
