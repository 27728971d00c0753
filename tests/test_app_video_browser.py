"""Tracking a video in a real browser (Debian's chromium driven by Playwright).

A synthetic clip with known masks is opened from the Video tab for tracking; the shape is
boxed on frame 0 on the canvas, propagated, and the frame scrubber moved to a later frame:
the canvas shows that frame, the mask there matches the shape, and the timeline shows the
region where it is present. Cancel stops a propagation half-way. Screenshots go to
test-artifacts/ for people to look at.
"""

from __future__ import annotations

import re
import time
import uuid

import numpy as np
import pytest
from browser import ARTIFACTS, after, browser, drag, open_page, page, short_answers
from helpers import iou
from tracking_helpers import SlowTracker, tracking_session

from gar_app.images import mask_box
from gar_app.tracking.synthetic import moving_shape_clip, write_clip

pytestmark = [pytest.mark.browser, pytest.mark.slow]
__all__ = ["browser", "page"]  # fixtures from tests/browser.py


@pytest.fixture(scope="module")
def synthetic():
    return moving_shape_clip(frames=32, companion=True)


def clip_file(synthetic, folder):
    """The clip as WebM (VP8 plays in the Video tab's player) under a name no other test uses,
    so its server session can be found."""
    return write_clip(folder / f"shapes-{uuid.uuid4().hex[:8]}.webm", synthetic.frames, synthetic.fps, "VP80")


def notice_says(page, text: str) -> None:
    page.wait_for_function(
        "t => (document.querySelector('#gar-notice') || {}).textContent?.includes(t)", arg=text
    )


def open_for_tracking(page, path, frames: int = 32) -> None:
    """Upload the clip in the Video tab, keep every frame, and press Track regions in this video."""
    page.get_by_role("tab", name="Video").click()
    page.locator("#gar-video input[type=file]").set_input_files(str(path))
    page.get_by_text(f"{frames} frames", exact=False).first.wait_for()
    page.locator("#gar-track-fps input").fill("0")
    page.locator("#gar-track-max input").fill("0")
    after(page, lambda: page.get_by_role("button", name="Track regions in this video").click())
    notice_says(page, f"Tracking {path.name}: {frames} of its {frames} frames")
    page.wait_for_function(
        "() => document.querySelector('.gar-cv-status').textContent.includes('_frame00000.png')"
    )


def box_marks(page, mask) -> None:
    x0, y0, x1, y1 = mask_box(mask)
    page.locator("#gar-canvas").scroll_into_view_if_needed()
    drag(page, (x0 - 4, y0 - 4), (x1 + 4, y1 + 4))


def test_mark_propagate_scrub_and_see_the_mask_on_a_later_frame(page, gar_app_server, synthetic, tmp_path):
    path = clip_file(synthetic, tmp_path)
    open_for_tracking(page, path)
    assert page.locator("#gar-tracking").is_visible()
    assert "classical OpenCV tracker" in page.locator("#gar-track-status").inner_text()
    assert "GAR is an image model" in page.locator("#gar-track-status").inner_text()
    box_marks(page, synthetic.truth[0])
    session = tracking_session(gar_app_server, path.name)
    assert sorted(session.tracking.tracks.regions) == [0], "the box on frame 0 started <Prompt0>'s track"
    page.wait_for_selector(
        '#gar-timeline .gar-tl-row[data-tag="<Prompt0>"]'
    )  # the new region is on the timeline

    page.get_by_role("button", name="Propagate").click()
    notice_says(page, "Propagated through 31 frames")
    runs = page.locator('#gar-timeline .gar-tl-row[data-tag="<Prompt0>"] .gar-tl-run')
    spans = [(int(r.get_attribute("data-from")), int(r.get_attribute("data-to"))) for r in runs.all()]
    present = {p for a, b in spans for p in range(a, b + 1)}
    assert {p for p, t in enumerate(synthetic.truth) if t.sum() > 200} <= present, spans
    assert not present & {p for p, t in enumerate(synthetic.truth) if not t.any()}, "absent while it is away"

    slider = page.locator("#gar-track-frame input[type=range]")
    box = slider.bounding_box()
    after(page, lambda: page.mouse.click(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2))
    position = session.tracking.position
    assert 20 <= position <= 31, position
    page.wait_for_function(
        "p => document.querySelector('.gar-cv-status').textContent.includes(`_frame${String(p).padStart(5, '0')}.png`)",
        arg=position,
    )
    assert f"Frame {position} of 31" in page.locator("#gar-timeline .gar-tl-head").inner_text()
    shown = session.workspace.marking.regions[0].mask  # what the canvas was sent for this frame
    assert iou(shown, synthetic.truth[position]) >= 0.85
    assert np.array_equal(np.asarray(session.workspace.image), session.tracking.clip.frame(position))

    short_answers(page)  # tiny GAR, a few tokens a caption
    page.locator("#gar-describe-count input").fill("3")
    page.get_by_role("button", name="Describe over time").click()
    notice_says(page, "Pinned 3 caption(s) of <Prompt0>")
    captions = session.tracking.tracks.regions[0].captions
    pins = page.locator('#gar-timeline .gar-tl-row[data-tag="<Prompt0>"] .gar-tl-pin')
    assert pins.count() == 3
    assert [int(p.get_attribute("data-position")) for p in pins.all()] == [c.position for c in captions]
    assert pins.nth(1).get_attribute("title").endswith(captions[1].text), "the caption shows on hover"
    after(page, lambda: pins.nth(1).click())
    assert session.tracking.position == captions[1].position
    said = page.locator("#gar-timeline .gar-tl-caption")
    assert said.inner_text().startswith("<Prompt0> — frame") and captions[1].text in said.inner_text()
    assert captions[1].text in page.locator("#gar-region-list").inner_text(), "and in the region list"
    page.locator("#gar-canvas").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "video-tracking-1280.png"))

    track = page.locator('#gar-timeline .gar-tl-row[data-tag="<Prompt0>"] .gar-tl-track').bounding_box()
    after(
        page,
        lambda: page.mouse.click(track["x"] + track["width"] * (16.5 / 32), track["y"] + track["height"] / 2),
    )
    assert session.tracking.position == 16 and len(session.workspace.marking.regions) == 0, (
        "the shape is away"
    )
    assert page.locator("#gar-track-frame input[type=number]").input_value() == "16"

    after(page, lambda: page.locator('#gar-timeline .gar-tl-row[data-tag="<Prompt0>"] .gar-tl-chip').click())
    notice_says(page, "<Prompt0> is not on this frame: the next mark puts it here")
    box_marks(page, synthetic.companion[16])  # the tracker "lost" it: put <Prompt0> back here
    page.wait_for_function(
        "() => document.querySelector('#gar-region-list').textContent.includes('<Prompt0>')"
    )
    assert "<Prompt1>" not in page.locator("#gar-region-list").inner_text()
    assert sorted(session.tracking.tracks.regions[0].keyframes) == [0, 16]


def test_cancel_stops_a_propagation(page, gar_app_server, synthetic, tmp_path):
    services = gar_app_server.services
    saved, services.tracker = services.tracker, SlowTracker()
    try:
        path = clip_file(synthetic, tmp_path)
        open_for_tracking(page, path)
        box_marks(page, synthetic.truth[0])
        masks = tracking_session(gar_app_server, path.name).tracking.tracks.regions[0].masks
        page.get_by_role("button", name="Propagate").click()
        deadline = time.time() + 60
        while len(masks) < 4 and time.time() < deadline:
            time.sleep(0.05)
        page.screenshot(path=str(ARTIFACTS / "video-tracking-progress.png"))
        page.get_by_role("button", name="Cancel").click()
        notice_says(page, "Cancelled after")
        assert 3 <= len(masks) - 1 < 31
    finally:
        services.tracker = saved


BAR = "() => (document.querySelector('#gar-timeline .progress-text') || {}).textContent || ''"


def test_the_bar_shows_the_frames_done_and_cancel_stops_where_it_is(page, gar_app_server, tmp_path):
    """The classical tracker at full speed (about 100 frames a second on these small frames):
    the bar is never more than a moment behind the frames the tracker has done, and Cancel,
    pressed when the bar reads 100, stops the propagation a moment later, not hundreds of
    frames on."""
    services = gar_app_server.services
    timed = SlowTracker(seconds=0)
    saved, services.tracker = services.tracker, timed
    try:
        long = moving_shape_clip(frames=400)
        path = clip_file(long, tmp_path)
        open_for_tracking(page, path, frames=400)
        box_marks(page, long.truth[0])
        page.get_by_role("button", name="Propagate").click()
        samples = []  # (when, what the bar said)
        deadline = time.monotonic() + 120
        while not samples or samples[-1][1] < 100:
            assert time.monotonic() < deadline, f"the bar never reached 100: {samples[-5:]}"
            shown = re.match(r"\s*(\d+)/399 frames", page.evaluate(BAR))
            if shown:
                samples.append((time.monotonic(), int(shown.group(1))))
        pressed = time.monotonic()
        page.get_by_role("button", name="Cancel").click()
        page.wait_for_function(
            "() => /Cancelled after|Propagated through/.test(document.querySelector('#gar-notice').textContent)"
        )
        said = page.locator("#gar-notice").inner_text()
        # how long the bar had been out of date: since the first frame done that it does not count
        behind = [round(max(0, when - timed.done_at[count + 1]), 2) for when, count in samples]
        assert max(behind) < 1.0, f"seconds the bar was behind the frames done: {behind}"
        assert "Cancelled after" in said, f"Cancel pressed when the bar said {samples[-1][1]}, yet: {said}"
        stopped = int(re.search(r"Cancelled after (\d+) of 399", said)[1])
        late = timed.done_at[stopped] - pressed
        assert late < 1.0, (
            f"Cancel pressed at {samples[-1][1]} frames stopped after {stopped}, {late:.1f} s later"
        )
    finally:
        services.tracker = saved


def test_tracking_on_a_narrow_screen(browser, gar_app_server, synthetic, tmp_path):
    page = open_page(browser, gar_app_server.url, width=420, height=860)
    try:
        path = clip_file(synthetic, tmp_path)
        open_for_tracking(page, path)
        box_marks(page, synthetic.truth[0])
        page.get_by_role("button", name="Propagate").click()
        notice_says(page, "Propagated through 31 frames")
        page.locator("#gar-tracking").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "video-tracking-420.png"), full_page=True)
        track = page.locator("#gar-timeline .gar-tl-track").first.bounding_box()
        assert track["width"] > 200, "the timeline keeps most of the width"
    finally:
        page.context.close()
