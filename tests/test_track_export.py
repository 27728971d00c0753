"""Tracked videos export and import bit for bit; captions over time; the preview clip."""

from __future__ import annotations

import copy
import json

import cv2
import numpy as np
import pytest

from gar_app.errors import InputError
from gar_app.formats.video_document import (
    is_video_document,
    track_summary,
    video_from_dict,
    video_from_json,
    video_to_dict,
    video_to_json,
)
from gar_app.regions import hex_to_rgb, region_colour
from gar_app.tracking.classical import ClassicalTracker
from gar_app.tracking.describe import describe_over_time, frame_chat, spread
from gar_app.tracking.document import open_clip, restore_tracks, tracks_document
from gar_app.tracking.preview import render_preview
from gar_app.tracking.synthetic import write_clip
from gar_app.tracking.tracks import FrameCaption, VideoTracks
from gar_app.video import Clip


@pytest.fixture(scope="module")
def tracked(shape_clip):
    path, synthetic = shape_clip
    tracks = VideoTracks(Clip(path, fps_cap=6), ClassicalTracker())  # 12 fps capped: every other frame
    tracks.add_region(4, mask=synthetic.truth[8])
    tracks.add_region(0, mask=synthetic.companion[0])
    tracks.mark(0, 18, mask=synthetic.truth[36])
    tracks.propagate()
    tracks.region(1).captions = [
        FrameCaption(3, 'a purple blob, "striped" — ünïcode'),
        FrameCaption(20, "still there"),
    ]
    return tracks, synthetic


def test_export_then_import_is_bit_identical(tracked, shape_clip):
    tracks, _ = tracked
    text = video_to_json(tracks_document(tracks))
    document = video_from_json(text)
    restored = restore_tracks(document, open_clip(shape_clip[0], document), ClassicalTracker())
    assert video_to_json(tracks_document(restored)) == text
    for original, again in zip(tracks, restored, strict=True):
        assert (again.index, again.anchor, again.captions) == (
            original.index,
            original.anchor,
            original.captions,
        )
        assert {p: k.source for p, k in again.keyframes.items()} == {
            p: k.source for p, k in original.keyframes.items()
        }
        for position in range(len(tracks.clip)):
            a, b = tracks.mask(original.index, position), restored.mask(again.index, position)
            assert (a is None and b is None) or np.array_equal(a, b)
    assert not restored.pending_runs()
    restored.mark(0, 20, mask=tracks.mask(0, 20))  # refinement still follows the imported anchor
    assert [run.step for run in restored.pending_runs()] == [1]


def test_document_form(tracked):
    tracks, _ = tracked
    data = video_to_dict(tracks_document(tracks))
    assert data["format"] == "gar-app/1" and is_video_document(data)
    video = data["video"]
    assert (video["name"], video["width"], video["height"], video["fps"]) == ("shapes.mp4", 192, 144, 12.0)
    assert (video["frames"], video["frame_count"], video["sampling"]) == (
        24,
        48,
        {"fps_cap": 6.0, "max_frames": None},
    )
    first = data["regions"][0]
    assert (first["tag"], first["colour"], first["anchor"]) == ("<Prompt0>", "#ff0000", 8)
    assert [k["index"] for k in first["keyframes"]] == [8, 36]
    assert [f["index"] for f in first["frames"]] == list(range(0, 48, 2))
    assert first["frames"][5]["time"] == pytest.approx(10 / 12)
    assert data["regions"][1]["captions"][0] == {
        "index": 6,
        "time": 0.5,
        "text": 'a purple blob, "striped" — ünïcode',
    }
    summary = track_summary(tracks_document(tracks))
    assert set(summary) == {"video", "regions"} and set(summary["video"]) == {
        "name",
        "width",
        "height",
        "fps",
        "frames",
    }
    assert set(summary["regions"][0]) == {"tag", "frames"} and set(summary["regions"][0]["frames"][0]) == {
        "index",
        "time",
        "mask",
    }


def _broken(data: dict, change) -> dict:
    data = copy.deepcopy(data)
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["regions"][0].update(tag="<Prompt1>"), "makes it '<Prompt0>'"),
        (lambda d: d["regions"][0]["frames"][3].update(time=9.0), "time is 9.0"),
        (lambda d: d["regions"][0]["frames"][3]["mask"].update(counts="0"), "do not cover"),
        (lambda d: d["regions"][0]["frames"][3]["mask"].update(size=[10, 10]), "10x10"),
        (lambda d: d["regions"][1]["frames"].pop(), "not the same frames"),
        (lambda d: d["regions"][0].update(anchor=2), "anchor"),
        (lambda d: d["regions"][0]["keyframes"][0].update(source="lasso"), "source"),
        (lambda d: d["regions"][1]["captions"][0].update(index=7), "not one of the processed frames"),
        (lambda d: d["video"].update(frames=5), "5 frames were processed"),
        (lambda d: d["video"].update(sha256="abc"), "sha256"),
        (lambda d: d.update(image={}), "not a tracked-video document"),
        (lambda d: d.update(format="gar-app/2"), "format"),
    ],
)
def test_import_refuses_broken_documents(tracked, change, message):
    tracks, _ = tracked
    data = video_to_dict(tracks_document(tracks))
    with pytest.raises(InputError, match=message):
        video_from_dict(_broken(data, change))


def test_a_keyframe_on_a_frame_without_mask_is_refused(tracked):
    tracks, _ = tracked
    data = video_to_dict(tracks_document(tracks))

    def blank_keyframe(d):
        d["regions"][0]["frames"][4]["mask"] = None  # frame 8, the anchor

    with pytest.raises(InputError, match="has no mask"):
        video_from_dict(_broken(data, blank_keyframe))


def test_import_checks_the_video_and_its_sampling(tracked, shape_clip, tmp_path):
    tracks, synthetic = tracked
    document = video_from_json(video_to_json(tracks_document(tracks)))
    with pytest.raises(InputError, match="open the video with the document's sampling"):
        restore_tracks(document, Clip(shape_clip[0]), ClassicalTracker())
    other = write_clip(tmp_path / "other.mp4", synthetic.frames[::-1], synthetic.fps)
    with pytest.raises(InputError, match="another video"):
        restore_tracks(document, open_clip(other, document), ClassicalTracker())


def test_spread_takes_first_last_and_evenly_between():
    assert spread(list(range(10, 20)), 4) == [10, 13, 16, 19]
    assert spread([3, 5], 4) == [3, 5] and spread([1, 2, 3], 1) == [2]
    with pytest.raises(InputError):
        spread([1], 0)


def test_describe_over_time_captions_keyframes_of_the_track(tracked, tiny_gar, monkeypatch):
    tracks, _ = tracked
    seen = []
    real = tiny_gar.describe

    def spy(image, mask, settings=None, instruction=None):
        seen.append((np.asarray(image).copy(), mask))
        return real(image, mask, settings, instruction)

    monkeypatch.setattr(tiny_gar, "describe", spy)
    from gar_app.model import GenerationSettings

    captions = list(
        describe_over_time(
            tiny_gar, tracks, "<Prompt0>", count=3, settings=GenerationSettings(max_new_tokens=4)
        )
    )
    present = [p for p, here in enumerate(tracks.presence(0)) if here]
    assert [c.position for c in captions] == spread(present, 3)
    assert tracks.region(0).captions == captions
    for caption, (image, mask) in zip(
        captions, seen, strict=True
    ):  # that frame's picture and that frame's mask
        assert np.array_equal(image, tracks.clip.frame(caption.position))
        assert np.array_equal(mask, tracks.mask(0, caption.position))
    chat = frame_chat(tiny_gar, tracks, present[1])
    assert sorted(chat.masks) == sorted(tracks.masks_at(present[1]))


def test_preview_clip_plays_back_with_the_overlays(tracked, tmp_path):
    tracks, synthetic = tracked
    path = render_preview(tracks, tmp_path / "preview.webm", max_frames=10)
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    assert len(frames) == 10 and frames[0].shape == (144, 192, 3)
    purple_region = tracks.mask(1, 0)
    tinted = frames[0][purple_region].astype(float).mean(axis=0)
    plain = np.asarray(tracks.clip.frame(0))[purple_region].astype(float).mean(axis=0)
    towards = np.array(hex_to_rgb(region_colour(1)), float)  # <Prompt1> is green
    assert np.linalg.norm(tinted - towards) < np.linalg.norm(plain - towards) - 20
    with pytest.raises(InputError, match="WebM"):
        render_preview(tracks, tmp_path / "preview.mp4")


def test_video_documents_are_json(tracked):
    tracks, _ = tracked
    json.loads(video_to_json(tracks_document(tracks)))
