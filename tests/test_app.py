"""The app end to end through gradio_client: the whole flow, two sessions, bad input, no weights."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, RunningApp
from gradio_client import handle_file
from PIL import Image, ImageDraw

from gar_app import export

GREEDY = "Greedy (as in the paper)"
CAT = str(REPO / "assets" / "examples" / "cat.jpg")
COFFEE = str(REPO / "assets" / "examples" / "coffee.jpg")


def decoding(max_new_tokens: int = 16) -> tuple:
    return (GREEDY, 0.7, 0.9, max_new_tokens)


def exported(client) -> export.AnnotationDocument:
    result, notice = client.predict(api_name="/export")
    assert notice == "", notice
    files = result["value"] if isinstance(result, dict) else result
    session_file, training_file = (f["path"] if isinstance(f, dict) else f for f in files)
    json.loads(Path(training_file).read_text())  # the training format is valid JSON too
    return export.from_json(Path(session_file).read_text())


def test_whole_flow_image_point_describe_follow_up_export_import(gar_app_server, tmp_path):
    client = gar_app_server.client()
    client.predict(handle_file(CAT), api_name="/load_image")
    canvas, rows, pick, _caption, info, notice = client.predict("Include point", 200, 130, api_name="/mark")
    assert rows[0]["tag"] == "<Prompt0>" and "Marks now edit `<Prompt0>`" in info and notice == ""
    drawn = np.asarray(Image.open(canvas).convert("RGB")).astype(int)
    plain = np.asarray(Image.open(CAT).convert("RGB")).astype(int)
    assert drawn.shape == plain.shape and np.abs(drawn - plain).sum(-1).max() > 100, "the mask is drawn"
    client.predict(api_name="/new_region")
    client.predict("Box", 300, 40, api_name="/mark")
    client.predict("Box", 440, 200, api_name="/mark")

    job = client.submit("<Prompt0>", *decoding(32), api_name="/describe")
    captions = [update[3]["value"] if isinstance(update[3], dict) else update[3] for update in job]
    streamed = [c for c in captions if c]
    assert len(streamed) >= 2, "the caption arrives in pieces"
    assert all(b.startswith(a) for a, b in zip(streamed, streamed[1:], strict=False))

    job = client.submit("How does <Prompt1> relate to <Prompt0>?", *decoding(), api_name="/ask")
    chats = [update[0] for update in job]
    assert chats[-1][0]["role"] == "user" and "gar-tag-1" in str(chats[-1][0]["content"])
    job = client.submit("And <Prompt0>?", *decoding(), api_name="/ask")
    assert len(list(job)[-1][0]) == 4, "the follow-up joins the conversation"

    document = exported(client)
    assert [r.tag for r in document.regions] == ["<Prompt0>", "<Prompt1>"]
    assert document.regions[0].caption == streamed[-1].strip()
    assert [t.role for t in document.dialogue] == ["user", "assistant"] * 2
    assert document.dialogue[1].model == gar_app_server.services.model_id

    saved = tmp_path / "session.json"
    saved.write_text(export.to_json(document))
    fresh = gar_app_server.client()
    fresh.predict(handle_file(CAT), api_name="/load_image")
    fresh.predict(handle_file(str(saved)), api_name="/import")
    restored = exported(fresh)
    assert export.to_json(restored) == export.to_json(document)
    for a, b in zip(document.regions, restored.regions, strict=True):
        assert np.array_equal(a.mask, b.mask)


def test_two_sessions_keep_separate_state(gar_app_server):
    first, second = gar_app_server.client(), gar_app_server.client()
    first.predict(handle_file(CAT), api_name="/load_image")
    second.predict(handle_file(COFFEE), api_name="/load_image")
    first.predict("Include point", 200, 130, api_name="/mark")
    for x, y in ((200, 150), (300, 200)):
        second.predict(api_name="/new_region")
        second.predict("Include point", x, y, api_name="/mark")

    results = {}

    def ask(name, client, question):
        results[name] = list(client.submit(question, *decoding(), api_name="/ask"))[-1][0]

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


def _error(call) -> str:
    """The notice an action shows; a user's mistake never fails the event itself."""
    result = call()
    notice = result[-1] if isinstance(result, tuple) else result
    assert isinstance(notice, str) and notice.startswith("⚠️"), f"expected a notice, got {result!r}"
    return notice


def test_bad_input_shows_a_clear_message_and_keeps_the_work(gar_app_server, tmp_path):
    client = gar_app_server.client()
    assert "load an image first" in _error(lambda: client.predict(None, *decoding(), api_name="/describe"))
    client.predict(handle_file(CAT), api_name="/load_image")
    assert "Select a region to describe" in _error(lambda: client.predict(None, *decoding(), api_name="/describe"))
    client.predict("Include point", 200, 130, api_name="/mark")

    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    result = client.predict(handle_file(str(corrupt)), api_name="/load_image")
    assert "not a valid image" in _error(lambda: result)
    assert result[0] is not None and result[1][0]["tag"] == "<Prompt0>", "the canvas shows the work again"

    bad_video = tmp_path / "clip.mp4"
    bad_video.write_bytes(b"not a video at all" * 100)
    message = _error(lambda: client.predict(handle_file(str(bad_video)), 0, api_name="/use_frame"))
    assert "video" in message.lower()

    message = _error(lambda: client.predict("What is <Prompt3>?", *decoding(), api_name="/ask"))
    assert "<Prompt3>, which is not a region" in message

    broken = tmp_path / "session.json"
    broken.write_text('{"format": "gar-app/1", "image": 3}')
    assert "not a valid GAR App export" in _error(lambda: client.predict(handle_file(str(broken)), api_name="/import"))
    not_json = tmp_path / "notes.json"
    not_json.write_text("these are not JSON")
    assert "JSON" in _error(lambda: client.predict(handle_file(str(not_json)), api_name="/import"))

    document = exported(client)
    assert document.image.name == "cat.jpg" and [r.tag for r in document.regions] == ["<Prompt0>"]


def test_without_weights_the_app_annotates_and_exports():
    from gar_app.segment import load_segmenter
    from gar_app.workspace import Services

    sys_services = Services(segmenter=load_segmenter(None), gar_problem="cannot fetch HaochenWang/GAR-1B")
    server = RunningApp(sys_services)
    try:
        page = server.client().view_api(return_format="dict")
        assert "/mark" in page["named_endpoints"]
        import urllib.request

        html = urllib.request.urlopen(server.url + "config").read().decode()
        assert "Annotation mode" in html and "GrabCut fallback" in html
        client = server.client()
        client.predict(handle_file(CAT), api_name="/load_image")
        client.predict("Include point", 200, 130, api_name="/mark")
        client.predict("<Prompt0>", "my own caption", api_name="/set_caption")
        message = _error(lambda: client.predict("<Prompt0>", *decoding(), api_name="/describe"))
        assert "Annotation mode" in message
        document = exported(client)
        assert document.regions[0].caption == "my own caption"
    finally:
        server.close()


def test_scribble_and_mask_upload_through_the_api(gar_app_server, tmp_path):
    client = gar_app_server.client()
    image = Image.new("RGB", (200, 120), (120, 120, 120))
    ImageDraw.Draw(image).ellipse((20, 20, 90, 100), fill=(200, 40, 40))
    path = tmp_path / "scene.png"
    image.save(path)
    client.predict(handle_file(str(path)), api_name="/load_image")
    mask = np.zeros((120, 200), dtype=np.uint8)
    mask[30:90, 120:180] = 255
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_path)
    _canvas, rows, *_ = client.predict(handle_file(str(mask_path)), api_name="/upload_mask")
    assert rows[0]["source"] == "mask" and rows[0]["area"] == f"{60 * 60:,}"
    document = exported(client)
    assert np.array_equal(document.regions[0].mask, mask > 0)


def test_stop_ends_the_answer_and_keeps_it(slow_app):
    client = slow_app.client()
    client.predict(handle_file(CAT), api_name="/load_image")
    client.predict("Include point", 200, 130, api_name="/mark")
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
    follow_up = client.predict("And now?", *decoding(), api_name="/ask")[0]
    assert len(follow_up) == 4, "the conversation goes on after a stop"


def test_video_frame_becomes_the_image_and_the_export_says_so(gar_app_server):
    clip = REPO / "assets" / "examples" / "photo_tour.webm"
    client = gar_app_server.client()
    frame_slider, _preview, _notice = client.predict(handle_file(str(clip)), api_name="/load_video")
    assert frame_slider["maximum"] >= 10
    client.predict(handle_file(str(clip)), 12, api_name="/use_frame")
    client.predict("Include point", 160, 120, api_name="/mark")
    document = exported(client)
    assert document.video.name == "photo_tour.webm" and document.video.frame_index == 12
    assert document.video.time_s == pytest.approx(12 / 8, abs=1e-3)
    assert (document.image.width, document.image.height) == (320, 240)
