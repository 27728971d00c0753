"""``gar-app track``: mark a region on one frame of a video and follow it through the clip.

Heavy modules (OpenCV, torch, transformers) are imported inside ``run_track``, so building
the ``gar-app`` parser stays fast.
"""

from __future__ import annotations

import argparse
import sys

from gar_app.devices import DTYPES


def add_track(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "track",
        help="track a region through a video (SAM 2, or a classical fallback without weights)",
        description="Mark one region on frame N (--box, --points or --mask) and propagate it forward "
        "and backward through the video. Writes one JSON entry per processed frame: the mask as COCO "
        "RLE, or null where the region is not in view.",
    )
    parser.add_argument("--video", required=True, help="video file")
    parser.add_argument(
        "--frame", type=int, default=0, help="frame index where the region is marked (default 0)"
    )
    parser.add_argument("--box", help="box as JSON [x1, y1, x2, y2] on that frame")
    parser.add_argument("--points", help="points as JSON [[x, y], ...] on that frame")
    parser.add_argument("--labels", help="1 (include) / 0 (exclude) per point, JSON; default all 1")
    parser.add_argument(
        "--mask", help="mask image of the region on that frame (any non-zero pixel is inside)"
    )
    parser.add_argument(
        "--sam2",
        help="SAM 2 / EdgeTAM video checkpoint: folder or Hub id "
        "(e.g. facebook/sam2.1-hiera-tiny); without it, the classical OpenCV tracker",
    )
    parser.add_argument("--device", default=None, help="cuda, cpu, ... for SAM 2 (default: best available)")
    parser.add_argument("--dtype", default=None, choices=DTYPES, help="SAM 2 weights dtype")
    parser.add_argument("--fps", type=float, default=None, help="process at most this many frames per second")
    parser.add_argument(
        "--max-frames", type=int, default=None, help="process at most this many frames, spread over the video"
    )
    parser.add_argument("--out", required=True, help="where to write the tracks (JSON)")
    parser.add_argument("--preview", help="also write the video with the region drawn on it here (.webm)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_track)


def _prompt(args: argparse.Namespace):
    from gar_app.cli.options import parse_prompt_options
    from gar_app.errors import InputError
    from gar_app.segment.base import Prompt

    if not (args.box or args.points):
        raise InputError(
            "say which region to track: --box '[x1,y1,x2,y2]', --points '[[x,y]]' or --mask FILE"
        )
    points, labels, box = parse_prompt_options(args)
    return Prompt(points=points, labels=labels, box=box)


def run_track(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gar_app.errors import InputError
    from gar_app.files import write_json_atomically
    from gar_app.formats.video_document import track_summary
    from gar_app.images import load_mask
    from gar_app.progress import ProgressCallback
    from gar_app.tracking import load_tracker, open_video
    from gar_app.tracking.document import tracks_document
    from gar_app.tracking.tracks import VideoTracks

    if args.frame < 0:
        raise InputError(f"--frame must be 0 or more, not {args.frame}")
    if args.mask and (args.box or args.points or args.labels):
        raise InputError("give either --mask or marks (--box / --points), not both")
    prompt = None if args.mask else _prompt(args)
    for option, path in (("--out", args.out), ("--preview", args.preview)):  # before any work is done
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise InputError(f"{option} {path}: folder {Path(path).parent} does not exist")
    if args.preview and Path(args.preview).suffix.lower() != ".webm":
        raise InputError(f"--preview {args.preview}: the preview is a WebM video; name it something.webm")
    clip = open_video(args.video, args.fps, args.max_frames)
    info = clip.info
    print(
        f"{info.name}: {info.width}x{info.height}, {info.frame_count} frames at {info.fps:.3g} fps; "
        f"processing {len(clip)} of them",
        file=sys.stderr,
    )
    position = clip.position_of(args.frame)
    if clip.indices[position] != args.frame:
        note = "past the end" if args.frame >= info.frame_count else "not among the processed frames"
        print(
            f"frame {args.frame} is {note}; marking frame {clip.indices[position]}, the nearest one",
            file=sys.stderr,
        )
    mask = load_mask(args.mask, size=(info.width, info.height)) if args.mask else None
    tracker = load_tracker(args.sam2, args.device, args.dtype)
    print(f"tracking with {tracker.name}", file=sys.stderr, flush=True)
    if args.sam2 is None:
        print(
            "(the classical fallback: pass --sam2 facebook/sam2.1-hiera-tiny or a checkpoint folder for SAM 2)",
            file=sys.stderr,
        )
    tracks = VideoTracks(clip, tracker)
    tracks.add_region(position, mask=mask, prompt=prompt)
    with ProgressCallback("tracking", "frame", shown=not args.no_progress) as progress:
        tracks.propagate(progress=progress)
    summary = track_summary(tracks_document(tracks))
    write_json_atomically(args.out, summary)
    present = sum(f["mask"] is not None for f in summary["regions"][0]["frames"])
    print(
        f"{summary['regions'][0]['tag']} is in view on {present} of {len(clip)} frames; tracks written to {args.out}",
        file=sys.stderr,
    )
    if args.preview:
        from gar_app.tracking.preview import render_preview

        with ProgressCallback("preview", "frame", shown=not args.no_progress) as progress:
            render_preview(tracks, args.preview, progress=progress)
        print(f"preview written to {args.preview}", file=sys.stderr)
    return 0
