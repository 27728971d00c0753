"""Tracked videos to and from the ``gar-app/1`` video document (see ``gar_app.formats.video_document``).

Export writes every processed frame of every region (mask as COCO RLE, or null), the
keyframes, the anchor and the captions; import restores them bit for bit on the same video
file with the same frame sampling. What is still pending (marks not yet propagated) is not
saved: propagate before exporting.
"""

from __future__ import annotations

import os

from gar_app.errors import InputError
from gar_app.formats.document import file_sha256
from gar_app.formats.video_document import (
    TrackCaption,
    TrackData,
    TrackFrame,
    TrackKeyframe,
    VideoDocument,
    VideoSource,
    frame_time,
)
from gar_app.regions import region_colour
from gar_app.tracking.base import Tracker
from gar_app.tracking.tracks import FrameCaption, Keyframe, TrackedRegion, VideoTracks
from gar_app.video import Clip


def tracks_document(tracks: VideoTracks) -> VideoDocument:
    clip = tracks.clip
    info = clip.info
    fps = info.fps or None
    source = VideoSource(
        info.name,
        info.width,
        info.height,
        fps,
        info.frame_count,
        file_sha256(clip.path),
        clip.fps_cap,
        clip.max_frames,
    )

    def at(position: int) -> tuple[int, float | None]:
        index = clip.indices[position]
        return index, frame_time(index, fps)

    regions = []
    for region in tracks:
        frames = [TrackFrame(*at(p), region.masks.get(p)) for p in range(len(clip))]
        keyframes = [TrackKeyframe(*at(p), k.source) for p, k in sorted(region.keyframes.items())]
        captions = [TrackCaption(*at(c.position), c.text) for c in region.captions]
        regions.append(
            TrackData(region.index, region.colour, clip.indices[region.anchor], keyframes, frames, captions)
        )
    return VideoDocument(source, len(clip), regions)


def open_clip(path: str | os.PathLike, document: VideoDocument) -> Clip:
    """The document's video, sampled as it was when the document was made."""
    return Clip(path, document.video.fps_cap, document.video.max_frames)


def restore_tracks(
    document: VideoDocument, clip: Clip, tracker: Tracker, limit: int | None = None
) -> VideoTracks:
    """The document's regions on ``clip``, which must be the same file sampled the same way."""
    video = document.video
    if file_sha256(clip.path) != video.sha256:
        raise InputError(f"this document was made on another video ({video.name}), not on {clip.name}")
    indices = [f.index for f in document.regions[0].frames] if document.regions else None
    if (indices is not None and indices != clip.indices) or len(clip) != document.frames:
        raise InputError(
            f"the document tracked {document.frames} frames sampled at fps cap {video.fps_cap} and max "
            f"{video.max_frames} frames; this clip has {len(clip)}: open the video with the document's sampling"
        )
    tracks = VideoTracks(clip, tracker, limit)
    for data in document.regions:
        if data.colour.upper() != region_colour(data.index).upper():
            raise InputError(
                f"{data.tag} has colour {data.colour}, but this app draws it {region_colour(data.index)}"
            )
        if limit is not None and data.index >= limit:
            raise InputError(f"{data.tag} is beyond this model's {limit} regions")
        position = {index: p for p, index in enumerate(clip.indices)}
        region = TrackedRegion(data.index, anchor=position[data.anchor])
        region.keyframes = {position[k.index]: Keyframe(position[k.index], k.source) for k in data.keyframes}
        region.masks = {p: frame.mask for p, frame in enumerate(data.frames)}
        region.captions = [FrameCaption(position[c.index], c.text) for c in data.captions]
        tracks.regions[data.index] = region
    return tracks
