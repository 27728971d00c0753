"""Tracking a video in the app, through gradio_client: the same endpoints the page uses.

A synthetic clip (a textured orange shape that moves, turns and leaves the picture for a
few frames; a purple one turning in a corner) has a known mask on every frame, so what the
canvas receives after Propagate can be scored against the truth.
"""

from __future__ import annotations

import base64
import io
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file
from helpers import iou, shown
from PIL import Image
from tracking_helpers import SlowTracker, tracking_session

from gar_app.formats.video_document import video_from_json
from gar_app.images import mask_box
from gar_app.tracking.synthetic import moving_shape_clip, write_clip, write_mjpeg_avi

GREEDY = ("Greedy (as in the paper)", 0.7, 0.9, 16)
# what the tracking endpoints return (gradio_client leaves out the state and the layout)
CANVAS, ROWS, CAPTION, CHAT, CHIPS, ASK, STATUS, FRAME, TIMELINE = range(9)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """32 frames at 12 fps, 192 x 144 (the shape is out of the picture on frames 14-19)."""
    synthetic = moving_shape_clip(frames=32, companion=True)
    path = write_clip(tmp_path_factory.mktemp("clip") / "shapes.mp4", synthetic.frames, synthetic.fps)
    return path, synthetic


def notice(result) -> str:
    return shown(result[-1])


def canvas_mask(canvas: dict, index: int, seen: dict[str, np.ndarray]) -> np.ndarray | None:
    """Region ``index``'s mask as the browser gets it (a 1-bit PNG of its box), on the full frame.

    ``seen`` holds the masks already sent to this client: the canvas sends each mask once.
    """
    image = canvas["image"]
    region = next((r for r in canvas["regions"] if r["index"] == index), None)
    if region is None or region["mask"] is None:
        return None
    part = region["mask"]
    if "src" in part:
        data = base64.b64decode(part["src"].split(",", 1)[1])
        seen[part["key"]] = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))[..., 3] > 0
    crop = seen[part["key"]]
    full = np.zeros((image["height"], image["width"]), bool)
    x0, y0 = part["box"][:2]
    full[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
    return full


def box_around(mask: np.ndarray, margin: int = 4) -> list[int]:
    x0, y0, x1, y1 = mask_box(mask)
    return [x0 - margin, y0 - margin, x1 + margin, y1 + margin]


def unique_copy(path: Path) -> Path:
    """The clip under a name no other test uses, so its server session can be found by name."""
    target = path.with_name(f"{path.stem}-{uuid.uuid4().hex[:8]}{path.suffix}")
    target.write_bytes(path.read_bytes())
    return target


def tracked(gar_app_server, clip) -> tuple:
    """A client tracking every frame of the clip with the orange shape boxed on frame 0 and propagated,
    and the server's session behind it."""
    path, synthetic = clip
    path = unique_copy(path)
    client = gar_app_server.client()
    result = client.predict(handle_file(str(path)), 0, 0, api_name="/track_video")
    assert f"Tracking {path.name}: 32 of its 32 frames" in notice(result), notice(result)
    client.predict(*box_around(synthetic.truth[0]), api_name="/box")
    result = client.predict(api_name="/propagate")
    assert "Propagated through 31 frames with the classical OpenCV tracker" in notice(result), notice(result)
    return client, result, tracking_session(gar_app_server, path.name)


def test_propagate_puts_the_tracked_mask_on_later_frames_and_the_timeline(gar_app_server, clip):
    _path, synthetic = clip
    client, result, session = tracked(gar_app_server, clip)
    status = shown(result[STATUS])
    assert "classical OpenCV tracker" in status and "GAR is an image model" in status
    timeline = result[TIMELINE]
    (region,) = timeline["regions"]
    assert region["tag"] == "<Prompt0>" and region["colour"] == "#FF0000" and region["keyframes"] == [0]
    assert session.tracking.tracks.regions[0].keyframes[0].source == "box", (
        "the keyframe says how it was made"
    )
    present = {p for a, b in region["runs"] for p in range(a, b + 1)}
    visible = {p for p, truth in enumerate(synthetic.truth) if truth.sum() > 200}
    gone = {p for p, truth in enumerate(synthetic.truth) if not truth.any()}
    assert visible <= present and not present & gone, region["runs"]

    seen: dict[str, np.ndarray] = {}
    for position in (5, 24, 31):
        result = client.predict(position, api_name="/seek_frame")
        assert result[FRAME]["value"] == position and result[TIMELINE]["current"] == position
        assert f"_frame{position:05d}.png · 192×144" in result[CANVAS]["status"]
        mask = canvas_mask(result[CANVAS], 0, seen)
        assert iou(mask, synthetic.truth[position]) >= 0.85, position
        assert [r["tag"] for r in result[ROWS]] == ["<Prompt0>"]
    result = client.predict(16, api_name="/seek_frame")
    assert canvas_mask(result[CANVAS], 0, seen) is None and result[ROWS] == [], (
        "absent while the shape is away"
    )


def refine_at_24(client, synthetic) -> None:
    """Mark <Prompt0> again on frame 24, boxing the purple shape: the track follows it from there."""
    client.predict(24, api_name="/seek_frame")
    client.predict("<Prompt0>", api_name="/select_region")
    client.predict(*box_around(synthetic.companion[24]), api_name="/box")


def test_refining_on_a_later_frame_changes_the_track_from_there_on(gar_app_server, clip):
    _path, synthetic = clip
    client, _result, session = tracked(gar_app_server, clip)
    tracks = session.tracking.tracks
    before = dict(tracks.regions[0].masks)

    refine_at_24(client, synthetic)
    assert sorted(tracks.regions[0].keyframes) == [0, 24] and tracks.regions[0].keyframes[24].source == "box"
    client.predict(28, api_name="/seek_frame")
    result = client.predict(api_name="/propagate")
    assert "Propagated through 7 frames" in notice(result), notice(result)
    assert iou(canvas_mask(result[CANVAS], 0, {}), synthetic.companion[28]) >= 0.85, (
        "the frame shown is redrawn"
    )
    assert result[TIMELINE]["regions"][0]["keyframes"] == [0, 24]
    after = tracks.regions[0].masks
    assert all(after[p] == before[p] for p in range(24)), "frames before the new keyframe are untouched"
    for position in (24, 28, 31):
        assert iou(tracks.mask(0, position), synthetic.companion[position]) >= 0.85, position
        assert iou(tracks.mask(0, position), synthetic.truth[position]) < 0.1


def test_undoing_a_refinement_takes_its_keyframe_back(gar_app_server, clip):
    _path, synthetic = clip
    client, _result, session = tracked(gar_app_server, clip)
    tracks = session.tracking.tracks
    before = dict(tracks.regions[0].masks)
    refine_at_24(client, synthetic)
    assert sorted(tracks.regions[0].keyframes) == [0, 24]
    result = client.predict(api_name="/undo")
    assert sorted(tracks.regions[0].keyframes) == [0] and tracks.regions[0].masks[24] == before[24]
    assert iou(canvas_mask(result[CANVAS], 0, {}), synthetic.truth[24]) >= 0.85, "the orange shape again"
    client.predict(api_name="/propagate")  # the frames keyframe 24 had taken are tracked from frame 0 again
    for position in (24, 28, 31):
        assert iou(tracks.mask(0, position), synthetic.truth[position]) >= 0.85, position


def test_the_chat_on_a_frame_uses_that_frames_masks(gar_app_server, clip):
    client, _result, session = tracked(gar_app_server, clip)
    tracks = session.tracking.tracks
    for position in (3, 27):
        client.predict(position, api_name="/seek_frame")
        chat = list(client.submit("What is <Prompt0> doing?", *GREEDY, api_name="/ask"))[-1][0]
        assert [m["role"] for m in chat] == ["user", "assistant"], "a new frame starts a new conversation"
        used = session.workspace.conversation.masks
        assert list(used) == [0] and np.array_equal(used[0], tracks.mask(0, position))
        assert np.array_equal(np.asarray(session.workspace.image), tracks.clip.frame(position))


def test_describe_over_time_pins_k_captions_to_the_timeline(gar_app_server, clip):
    client, _result, session = tracked(gar_app_server, clip)
    updates = list(client.submit(3, *GREEDY, api_name="/describe_over_time"))
    final = updates[-1]
    assert "Pinned 3 caption(s) of <Prompt0>" in notice(final), notice(final)
    captions = final[TIMELINE]["regions"][0]["captions"]
    positions = [c["position"] for c in captions]
    present = [p for p, here in enumerate(session.tracking.tracks.presence(0)) if here]
    assert positions[0] == present[0] == 0 and positions[2] == present[-1] == 31, "first and last included"
    assert positions[1] in present and 10 <= positions[1] <= 21, "the third one in between"
    texts = [c.text for c in session.tracking.tracks.regions[0].captions]
    assert all(texts) and all(c["label"].endswith(t) for c, t in zip(captions, texts, strict=True))
    result = client.predict(positions[1], api_name="/seek_frame")
    assert result[ROWS][0]["caption"] == texts[1], "the frame's caption shows in the region list"
    assert result[TIMELINE]["current"] == positions[1]
    assert client.predict(positions[1] + 1, api_name="/seek_frame")[ROWS][0]["caption"] == "", (
        "only on its frame"
    )


def test_export_then_import_restores_the_tracks_bit_for_bit(gar_app_server, clip, tmp_path):
    client, _result, session = tracked(gar_app_server, clip)
    path, name = session.tracking.clip.path, session.tracking.name
    client.predict(2, *GREEDY, api_name="/describe_over_time")
    files, _ask, message = client.predict(api_name="/export")
    assert "Exported 1 tracked region(s) over 32 frames" in shown(message)
    (saved,) = [
        f["path"] if isinstance(f, dict) else f
        for f in (files["value"] if isinstance(files, dict) else files)
    ]
    text = Path(saved).read_text()
    document = video_from_json(text)
    assert document.video.name == name and len(document.regions[0].captions) == 2
    assert [(k.index, k.source) for k in document.regions[0].keyframes] == [(0, "box")]

    fresh = gar_app_server.client()
    message = notice(fresh.predict(handle_file(saved), api_name="/import"))
    assert "open that video in the Video tab" in message and name in message
    fresh.predict(
        handle_file(str(path)), 10, 12, api_name="/track_video"
    )  # other sampling: the import redoes it
    result = fresh.predict(handle_file(saved), api_name="/import")
    assert "Imported 1 tracked region(s) over 32 frames" in notice(result), notice(result)
    result = fresh.predict(0, api_name="/seek_frame")
    assert result[TIMELINE]["frames"] == 32 and len(result[TIMELINE]["regions"][0]["captions"]) == 2
    files, _ask, _message = fresh.predict(api_name="/export")
    (again,) = [
        f["path"] if isinstance(f, dict) else f
        for f in (files["value"] if isinstance(files, dict) else files)
    ]
    assert Path(again).read_text() == text

    other = tmp_path / "other.mp4"
    write_clip(other, moving_shape_clip(frames=8, seed=3).frames, 12.0)
    fresh.predict(api_name="/export")  # saved, so a new video may open
    fresh.predict(handle_file(str(other)), 0, 0, api_name="/track_video")
    assert f"made on another video ({name})" in notice(fresh.predict(handle_file(saved), api_name="/import"))


def test_bad_videos_give_a_clear_notice(gar_app_server, tmp_path):
    client = gar_app_server.client()
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, "JPEG")
    jpeg = bytearray(buffer.getvalue())
    sof = jpeg.index(b"\xff\xc0")  # the frame header says 16000 x 16000; nothing is decoded to find out
    jpeg[sof + 5 : sof + 9] = (16000).to_bytes(2, "big") * 2
    huge = write_mjpeg_avi(tmp_path / "huge.avi", [bytes(jpeg)], 16000, 16000)
    for path, expected in [
        (garbage, "not a video format"),
        (empty, "is empty"),
        (huge, "16000x16000 frames"),
    ]:
        message = notice(client.predict(handle_file(str(path)), 10, 300, api_name="/track_video"))
        assert "⚠️" in message and expected in message and "Traceback" not in message, message
    assert "no video is being tracked" in notice(client.predict(api_name="/propagate"))
    assert "the maximum number of frames" in notice(
        client.predict(handle_file(str(garbage)), 10, -1, api_name="/track_video")
    )


@pytest.mark.slow
def test_cancel_stops_a_running_propagation_and_keeps_the_frames_done(gar_app_server, clip):
    path, synthetic = clip
    path = unique_copy(path)
    services = gar_app_server.services
    saved, services.tracker = services.tracker, SlowTracker()
    try:
        client = gar_app_server.client()
        client.predict(handle_file(str(path)), 0, 0, api_name="/track_video")
        client.predict(*box_around(synthetic.truth[0]), api_name="/box")
        session = tracking_session(gar_app_server, path.name)
        masks = session.tracking.tracks.regions[0].masks
        job = client.submit(api_name="/propagate")
        deadline = time.time() + 60
        while len(masks) < 4 and time.time() < deadline:
            time.sleep(0.05)
        canceller = threading.Thread(target=lambda: client.predict(api_name="/cancel_propagation"))
        canceller.start()
        result = job.result(timeout=60)
        canceller.join(timeout=60)
        assert "Cancelled after" in notice(result) and "of 31 frames" in notice(result), notice(result)
        done = len(masks) - 1
        assert 3 <= done < 31, done
        result = client.predict(api_name="/propagate")  # goes on from the keyframe
        assert "Propagated through 31 frames" in notice(result)
        assert len(masks) == 32
    finally:
        services.tracker = saved


def test_after_a_cancel_the_next_propagate_carries_on_from_where_it_stopped(gar_app_server, clip):
    path, synthetic = clip
    path = unique_copy(path)
    services = gar_app_server.services
    slow = SlowTracker(seconds=0.05)
    saved, services.tracker = services.tracker, slow
    try:
        client = gar_app_server.client()
        client.predict(handle_file(str(path)), 0, 0, api_name="/track_video")
        client.predict(*box_around(synthetic.truth[0]), api_name="/box")
        masks = tracking_session(gar_app_server, path.name).tracking.tracks.regions[0].masks
        job = client.submit(api_name="/propagate")
        while len(masks) < 6 and not job.done():
            time.sleep(0.01)
        client.predict(api_name="/cancel_propagation")
        message = notice(job.result(timeout=60))
        done = int(message.split("Cancelled after ")[1].split()[0])
        assert 5 <= done < 31 and "the next Propagate carries on from there" in message, message
        message = notice(client.predict(api_name="/propagate"))
        assert (
            f"Propagated through 31 frames with the slow tracker. It carried on after the {done} frames"
            in message
        )
        assert len(slow.done_at) - 1 == 31, "no frame was tracked twice"
    finally:
        services.tracker = saved


def test_a_sam2_checkpoint_that_does_not_load_falls_back_and_says_why(tmp_path):
    from components.tracking import app_tracker

    assert app_tracker(None).name.endswith("no SAM 2 weights")
    fallback = app_tracker(str(tmp_path / "missing"))
    assert fallback.name.startswith("classical OpenCV tracker") and "SAM 2 did not load" in fallback.name


def test_tracking_never_drops_unexported_work(gar_app_server, clip):
    path, _synthetic = clip
    client = gar_app_server.client()
    client.predict(
        handle_file(str(Path(__file__).parents[1] / "assets" / "examples" / "cat.jpg")),
        api_name="/load_image",
    )
    client.predict("include", 200, 130, api_name="/mark")
    result = client.predict(handle_file(str(path)), 0, 0, api_name="/track_video")
    assert "the image has unsaved work: Export JSON first" in notice(result)
    assert result[CANVAS]["image"]["width"] == 451 and [r["tag"] for r in result[ROWS]] == ["<Prompt0>"]

    client, _result, session = tracked(gar_app_server, clip)
    assert "the tracked video has work that is not exported" in notice(
        client.predict(handle_file(str(path)), 0, 0, api_name="/track_video")
    )
    assert len(session.tracking.tracks.regions) == 1


def test_closing_the_session_lets_go_of_the_video(gar_app_server, clip):
    client, _result, session = tracked(gar_app_server, clip)
    clip_of = session.tracking.clip
    session.close()
    assert session.tracking is None and not clip_of._capture.isOpened()
    result = client.predict(3, api_name="/seek_frame")
    assert "no video is being tracked" in notice(result)


def test_the_preview_clip_shows_the_regions_on_every_frame(gar_app_server, clip):
    from gar_app.tracking import open_video

    _path, synthetic = clip
    client, _result, _session = tracked(gar_app_server, clip)
    result = client.predict(api_name="/preview_clip")
    assert "Preview of" in notice(result), notice(result)
    update = result[-2]  # the preview player: shown, with the clip
    assert update["visible"] is True and update["value"].endswith(".preview.webm")
    with open_video(update["value"]) as preview:
        assert len(preview) == 32
        for position in (0, 24):
            inside = synthetic.truth[position]
            tint = preview.frame(position).astype(int) - np.asarray(synthetic.frames[position], int)
            assert tint[inside][:, 0].mean() > 20 > abs(tint[~inside][:, 0].mean()), "red over the shape only"


def test_a_region_absent_on_a_frame_is_marked_there_under_its_own_tag(gar_app_server, clip):
    _path, synthetic = clip
    client, _result, session = tracked(gar_app_server, clip)
    tracks = session.tracking.tracks
    assert client.predict(16, api_name="/seek_frame")[ROWS] == [], "the orange shape is away on frame 16"
    result = client.predict("<Prompt0>", api_name="/track_region")
    assert "<Prompt0> is not on this frame: the next mark puts it here" in notice(result)
    result = client.predict(*box_around(synthetic.companion[16]), api_name="/box")
    assert [r["tag"] for r in result[ROWS]] == ["<Prompt0>"] and sorted(tracks.regions) == [0], "no <Prompt1>"
    assert [r["tag"] for r in result[CANVAS]["regions"]] == ["<Prompt0>"]
    assert sorted(tracks.regions[0].keyframes) == [0, 16]
    result = client.predict(api_name="/propagate")
    assert "Propagated through 15 frames" in notice(result), notice(result)
    for position in (16, 24, 31):
        assert iou(tracks.mask(0, position), synthetic.companion[position]) >= 0.85, position
    result = client.predict("<Prompt0>", api_name="/track_region")  # present here: simply selected
    assert notice(result) == "" and result[ROWS][0]["selected"]


def test_the_app_tracks_with_a_sam2_checkpoint_and_says_so(gar_app_server, clip, tiny_sam2_dir):
    """The tiny random SAM 2 runs the app's path end to end: masks of the frame's size on every frame."""
    from components.tracking import app_tracker

    path, synthetic = clip
    path = unique_copy(path)
    services = gar_app_server.services
    saved, services.tracker = services.tracker, app_tracker(str(tiny_sam2_dir), "cpu")
    try:
        client = gar_app_server.client()
        client.predict(handle_file(str(path)), 0, 8, api_name="/track_video")
        client.predict(*box_around(synthetic.truth[0]), api_name="/box")
        result = client.predict(api_name="/propagate")
        assert "Propagated through 7 frames with the SAM 2 video tracker" in notice(result), notice(result)
        assert "SAM 2 video tracker" in shown(result[STATUS])
        tracks = tracking_session(gar_app_server, path.name).tracking.tracks
        assert len(tracks.clip) == 8 and tracks.clip.indices[-1] == 31
        masks = tracks.regions[0].masks
        assert sorted(masks) == list(range(8))
        for position in range(8):
            mask = tracks.mask(0, position)
            assert mask is None or mask.shape == (144, 192)
    finally:
        services.tracker = saved


def test_opening_another_image_while_tracks_are_unexported_asks_first(gar_app_server, clip):
    client, _result, session = tracked(gar_app_server, clip)
    cat = str(Path(__file__).parents[1] / "assets" / "examples" / "cat.jpg")
    result = client.predict(handle_file(cat), api_name="/load_image")
    assert "The tracked video shapes-" in shown(result[ASK]) and "has work that is not exported" in shown(
        result[ASK]
    )
    assert session.tracking is not None and session.tracking.tracks.presence(0)[5], "nothing is dropped yet"
    client.predict("stay", api_name="/answer")
    assert session.tracking is not None and len(session.tracking.tracks.regions) == 1
    client.predict(handle_file(cat), api_name="/load_image")
    result = client.predict("switch", api_name="/answer")
    assert "Opened cat.jpg; the previous work was discarded." in notice(result)
    assert session.tracking is None, "the person chose to discard the tracks"
