"""The app in a real browser (Debian's chromium driven by Playwright).

Click on the image, see the coloured mask, insert a tag from its chip, ask, watch the answer
stream in, download the JSON. Screenshots go to test-artifacts/ for people to look at.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from conftest import REPO, REQUIRE_BROWSER, chromium, unavailable
from PIL import Image

ARTIFACTS = REPO / "test-artifacts"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip

pytestmark = [pytest.mark.browser]


@pytest.fixture()
def page(slow_app):
    executable = chromium()
    try:
        from playwright import sync_api
    except ImportError:
        unavailable("playwright is not installed (make test installs it)", REQUIRE_BROWSER)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
        tab = context.new_page()
        tab.goto(slow_app.url)
        tab.wait_for_selector("#gar-canvas")
        yield tab
        browser.close()


def _load_example(page, number: int) -> None:
    """Click an example thumbnail and wait until the app has taken the image."""
    page.locator("#gar-canvas").locator("..").locator("button:has(img)").nth(number).click()
    page.get_by_text("The next mark starts a new region").first.wait_for(timeout=30_000)
    page.wait_for_function("document.querySelector('#gar-canvas img') && document.querySelector('#gar-canvas img').complete")
    page.wait_for_timeout(300)


def _canvas_pixels(page) -> np.ndarray:
    shot = ARTIFACTS / "_canvas.png"
    page.locator("#gar-canvas img").first.screenshot(path=str(shot))
    return np.asarray(Image.open(shot).convert("RGB")).astype(int)


def _bot_text(page) -> str:
    messages = page.locator(".message.bot, [data-testid='bot']")
    return messages.last.inner_text() if messages.count() else ""


def test_click_see_mask_ask_watch_stream_download(page, tmp_path):
    page.screenshot(path=str(ARTIFACTS / "1-start.png"), full_page=True)
    _load_example(page, 2)  # the cat
    before = _canvas_pixels(page)

    box = page.locator("#gar-canvas img").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.42, box["y"] + box["height"] * 0.42)
    page.get_by_text("Marks now edit").wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    after = _canvas_pixels(page)
    page.screenshot(path=str(ARTIFACTS / "2-region-marked.png"), full_page=True)
    assert before.shape == after.shape
    redder = (after[..., 0] - after[..., 1]) - (before[..., 0] - before[..., 1])
    assert (redder > 40).sum() > 200, "the region appears in red on the canvas"

    page.locator(".gar-chip", has_text="<Prompt0>").click()
    question = page.get_by_label("Question")
    page.wait_for_function("document.querySelector('textarea[placeholder^=\"Mention regions\"]').value.includes('<Prompt0>')")
    question.press("End")
    question.type("what is this?")
    page.get_by_role("button", name="Send").click()

    seen = []
    deadline = time.time() + 60
    while time.time() < deadline:
        text = _bot_text(page)
        if text and (not seen or text != seen[-1]):
            seen.append(text)
        if len(seen) >= 3:
            break
        page.wait_for_timeout(100)
    page.screenshot(path=str(ARTIFACTS / "3-answer-streaming.png"), full_page=True)
    assert len(seen) >= 3, f"the answer should grow while it is generated; saw {seen!r}"
    assert all(b.startswith(a.rstrip("…")) for a, b in zip(seen, seen[1:], strict=False))

    page.get_by_role("button", name="Export JSON").click()
    link = page.locator('a[download="cat.gar.json"]')
    link.wait_for(timeout=30_000)
    with page.expect_download() as download:
        link.click()
    target = tmp_path / "session.json"
    download.value.save_as(target)
    page.screenshot(path=str(ARTIFACTS / "4-exported.png"), full_page=True)
    document = json.loads(target.read_text())
    assert document["format"] == "gar-app/1" and document["image"]["name"] == "cat.jpg"
    assert document["regions"][0]["tag"] == "<Prompt0>" and document["regions"][0]["colour"] == "#ff0000"
    assert document["dialogue"][0]["text"] == "<Prompt0> what is this?"


def test_bad_upload_shows_a_message_and_keeps_the_work(page, tmp_path):
    _load_example(page, 2)  # the cat
    box = page.locator("#gar-canvas img").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.42, box["y"] + box["height"] * 0.42)
    page.get_by_text("Marks now edit").wait_for(timeout=30_000)
    page.locator("#gar-canvas button[aria-label='Remove Image']").first.click()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    page.locator("#gar-canvas input[type=file]").set_input_files(str(broken))
    page.locator(".gar-notice-area", has_text="not a valid image").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "5-bad-upload.png"), full_page=True)
    assert "Traceback" not in page.content()
    assert page.locator(".gar-region-row").count() == 1, "the region is still listed"
    assert page.locator("#gar-canvas img").count() >= 1, "the marked image is back on the canvas"
    assert page.get_by_text("Error", exact=True).count() == 0, "no component is marked as failed"


def test_scribble_with_the_brush_makes_a_region(page):
    _load_example(page, 3)  # the coffee cup
    page.get_by_label("Scribble").check()
    page.get_by_role("button", name="Segment the scribble").wait_for()
    page.wait_for_timeout(1500)
    drawing = page.locator("canvas").first
    drawing.scroll_into_view_if_needed()
    box = drawing.bounding_box()
    x, y = box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.45
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(20):
        page.mouse.move(x + step * 6, y + (step % 5) * 3)
    page.mouse.up()
    page.get_by_role("button", name="Segment the scribble").click()
    page.get_by_text("from scribble").wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "6-scribble.png"), full_page=True)
    assert page.locator(".gar-region-row").count() == 1
    assert "scribble" in page.locator(".gar-region-row").first.inner_text()


def test_dragging_on_the_image_draws_a_box(page):
    _load_example(page, 3)  # the coffee cup
    box = page.locator("#gar-canvas img").first.bounding_box()
    start = (box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.2)
    end = (box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.8)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=12)
    page.mouse.up()
    page.get_by_text("from box").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "7-dragged-box.png"), full_page=True)
    rows = page.locator(".gar-region-row")
    assert rows.count() == 1 and "box" in rows.first.inner_text(), "one region from the box, no extra point"
