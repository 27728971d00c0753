"""A video tracked on the canvas: the page's side of ``gar_app.tracking.VideoTracks``.

While a video is tracked, the workspace's image is the *current frame* and its regions are
the tracked masks on that frame, so the canvas, the region list, Describe and the chat work
on a frame exactly as on an image (GAR is an image model: it sees only that frame). After
every event, ``sync`` hands what the canvas changed on the frame to the tracks:

- a region whose mask changed on this frame is marked again there (a keyframe: the next
  Propagate recomputes the frames it owns, see ``gar_app.tracking.session``);
- a new region starts a track, anchored on this frame;
- a region deleted on a frame is deleted from the whole video;
- a caption typed or described on a frame is pinned to that frame.

Opening another image on the canvas ends tracking. Frames are decoded one at a time from
the lazy ``Clip``; masks stay RLE in the tracks, and the browser gets them as compact masks
like any image's regions.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from components.session import Session
from gar_app.errors import GarAppError, InputError
from gar_app.formats.document import VideoFrame
from gar_app.formats.video_document import VideoDocument, video_to_json
from gar_app.rle import mask_to_rle
from gar_app.tracking.session import FrameCaption, Keyframe, VideoTracks
from gar_app.workspace import Services

log = logging.getLogger("gar_app.tracking_ui")

DEFAULT_FPS_CAP = 10.0
DEFAULT_MAX_FRAMES = 300
FRAME_ONLY = "GAR is an image model: the chat and Describe see only the frame shown, with its masks."


@dataclass(eq=False)
class Tracking:
    """One tracked video: the tracks, the frame on the canvas, and the Cancel switch."""

    tracks: VideoTracks
    name: str  # the video's name as the person uploaded it
    position: int = 0  # the frame on the canvas
    frame: Image.Image | None = None  # the workspace image that is that frame
    synced: tuple = ()  # (marking id, version) last handed to the tracks
    cancel: threading.Event = field(default_factory=threading.Event)
    dirty: bool = False  # work since the last export or import
    target: int | None = None  # a region absent on this frame that the next new mark re-marks here
    loaded: dict = field(default_factory=dict)  # region -> its mask (RLE) on this frame when it was shown
    keyed: set = field(default_factory=set)  # regions that had a keyframe on this frame when it was shown
    _files: Path | None = None

    @property
    def clip(self):
        return self.tracks.clip

    def files(self) -> Path:
        """This video's folder for preview clips (removed when tracking ends)."""
        if self._files is None or not self._files.exists():
            self._files = Path(tempfile.mkdtemp(prefix="gar-track-"))
        return self._files

    def close(self) -> None:
        self.cancel.set()
        self.tracks.clip.close()
        if self._files is not None:
            shutil.rmtree(self._files, ignore_errors=True)


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


def tracker_of(services: Services):
    """The app's tracker: SAM 2 when started with one, else the classical fallback (made once)."""
    if services.tracker is None:
        from gar_app.tracking.classical import ClassicalTracker

        services.tracker = ClassicalTracker(reason="no SAM 2 weights")
    return services.tracker


def require(session: Session) -> Tracking:
    if session.tracking is None:
        raise InputError(
            "no video is being tracked: open one in the Video tab and press Track regions in this video"
        )
    return session.tracking


def _sampling(fps_cap, max_frames) -> tuple[float | None, int | None]:
    """Blank or 0 means no limit; anything else must be a positive number."""
    try:
        fps = float(fps_cap) if fps_cap not in (None, "") else 0.0
        count = float(max_frames) if max_frames not in (None, "") else 0.0
    except (TypeError, ValueError):
        raise InputError("the fps cap and the maximum number of frames must be numbers") from None
    if fps < 0 or count < 0 or count != int(count):
        raise InputError(
            "the fps cap must be 0 or more and the maximum number of frames a whole number, 0 or more"
        )
    return (fps or None), (int(count) or None)


def start(
    session: Session, path: str, name: str, fps_cap=DEFAULT_FPS_CAP, max_frames=DEFAULT_MAX_FRAMES
) -> str:
    """Open the video for tracking and put its first frame on the canvas."""
    from gar_app.tracking import open_video

    old = session.tracking
    if old is not None and old.dirty:
        raise InputError(
            "the tracked video has work that is not exported: Export JSON first (or reload the page)"
        )
    if old is None and session.workspace.unsaved:
        raise InputError(
            "the image has unsaved work: Export JSON first (or delete its regions), then track the video"
        )
    fps, count = _sampling(fps_cap, max_frames)
    clip = open_video(path, fps, count)  # undecodable, empty or oversize videos: a clear InputError
    services = session.workspace.services
    tracking = Tracking(VideoTracks(clip, tracker_of(services), services.prompt_numbers), name)
    if old is not None:
        old.close()
    session.tracking = tracking
    show(session, 0)
    info = clip.info
    return (
        f"Tracking {name}: {len(clip)} of its {info.frame_count} frames ({_sampling_text(clip)}). "
        "Mark regions on any frame, then Propagate."
    )


def _sampling_text(clip) -> str:
    cap = f"at most {clip.fps_cap:g} fps" if clip.fps_cap else "every frame"
    return cap + (f", at most {clip.max_frames} frames" if clip.max_frames else "")


def caption_at(tracks: VideoTracks, index: int, position: int) -> str:
    region = tracks.regions.get(index)
    return next((c.text for c in region.captions if c.position == position), "") if region else ""


def show(session: Session, position: int) -> None:
    """Put the frame at ``position`` on the canvas with the tracked regions present there."""
    tracking = require(session)
    tracks, clip = tracking.tracks, tracking.clip
    position = int(position)
    clip.check_position(position)
    index = clip.indices[position]
    ws = session.workspace
    frame_name = f"{Path(tracking.name).stem}_frame{index:05d}.png"
    ws.set_image(
        tracks.frame_image(position),
        name=frame_name,
        video=VideoFrame(tracking.name, index, clip.time(position)),
        regions=tracks.masks_at(position),
    )
    marking = ws.marking
    for region in list(marking.regions):
        caption = caption_at(tracks, region.index, position)
        if caption:
            marking.set_caption(region.index, caption)
    own = marking.reserved
    marking.reserved = lambda: own() | set(tracks.regions)  # a region absent here keeps its tag
    ws.mark_saved()
    session.pending_image = None
    tracking.position, tracking.frame, tracking.target = position, ws.image, None
    tracking.loaded = {r.index: r.masks.get(position) for r in tracks}
    tracking.keyed = {r.index for r in tracks if position in r.keyframes}
    tracking.synced = (id(marking), marking.version)


def pick(session: Session, key: int | str) -> str | None:
    """Choose the region the next marks edit; one absent on this frame is marked here anew."""
    tracking = require(session)
    region = tracking.tracks.region(key)
    marking = session.workspace.require_marking()
    if region.index in marking.regions:
        marking.select(region.index)
        tracking.target = None
        return None
    marking.new_region()
    tracking.target = region.index
    return f"{region.tag} is not on this frame: the next mark puts it here (a keyframe; Propagate from it)."


def _pin_caption(tracks: VideoTracks, index: int, position: int, text: str) -> None:
    region = tracks.regions[index]
    captions = [c for c in region.captions if c.position != position]
    if text:
        captions.append(FrameCaption(position, text))
    region.captions = sorted(captions, key=lambda c: c.position)


def _keyframe_from(tracks: VideoTracks, index: int, region, position: int) -> None:
    """The keyframe just made records how the canvas made its mask (points, box, scribble or mask)."""
    track = tracks.regions[index]
    if position in track.keyframes:
        track.keyframes[position] = Keyframe(position, region.source, region.prompt)


def _remark(tracking: Tracking, index: int, mask, rle: dict) -> None:
    """A region's mask changed on this frame: a keyframe here, or, when undo brought back the
    mask the frame was shown with, no keyframe (the one made here is taken back)."""
    tracks, position = tracking.tracks, tracking.position
    track = tracks.regions[index]
    undone = rle == tracking.loaded.get(index) and index not in tracking.keyed
    if undone and position in track.keyframes and position != track.anchor:
        tracks.remove_keyframe(index, position)
        track.masks[position] = rle
    else:
        tracks.mark(index, position, mask=mask)


def sync(session: Session) -> None:
    """After every event: what the canvas changed on the current frame goes to the tracks."""
    tracking = session.tracking
    if tracking is None:
        return
    ws = session.workspace
    if ws.image is not tracking.frame:  # another image was opened on the canvas: tracking ends
        session.tracking = None
        tracking.close()
        return
    marking = ws.marking
    if (id(marking), marking.version) == tracking.synced:
        return
    tracks, position = tracking.tracks, tracking.position
    here = {region.index: region for region in marking.regions if region.mask.any()}
    moved, kept = False, set()
    for index, region in here.items():
        if index not in tracks.regions and tracking.target is not None:  # the picked region, marked anew
            index, moved, tracking.target = tracking.target, True, None
            tracks.mark(index, position, mask=region.mask)
            _keyframe_from(tracks, index, region, position)
        elif index not in tracks.regions:
            tracks.add_region(position, mask=region.mask, index=index)
            _keyframe_from(tracks, index, region, position)
        elif tracks.regions[index].masks.get(position) != (rle := mask_to_rle(region.mask)):
            _remark(tracking, index, region.mask, rle)
            _keyframe_from(tracks, index, region, position)
        if region.caption != caption_at(tracks, index, position):
            _pin_caption(tracks, index, position, region.caption)
        kept.add(index)
    for region in list(tracks):
        if region.index not in kept and region.masks.get(position) is not None:
            tracks.remove_region(region.index)  # deleted (or undone) on this frame: gone from the video
    tracking.synced = (id(marking), marking.version)
    tracking.dirty = True
    if moved:  # show the region under its own tag
        show(session, position)


def propagate(session: Session, progress=None) -> str:
    """Track every region from its keyframes through the clip; Cancel stops it within a frame."""
    tracking = require(session)
    tracking.cancel.clear()
    result = tracking.tracks.propagate(progress, tracking.cancel)
    show(session, tracking.position)  # this frame's masks may have changed
    if result.total == 0:
        return "Nothing to propagate: mark a region on a frame first (or mark it again on another frame)."
    tracking.dirty = True
    if result.cancelled:
        return (
            f"Cancelled after {result.done} of {result.total} frames; the frames done are kept and "
            "Propagate goes on from the keyframes."
        )
    return f"Propagated through {result.total} frames with the {tracking.tracks.tracker.name}."


def cancel(session: Session) -> None:
    if session.tracking is not None:
        session.tracking.cancel.set()


def selected_region(session: Session) -> int:
    """The region *Describe over time* captions: the current one on the canvas (or the only one)."""
    tracks = require(session).tracks
    marking = session.workspace.marking
    if marking is not None and marking.current_region is not None:
        return marking.current
    if len(tracks.regions) == 1:
        return next(iter(tracks.regions))
    if not tracks.regions:
        raise InputError("no region is tracked yet: mark one on the canvas first")
    raise InputError("select a region first: click its row in the region list, or its tag on the timeline")


def describe_over_time(session: Session, count, settings=None):
    """Caption the selected region on ``count`` frames spread over its track; yields a note per caption."""
    from gar_app.tracking.describe import describe_over_time as describe

    tracking = require(session)
    gar = session.workspace.require_gar()
    index = selected_region(session)
    count = int(count or 4)
    tracking.cancel.clear()
    made = 0
    for caption in describe(gar, tracking.tracks, index, count, settings, cancel=tracking.cancel):
        made += 1
        tracking.dirty = True
        yield f"{tracking.tracks.region(index).tag} on frame {caption.position}: {caption.text}"
    show(session, tracking.position)  # the captions of this frame into the region list
    yield f"Pinned {made} caption(s) of {tracking.tracks.region(index).tag} to the timeline."


def preview(session: Session, progress=None) -> tuple[str, str]:
    """A WebM clip of the video with every region drawn on it; returns (path, note)."""
    from gar_app.tracking.preview import render_preview

    tracking = require(session)
    if not tracking.tracks.regions:
        raise InputError("nothing to preview yet: mark a region and propagate it")
    tracking.cancel.clear()
    folder = tracking.files()
    for old in folder.iterdir():
        old.unlink(missing_ok=True)
    path = folder / f"{Path(tracking.name).stem or 'video'}.preview.webm"
    render_preview(tracking.tracks, path, progress=progress, cancel=tracking.cancel)
    return str(path), f"Preview of {tracking.name} with its regions: {path.name}."


def export_video(session: Session) -> str:
    """Export JSON while tracking: the ``gar-app/1`` video form."""
    from components.export_panel import file_stem
    from gar_app.tracking.document import tracks_document

    tracking = require(session)
    tracks = tracking.tracks
    document = tracks_document(tracks)
    saved = session.exports() / f"{file_stem(tracking.name)}.tracks.gar.json"
    saved.write_text(video_to_json(document))
    session.export_paths = [str(saved)]
    tracking.dirty = False
    pending = sum(len(run) for run in tracks.pending_runs())
    note = f"Exported {len(document.regions)} tracked region(s) over {document.frames} frames."
    if pending:
        note += f" {pending} frames still wait for Propagate: the export has their masks from before."
    return note


def import_video(session: Session, document: VideoDocument) -> str:
    """Import JSON of a video document: its tracks, on the same video opened for tracking."""
    from gar_app.tracking.document import open_clip, restore_tracks

    tracking = session.tracking
    if tracking is None:
        raise InputError(
            f"this is a tracked-video document of {document.video.name}: open that video in the Video tab, "
            "press Track regions in this video, then import it"
        )
    clip = open_clip(tracking.clip.path, document)
    try:
        services = session.workspace.services
        tracks = restore_tracks(document, clip, tracker_of(services), services.prompt_numbers)
    except Exception:
        clip.close()
        raise
    tracking.tracks.clip.close()
    tracking.tracks = tracks
    tracking.dirty = False
    show(session, min(tracking.position, len(clip) - 1))
    return f"Imported {len(tracks.regions)} tracked region(s) over {len(clip)} frames of {tracking.name}."
