"""A video tracked on the canvas, the page's side: ``gar_app.tracking.video_workspace.VideoWorkspace``
does the work; this module finds it in the session and says what happened, in words.

``sync`` runs after every event (``Wiring.after``) and hands what the canvas changed on the
frame to the tracks; opening another image on the canvas ends tracking.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from components.session import Session
from gar_app.errors import GarAppError, InputError
from gar_app.formats.video_document import VideoDocument
from gar_app.tracking.tracks import Progress
from gar_app.tracking.video_workspace import DEFAULT_FPS_CAP, DEFAULT_MAX_FRAMES, VideoWorkspace

log = logging.getLogger("gar_app.tracking_ui")

FRAME_ONLY = "GAR is an image model: the chat and Describe see only the frame shown, with its masks."


def app_tracker(sam2: str | None, device: str | None = None, dtype: str | None = None):
    """At start-up: SAM 2 from ``--sam2`` when it loads, else the classical fallback, saying why."""
    from gar_app.tracking import load_tracker
    from gar_app.tracking.classical import ClassicalTracker

    if not sam2:
        return ClassicalTracker(reason="no SAM 2 weights")
    try:
        return load_tracker(sam2, device, dtype)
    except GarAppError as error:
        log.warning("no SAM 2 video tracker: %s", error)
        return ClassicalTracker(reason=f"SAM 2 did not load: {error}")


def require(session: Session) -> VideoWorkspace:
    if session.tracking is None:
        raise InputError(
            "no video is being tracked: open one in the Video tab and press Track regions in this video"
        )
    return session.tracking


def start(
    session: Session, path: str, name: str, fps_cap=DEFAULT_FPS_CAP, max_frames=DEFAULT_MAX_FRAMES
) -> str:
    """Open the video for tracking and put its first frame on the canvas."""
    video = VideoWorkspace.open(
        session.workspace, path, name, fps_cap, max_frames, replacing=session.tracking
    )
    session.tracking, session.pending_image = video, None
    clip = video.clip
    cap = f"at most {clip.fps_cap:g} fps" if clip.fps_cap else "every frame"
    cap += f", at most {clip.max_frames} frames" if clip.max_frames else ""
    return (
        f"Tracking {name}: {len(clip)} of its {clip.info.frame_count} frames ({cap}). "
        "Mark regions on any frame, then Propagate."
    )


def show(session: Session, position: int) -> None:
    """The frame at ``position`` on the canvas; a question about opening another image is dropped."""
    require(session).show(position)
    session.pending_image = None


def pick(session: Session, key: int | str) -> str | None:
    """Choose the region the next marks edit; one absent on this frame is marked here anew."""
    video = require(session)
    if video.pick(key):
        tag = video.tracks.region(key).tag
        return f"{tag} is not on this frame: the next mark puts it here (a keyframe; Propagate from it)."
    return None


def sync(session: Session) -> None:
    """After every event: what the canvas changed on the frame goes to the tracks."""
    video = session.tracking
    if video is not None and not video.sync():  # another image was opened on the canvas
        session.tracking = None


def propagate(session: Session, progress: Progress | None = None) -> str:
    """Track every region from its keyframes through the clip; Cancel stops it within a frame."""
    video = require(session)
    result = video.propagate(progress)
    session.pending_image = None
    if result.total == 0:
        return "Nothing to propagate: mark a region on a frame first (or mark it again on another frame)."
    if result.cancelled:
        return (
            f"Cancelled after {result.done} of {result.total} frames; the frames done are kept and "
            "the next Propagate carries on from there."
        )
    note = f"Propagated through {result.total} frames with the {video.tracks.tracker.name}."
    if result.carried:
        note += f" It carried on after the {result.carried} frames done before the Cancel."
    return note


def cancel(session: Session) -> None:
    if session.tracking is not None:
        session.tracking.cancel.set()


def describe_over_time(session: Session, count, settings=None) -> Iterator[str]:
    """Caption the selected region on ``count`` frames spread over its track; a note per caption."""
    video = require(session)
    region = video.tracks.region(video.selected_region())
    made = 0
    for caption in video.describe_over_time(region.index, int(count or 4), settings):
        made += 1
        yield f"{region.tag} on frame {caption.position}: {caption.text}"
    session.pending_image = None
    yield f"Pinned {made} caption(s) of {region.tag} to the timeline."


def preview(session: Session, progress: Progress | None = None) -> tuple[str, str]:
    """A WebM clip of the video with every region drawn on it; returns (path, note)."""
    video = require(session)
    path = video.preview(progress)
    return str(path), f"Preview of {video.name} with its regions: {path.name}."


def import_video(session: Session, document: VideoDocument) -> str:
    """Import JSON of a video document: its tracks, on the same video opened for tracking."""
    video = session.tracking
    if video is None:
        raise InputError(
            f"this is a tracked-video document of {document.video.name}: open that video in the Video tab, "
            "press Track regions in this video, then import it"
        )
    video.restore(document)
    session.pending_image = None
    return f"Imported {len(video.tracks.regions)} tracked region(s) over {len(video.clip)} frames of {video.name}."
