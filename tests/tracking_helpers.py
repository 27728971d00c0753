"""Helpers for the app's tracking tests (gradio_client and browser): a tracker slow enough to
cancel half-way, and the server-side session tracking a given video."""

from __future__ import annotations

import time


class SlowTracker:
    """The classical tracker at 0.2 s a frame, so a Cancel lands in the middle of a propagation."""

    def __init__(self):
        from gar_app.tracking.classical import ClassicalTracker

        self.inner = ClassicalTracker()
        self.name = "slow tracker"

    def segment(self, frame, prompt):
        return self.inner.segment(frame, prompt)

    def track(self, clip, run, masks):
        for step in self.inner.track(clip, run, masks):
            time.sleep(0.2)
            yield step


def tracking_session(app, name: str):
    """The server-side ``Session`` of the page or client tracking the video ``name``."""
    from components.session import Session

    for state in list(app.demo.state_holder.session_data.values()):
        for value in list(state.state_data.values()):
            if isinstance(value, Session) and value.tracking is not None and value.tracking.name == name:
                return value
    raise AssertionError(f"no session tracks {name}")
