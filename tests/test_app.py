"""The app end to end through gradio_client: every action has an API, sessions stay apart,
bad input gives a notice, and the canvas receives compact masks rather than pictures."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, RunningApp
from gradio_client import handle_file
from helpers import shown
from PIL import Image, ImageDraw

from gar_app.formats.document import AnnotationDocument, from_json, to_json
from gar_app.rle import rle_to_mask

GREEDY = "Greedy (as in the paper)"
CAT = str(REPO / "assets" / "examples" / "cat.jpg")
COFFEE = str(REPO / "assets" / "examples" / "coffee.jpg")
# what most endpoints return, in order (gradio_client leaves out the state and the layout)
CANVAS, ROWS, CAPTION, CHAT, CHIPS, ASK, NOTICE = range(7)


def decoding(max_new_tokens: int = 16) -> tuple:
    return (GREEDY, 0.7, 0.9, max_new_tokens)


def export_paths(client) -> list[str]:
    files, _ask, notice = client.predict(api_name="/export")
    assert "Exported" in shown(notice), notice
    files = files["value"] if isinstance(files, dict) else files
    return [f["path"] if isinstance(f, dict) else f for f in files]


def exported(client) -> AnnotationDocument:
    session_file, training_file = export_paths(client)
    json.loads(Path(training_file).read_text())  # the training format is valid JSON too
    return from_json(Path(session_file).read_text())


def png_mask(part: dict) -> np.ndarray:
    """A canvas mask payload (1-bit PNG of the box) back as a boolean crop."""
    data = base64.b64decode(part["src"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))[..., 3] > 0


def last(job) -> tuple:
    return list(job)[-1]


def test_whole_flow_image_marks_describe_chat_export_import(gar_app_server):
    client = gar_app_server.client()
    result = client.predict(handle_file(CAT), api_name="/load_image")
    assert result[CANVAS]["image"]["width"] == 451 and result[CANVAS]["image"]["src"].startswith(
        "data:image/jpeg"
    )
    result = client.predict("include", 200, 130, api_name="/mark")
    rows, notice = result[ROWS], result[NOTICE]
    assert [r["tag"] for r in rows] == ["<Prompt0>"] and rows[0]["selected"] and notice == ""
    assert result[CANVAS]["regions"][0]["points"] == [[200.0, 130.0, 1]]
    client.predict(api_name="/new_region")
    client.predict(300, 40, 440, 200, api_name="/box")

    job = client.submit("<Prompt0>", *decoding(32), api_name="/describe")
    rows_seen = [update[0] for update in job]
    captions = [rows[0]["caption"] for rows in rows_seen if rows[0]["caption"]]
    assert len(captions) >= 2, "the caption streams into the region row"
    assert all(b.startswith(a) for a, b in zip(captions, captions[1:], strict=False))

    chats = [
        update[0]
        for update in client.submit("How does <Prompt1> relate to <Prompt0>?", *decoding(), api_name="/ask")
    ]
    assert chats[-1][0]["role"] == "user" and "gar-tag-1" in str(chats[-1][0]["content"])
    assert len(last(client.submit("And <Prompt0>?", *decoding(), api_name="/ask"))[0]) == 4

    document = exported(client)
    assert [r.tag for r in document.regions] == ["<Prompt0>", "<Prompt1>"]
    assert document.regions[0].caption == captions[-1].strip()
    assert document.regions[1].prompt_box == (300, 40, 440, 200)
    assert [t.role for t in document.dialogue] == ["user", "assistant"] * 2
    assert document.dialogue[1].model == gar_app_server.services.model_id

    saved = Path(export_paths(client)[0])
    fresh = gar_app_server.client()
    fresh.predict(handle_file(CAT), api_name="/load_image")
    fresh.predict(handle_file(str(saved)), api_name="/import")
    restored = exported(fresh)
    assert to_json(restored) == to_json(document)


def test_the_canvas_gets_the_picture_once_and_only_the_masks_that_changed(gar_app_server):
    client = gar_app_server.client()
    client.predict(handle_file(COFFEE), api_name="/load_image")
    first = client.predict("include", 300, 200, api_name="/mark")[CANVAS]
    assert "src" not in first["image"], "the photo is not sent again with each mark"
    part = first["regions"][0]["mask"]
    x0, y0, x1, y1 = part["box"]
    mask = exported(client).regions[0].mask
    assert np.array_equal(png_mask(part), mask[y0 : y1 + 1, x0 : x1 + 1]), "the PNG holds the mask bits"
    assert len(part["src"]) < 8000, "a compact mask, not a picture"
    client.predict(api_name="/new_region")
    second = client.predict(60, 40, 160, 120, api_name="/box")[CANVAS]
    assert "src" not in second["regions"][0]["mask"] and "src" in second["regions"][1]["mask"]
    assert second["regions"][0]["mask"]["key"] == part["key"]


def test_undo_and_redo_through_the_api(gar_app_server):
    client = gar_app_server.client()
    client.predict(handle_file(CAT), api_name="/load_image")
    client.predict("include", 200, 130, api_name="/mark")
    one = exported(client).regions[0].mask
    client.predict("include", 300, 150, api_name="/mark")
    two = exported(client).regions[0].mask
    client.predict(api_name="/undo")
    assert np.array_equal(exported(client).regions[0].mask, one)
    client.predict(api_name="/redo")
    assert np.array_equal(exported(client).regions[0].mask, two)
    client.predict("<Prompt0>", api_name="/delete_region")
    assert exported(client).regions == []
    client.predict(api_name="/undo")
    assert np.array_equal(exported(client).regions[0].mask, two)


def test_two_sessions_keep_separate_state(gar_app_server):
    first, second = gar_app_server.client(), gar_app_server.client()
    first.predict(handle_file(CAT), api_name="/load_image")
    second.predict(handle_file(COFFEE), api_name="/load_image")
    first.predict("include", 200, 130, api_name="/mark")
    for x, y in ((200, 150), (300, 200)):
        second.predict(api_name="/new_region")
        second.predict("include", x, y, api_name="/mark")

    results = {}

    def ask(name, client, question):
        results[name] = last(client.submit(question, *decoding(), api_name="/ask"))[0]

    threads = [
        threading.Thread(target=ask, args=("first", first, "What is <Prompt0>?")),
        threading.Thread(target=ask, args=("second", second, "Compare <Prompt0> with <Prompt1>.")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    one, two = exported(first), exported(second)
    assert one.image.name == "cat.jpg" and two.image.name == "coffee.jpg"
    assert len(one.regions) == 1 and len(two.regions) == 2
    assert [t.text for t in one.dialogue if t.role == "user"] == ["What is <Prompt0>?"]
    assert [t.text for t in two.dialogue if t.role == "user"] == ["Compare <Prompt0> with <Prompt1>."]
    assert "Compare" not in str(results["first"]) and "What is" not in str(results["second"])


def _notice(result) -> str:
    """The warning an action shows; a user's mistake never fails the event itself."""
    notice = result[-1] if isinstance(result, tuple) else result
    assert isinstance(notice, str) and "⚠️" in notice, f"expected a notice, got {result!r}"
    return shown(notice)


def test_bad_input_shows_a_clear_message_and_keeps_the_work(gar_app_server, tmp_path):
    client = gar_app_server.client()
    assert "load an image first" in _notice(client.predict("", *decoding(), api_name="/describe"))
    client.predict(handle_file(CAT), api_name="/load_image")
    assert "select a region first" in _notice(client.predict("", *decoding(), api_name="/describe"))
    assert "unknown tool" in _notice(client.predict("lasso", 1, 2, api_name="/mark"))
    assert "outside the 451x300 image" in _notice(client.predict("include", 900, 2, api_name="/mark"))
    client.predict("include", 200, 130, api_name="/mark")

    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    client.predict(api_name="/export")  # saved, so opening another image does not ask first
    result = client.predict(handle_file(str(corrupt)), api_name="/load_image")
    assert "not a valid image" in _notice(result)
    assert result[CANVAS]["image"] is not None and result[ROWS][0]["tag"] == "<Prompt0>", (
        "the work is still shown"
    )

    bad_video = tmp_path / "clip.mp4"
    bad_video.write_bytes(b"not a video at all" * 100)
    assert "video" in _notice(client.predict(handle_file(str(bad_video)), 0, api_name="/use_frame")).lower()
    assert "<Prompt3>, which is not a region" in _notice(
        last(client.submit("What is <Prompt3>?", *decoding(), api_name="/ask"))
    )
    assert "not a region tag" in _notice(
        last(client.submit("What is <Prompt01>?", *decoding(), api_name="/ask"))
    )

    broken = tmp_path / "session.json"
    broken.write_text('{"format": "gar-app/1", "image": 3}')
    assert "not a valid GAR App export" in _notice(
        client.predict(handle_file(str(broken)), api_name="/import")
    )
    not_json = tmp_path / "notes.json"
    not_json.write_text("these are not JSON")
    assert "JSON" in _notice(client.predict(handle_file(str(not_json)), api_name="/import"))
    assert "no open question" in _notice(client.predict("switch", api_name="/answer"))

    document = exported(client)
    assert document.image.name == "cat.jpg" and [r.tag for r in document.regions] == ["<Prompt0>"]


def test_another_image_with_unsaved_work_asks_first(gar_app_server):
    client = gar_app_server.client()
    client.predict(handle_file(CAT), api_name="/load_image")
    client.predict("include", 200, 130, api_name="/mark")
    result = client.predict(handle_file(COFFEE), api_name="/load_image")
    assert "cat.jpg has work that is not exported" in shown(result[ASK]) and "coffee.jpg" in shown(
        result[ASK]
    )
    assert result[CANVAS]["status"].startswith("cat.jpg"), "nothing is thrown away while the question waits"
    assert "the open question takes switch or stay" in _notice(client.predict("keep", api_name="/answer"))
    result = client.predict("stay", api_name="/answer")
    assert shown(result[ASK]) == "" and len(result[ROWS]) == 1
    client.predict(handle_file(COFFEE), api_name="/load_image")
    result = client.predict("switch", api_name="/answer")
    assert result[CANVAS]["status"].startswith("coffee.jpg") and result[ROWS] == []
    client.predict("include", 300, 200, api_name="/mark")
    client.predict(api_name="/export")
    assert client.predict(handle_file(CAT), api_name="/load_image")[CANVAS]["status"].startswith("cat.jpg"), (
        "exported work is saved: no question"
    )


def test_deleting_a_region_the_chat_used_asks_and_the_export_keeps_its_mask(gar_app_server):
    client = gar_app_server.client()
    client.predict(handle_file(COFFEE), api_name="/load_image")
    client.predict("include", 300, 200, api_name="/mark")
    client.predict(api_name="/new_region")
    client.predict(60, 40, 160, 120, api_name="/box")
    old = exported(client).regions[1].mask
    last(client.submit("Compare <Prompt0> and <Prompt1>.", *decoding(), api_name="/ask"))
    result = client.predict("<Prompt1>", api_name="/delete_region")
    assert "<Prompt1> was deleted after the conversation used it" in shown(result[ASK])
    result = client.predict("keep_conversation", api_name="/answer")
    assert shown(result[ASK]) == "" and len(result[CHAT]) == 2, "the conversation stays"
    client.predict(api_name="/new_region")
    result = client.predict(400, 250, 560, 380, api_name="/box")
    assert [r["tag"] for r in result[ROWS]] == ["<Prompt0>", "<Prompt2>"], "<Prompt1> is not reused"
    document = exported(client)
    assert np.array_equal(rle_to_mask(document.dialogue[0].masks["<Prompt1>"]), old)

    client.predict(api_name="/undo")  # the new region
    client.predict(api_name="/undo")  # the deletion: the old mask is back, nothing is out of date
    assert [r.tag for r in exported(client).regions] == ["<Prompt0>", "<Prompt1>"]
    client.predict("<Prompt0>", api_name="/select_region")
    result = client.predict("include", 100, 300, api_name="/mark")
    assert "<Prompt0> was edited after the conversation used it" in shown(result[ASK])
    result = client.predict("new_conversation", api_name="/answer")
    assert shown(result[ASK]) == "" and result[CHAT] == []
    assert exported(client).dialogue == []


def test_the_chat_clear_means_the_next_answer_sees_no_old_turn(gar_app_server):
    client = gar_app_server.client()
    client.predict(handle_file(CAT), api_name="/load_image")
    client.predict("include", 200, 130, api_name="/mark")
    fresh = last(client.submit("What is <Prompt0>?", *decoding(), api_name="/ask"))[0][-1]["content"]
    last(client.submit("Describe <Prompt0> again, differently.", *decoding(), api_name="/ask"))
    assert client.predict(api_name="/new_conversation")[CHAT] == []
    chat = last(client.submit("What is <Prompt0>?", *decoding(), api_name="/ask"))[0]
    assert len(chat) == 2 and chat[-1]["content"] == fresh, "the answer is the one a fresh conversation gives"


def test_without_weights_the_app_annotates_and_exports():
    from gar_app.segment import load_segmenter
    from gar_app.workspace import Services

    server = RunningApp(
        Services(segmenter=load_segmenter(None), gar_problem="cannot fetch HaochenWang/GAR-1B")
    )
    try:
        import urllib.request

        html = urllib.request.urlopen(server.url + "config").read().decode()
        assert "Annotation mode" in html and "GrabCut fallback" in html
        client = server.client()
        client.predict(handle_file(CAT), api_name="/load_image")
        client.predict("include", 200, 130, api_name="/mark")
        client.predict("<Prompt0>", "my own caption", api_name="/set_caption")
        assert "Annotation mode" in _notice(client.predict("<Prompt0>", *decoding(), api_name="/describe"))
        assert exported(client).regions[0].caption == "my own caption"
    finally:
        server.close()


def test_strokes_and_mask_upload_through_the_api(gar_app_server, tmp_path):
    client = gar_app_server.client()
    image = Image.new("RGB", (200, 120), (120, 120, 120))
    ImageDraw.Draw(image).ellipse((20, 20, 90, 100), fill=(200, 40, 40))
    path = tmp_path / "scene.png"
    image.save(path)
    client.predict(handle_file(str(path)), api_name="/load_image")
    result = client.predict(json.dumps([[40, 60], [70, 60]]), 4, False, api_name="/stroke")
    assert result[ROWS][0]["meta"].startswith("scribble") and result[CANVAS]["regions"][0]["scribble"]["src"]
    client.predict(json.dumps([[50, 50], [50, 70]]), 3, True, api_name="/stroke")
    strokes = exported(client).regions[0].scribble
    assert strokes and not any(46 <= x <= 54 for x, _y in strokes), "the erased part is gone"

    client.predict(api_name="/new_region")
    mask = np.zeros((60, 100), dtype=np.uint8)  # half size: fitted, with a notice
    mask[15:45, 60:90] = 255
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_path)
    result = client.predict(handle_file(str(mask_path)), api_name="/upload_mask")
    assert "scaled to fit" in shown(result[NOTICE]) and result[ROWS][1]["meta"].startswith("mask")
    assert exported(client).regions[1].area == 60 * 60
    square = tmp_path / "square.png"
    Image.fromarray(np.full((50, 50), 255, np.uint8)).save(square)
    assert "another aspect ratio" in _notice(
        client.predict(handle_file(str(square)), api_name="/upload_mask")
    )


def test_stop_ends_the_answer_and_keeps_it(slow_app):
    client = slow_app.client()
    client.predict(handle_file(CAT), api_name="/load_image")
    client.predict("include", 200, 130, api_name="/mark")
    job = client.submit("Describe <Prompt0> at length.", *decoding(2048), api_name="/ask")
    deadline = time.time() + 60
    while time.time() < deadline and not any(u[0] and u[0][-1]["role"] == "assistant" for u in job.outputs()):
        time.sleep(0.05)
    started = time.time()
    client.predict(api_name="/stop")
    job.result(timeout=60)
    assert time.time() - started < 10, "Stop ends generation within a few steps, not after 2048 tokens"
    answer = exported(client).dialogue[-1]
    assert answer.role == "assistant" and answer.text, "what was generated before Stop is kept"
    follow_up = last(client.submit("And now?", *decoding(), api_name="/ask"))[0]
    assert len(follow_up) == 4, "the conversation goes on after a stop"


def test_video_frame_becomes_the_image_and_the_export_says_so(gar_app_server):
    clip = REPO / "assets" / "examples" / "photo_tour.webm"
    client = gar_app_server.client()
    frame_slider, _preview, _time, _notice = client.predict(handle_file(str(clip)), api_name="/load_video")
    assert frame_slider["maximum"] >= 10
    result = client.predict(handle_file(str(clip)), 12, api_name="/use_frame")
    assert "Frame 12 of photo_tour.webm is on the canvas" in shown(result[NOTICE])
    client.predict("include", 160, 120, api_name="/mark")
    document = exported(client)
    assert document.video.name == "photo_tour.webm" and document.video.frame_index == 12
    assert document.video.time_s == pytest.approx(12 / 8, abs=1e-3)
    assert (document.image.width, document.image.height) == (320, 240)
