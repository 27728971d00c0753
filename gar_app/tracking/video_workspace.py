"""A video tracked on the canvas: the image ``Workspace`` shows one frame, ``VideoTracks`` keeps the video.

While a video is tracked, the workspace's image is the *frame shown* and its regions are the
tracked masks on that frame, so marking, the region list, Describe and the chat work on a
frame exactly as on an image (GAR is an image model: it sees only that frame). After every
change on the canvas, ``sync`` hands what changed on the frame to the tracks:

- a new region starts a track, anchored on this frame;
- a region whose mask changed here is marked again (a keyframe: the next Propagate
  recomputes the frames it owns, see ``gar_app.tracking.tracks``); undo back to the mask the
  frame was shown with takes that keyframe back;
- a region deleted on a frame is deleted from the whole video;
- a caption typed or described on a frame is pinned to that frame;
- after ``pick`` of a region absent on this frame, the next new region is that region,
  marked here under its own tag.

Opening another image on the canvas ends tracking (``sync`` says so). Frames are decoded
one at a time from the lazy ``Clip``; masks stay RLE in the tracks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gar_app.errors import InputError
from gar_app.formats.document import VideoFrame
from gar_app.formats.video_document import VideoDocument
from gar_app.regions import Region
from gar_app.rle import mask_to_rle
from gar_app.tracking.base import Tracker
from gar_app.tracking.tracks import FrameCaption, Keyframe, Progress, Propagation, VideoTracks
from gar_app.video import Clip
from gar_app.workspace import Services, Workspace

DEFAULT_FPS_CAP = 10.0
DEFAULT_MAX_FRAMES = 300


def tracker_of(services: Services) -> Tracker:
    """The shared tracker: SAM 2 when the app started with one, else the classical fallback (made once)."""
    if services.tracker is None:
        from gar_app.tracking.classical import ClassicalTracker

        services.tracker = ClassicalTracker(reason="no SAM 2 weights")
    return services.tracker


def sampling(fps_cap, max_frames) -> tuple[float | None, int | None]:
    """The frame sampling as typed: blank or 0 means no limit; anything else must be a positive number."""
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


class VideoWorkspace:
    """One video tracked on one person's canvas: the tracks, the frame shown, the Cancel switch."""

    def __init__(self, workspace: Workspace, tracks: VideoTracks, name: str):
        self.workspace = workspace
        self.tracks = tracks
        self.name = name  # the video's name as the person gave it
        self.position = 0  # the frame shown
        self.cancel = threading.Event()  # stops Propagate, Describe over time and the preview
        self._unsaved = False
        self._frame = None  # the workspace image that is the frame shown
        self._synced: tuple = ()  # (marking id, version) last handed to the tracks
        self._target: int | None = None  # an absent region the next new mark puts on this frame
        self._loaded: dict[int, dict | None] = {}  # region -> its mask (RLE) here when the frame was shown
        self._keyed: set[int] = set()  # regions that had a keyframe here when the frame was shown
        self._files: Path | None = None

    @classmethod
    def open(
        cls,
        workspace: Workspace,
        path: str | os.PathLike,
        name: str,
        fps_cap=DEFAULT_FPS_CAP,
        max_frames=DEFAULT_MAX_FRAMES,
        replacing: VideoWorkspace | None = None,
    ) -> VideoWorkspace:
        """Open a video for tracking on ``workspace`` and show its first frame.

        Refused while work that is not exported would be lost: the video tracked before
        (``replacing``, closed once the new one is open) or, when none, the image.
        """
        if replacing is not None and replacing.unsaved:
            raise InputError(
                "the tracked video has work that is not exported: Export JSON first (or reload the page)"
            )
        if replacing is None and workspace.unsaved:
            raise InputError(
                "the image has unsaved work: Export JSON first (or delete its regions), then track the video"
            )
        fps, count = sampling(fps_cap, max_frames)
        clip = Clip(path, fps, count)  # undecodable, empty or oversize videos: a clear InputError
        services = workspace.services
        video = cls(workspace, VideoTracks(clip, tracker_of(services), services.prompt_numbers), name)
        if replacing is not None:
            replacing.close()
        video.show(0)
        return video

    @property
    def clip(self) -> Clip:
        return self.tracks.clip

    @property
    def unsaved(self) -> bool:
        """Work since the video was opened, exported or imported."""
        return self._unsaved

    @property
    def on_canvas(self) -> bool:
        """The workspace still shows this video's frame (opening another image ends tracking)."""
        return self.workspace.image is not None and self.workspace.image is self._frame

    # -- the frame shown ------------------------------------------------------------------

    def show(self, position: int) -> None:
        """Put the frame at ``position`` on the canvas with the tracked regions present there."""
        tracks, clip = self.tracks, self.clip
        position = int(position)
        clip.check_position(position)
        index = clip.indices[position]
        ws = self.workspace
        ws.set_image(
            tracks.frame_image(position),
            name=f"{Path(self.name).stem}_frame{index:05d}.png",
            video=VideoFrame(self.name, index, clip.time(position)),
            regions=tracks.masks_at(position),
        )
        marking = ws.marking
        for region in list(marking.regions):
            caption = tracks.regions[region.index].caption_at(position)
            if caption:
                marking.set_caption(region.index, caption)
        own = marking.reserved
        marking.reserved = lambda: own() | set(tracks.regions)  # a region absent here keeps its tag
        ws.mark_saved()
        self.position, self._frame, self._target = position, ws.image, None
        self._loaded = {r.index: r.masks.get(position) for r in tracks}
        self._keyed = {r.index for r in tracks if position in r.keyframes}
        self._synced = (id(marking), marking.version)

    def pick(self, key: int | str) -> bool:
        """Choose the region the next marks edit. Returns True when it is absent on this frame:
        the next new mark puts it here, under its own tag (a keyframe)."""
        region = self.tracks.region(key)
        marking = self.workspace.require_marking()
        if region.index in marking.regions:
            marking.select(region.index)
            self._target = None
            return False
        marking.new_region()
        self._target = region.index
        return True

    # -- the canvas to the tracks ---------------------------------------------------------

    def sync(self) -> bool:
        """Hand what the canvas changed on this frame to the tracks (call it after every change).

        Returns False when the canvas shows another image: tracking has ended, and the video
        is closed.
        """
        if not self.on_canvas:
            self.close()
            return False
        marking = self.workspace.marking
        if (id(marking), marking.version) == self._synced:
            return True
        tracks, position = self.tracks, self.position
        here = {region.index: region for region in marking.regions if region.mask.any()}
        moved, kept = False, set()
        for index, region in here.items():
            if index not in tracks.regions and self._target is not None:  # the picked region, marked anew
                index, moved, self._target = self._target, True, None
                tracks.mark(index, position, mask=region.mask)
                self._made_by(index, region)
            elif index not in tracks.regions:
                tracks.add_region(position, mask=region.mask, index=index)
                self._made_by(index, region)
            elif tracks.regions[index].masks.get(position) != (rle := mask_to_rle(region.mask)):
                self._remark(index, region.mask, rle)
                self._made_by(index, region)
            track = tracks.regions[index]
            if region.caption != track.caption_at(position):
                track.pin_caption(position, region.caption)
            kept.add(index)
        for track in list(tracks):
            if track.index not in kept and track.masks.get(position) is not None:
                tracks.remove_region(track.index)  # deleted (or undone) on this frame: gone from the video
        self._synced = (id(marking), marking.version)
        self._unsaved = True
        if moved:  # show the region under its own tag
            self.show(position)
        return True

    def _made_by(self, index: int, region: Region) -> None:
        """The keyframe just made records how the canvas made its mask (points, box, scribble or mask)."""
        track = self.tracks.regions[index]
        if self.position in track.keyframes:
            track.keyframes[self.position] = Keyframe(self.position, region.source, region.prompt)

    def _remark(self, index: int, mask: np.ndarray, rle: dict) -> None:
        """A region's mask changed on this frame: a keyframe here, or, when undo brought back the
        mask the frame was shown with, no keyframe (the one made here is taken back)."""
        tracks, position = self.tracks, self.position
        track = tracks.regions[index]
        undone = rle == self._loaded.get(index) and index not in self._keyed
        if undone and position in track.keyframes and position != track.anchor:
            tracks.remove_keyframe(index, position)
            track.masks[position] = rle
        else:
            tracks.mark(index, position, mask=mask)

    # -- long actions (Cancel stops each) -------------------------------------------------

    def propagate(self, progress: Progress | None = None) -> Propagation:
        """Track every region from its keyframes through the clip; Cancel stops it within a frame
        and the next call carries on. The frame shown is redrawn (its masks may have changed)."""
        self.cancel.clear()
        result = self.tracks.propagate(progress, self.cancel)
        self.show(self.position)
        if result.total:
            self._unsaved = True
        return result

    def selected_region(self) -> int:
        """The region *Describe over time* captions: the current one on the canvas (or the only one)."""
        tracks = self.tracks
        marking = self.workspace.marking
        if marking is not None and marking.current_region is not None:
            return marking.current
        if len(tracks.regions) == 1:
            return next(iter(tracks.regions))
        if not tracks.regions:
            raise InputError("no region is tracked yet: mark one on the canvas first")
        raise InputError(
            "select a region first: click its row in the region list, or its tag on the timeline"
        )

    def describe_over_time(self, key: int | str, count: int, settings=None) -> Iterator[FrameCaption]:
        """Caption region ``key`` on ``count`` frames spread over its track, pinning each caption
        to its frame; the frame shown gets its captions when done. Checks before it starts."""
        gar = self.workspace.require_gar()
        self.tracks.region(key)
        return self._describing(gar, key, count, settings)

    def _describing(self, gar, key: int | str, count: int, settings) -> Iterator[FrameCaption]:
        from gar_app.tracking.describe import describe_over_time

        self.cancel.clear()
        for caption in describe_over_time(gar, self.tracks, key, count, settings, cancel=self.cancel):
            self._unsaved = True
            yield caption
        self.show(self.position)

    def preview(self, progress: Progress | None = None) -> Path:
        """A WebM clip of the video with every region drawn on it (the previous one is replaced)."""
        from gar_app.tracking.preview import render_preview

        if not self.tracks.regions:
            raise InputError("nothing to preview yet: mark a region and propagate it")
        self.cancel.clear()
        folder = self._folder()
        for old in folder.iterdir():
            old.unlink(missing_ok=True)
        path = folder / f"{Path(self.name).stem or 'video'}.preview.webm"
        return render_preview(self.tracks, path, progress=progress, cancel=self.cancel)

    # -- export and import ----------------------------------------------------------------

    def document(self) -> VideoDocument:
        """The ``gar-app/1`` video form of the tracks (what is not propagated yet is not in it)."""
        from gar_app.tracking.document import tracks_document

        return tracks_document(self.tracks)

    @property
    def pending_frames(self) -> int:
        """Frames that wait for Propagate."""
        return sum(len(run) for run in self.tracks.pending_runs())

    def mark_saved(self) -> None:
        """The work was exported."""
        self._unsaved = False

    def restore(self, document: VideoDocument) -> None:
        """Bring back a video document's tracks, on the same video file, sampled as the document says."""
        from gar_app.tracking.document import open_clip, restore_tracks

        clip = open_clip(self.clip.path, document)
        try:
            services = self.workspace.services
            tracks = restore_tracks(document, clip, tracker_of(services), services.prompt_numbers)
        except Exception:
            clip.close()
            raise
        self.tracks.close()
        self.tracks = tracks
        self._unsaved = False
        self.show(min(self.position, len(clip) - 1))

    # -- the end --------------------------------------------------------------------------

    def _folder(self) -> Path:
        """This video's folder for preview clips (removed by ``close``)."""
        if self._files is None or not self._files.exists():
            self._files = Path(tempfile.mkdtemp(prefix="gar-track-"))
        return self._files

    def close(self) -> None:
        """Stop what runs, let go of the video file, a paused run and the preview clips."""
        self.cancel.set()
        self.tracks.close()
        if self._files is not None:
            shutil.rmtree(self._files, ignore_errors=True)
            self._files = None
