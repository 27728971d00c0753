"""Click -> mask painted in Chromium, and bytes sent to the browser per click, on a 2048 px image:
the canvas (compact masks painted in the browser) against the approach it replaced (the
server draws the overlay into the photo and sends the whole picture back on every click).

    python bench/bench_canvas.py [--clicks 12]

Both pages use the same stand-in segmenter (a disc around the last point, ~1 ms) so the
figures are the UI's own cost; with SAM or GrabCut add the segmenter's time to both.
Bytes are what Chromium receives between the click and the paint (Network.dataReceived).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gar_app.segment.base import CheckedPrompt, Segmenter, SegmentResult  # noqa: E402

WIDTH, HEIGHT = 2048, 1536
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class DiscSegmenter(Segmenter):
    """A disc around the last point: instant and deterministic, so only the UI is measured."""

    name = "disc (benchmark stand-in)"

    def _set_rgb(self, rgb: np.ndarray) -> None:
        pass

    def _segment(self, prompt: CheckedPrompt) -> SegmentResult:
        mask = np.zeros((prompt.height, prompt.width), np.uint8)
        x, y = prompt.points[-1] if len(prompt.points) else prompt.box[:2]
        cv2.circle(mask, (int(x), int(y)), 220 + 10 * len(prompt.points), 1, -1)
        return SegmentResult(mask > 0, 1.0)


def photo(folder: Path) -> Path:
    """A 2048x1536 photo-like image (the cat example, enlarged, with noise) as a JPEG."""
    base = Image.open(Path(__file__).resolve().parents[1] / "assets" / "examples" / "cat.jpg").convert("RGB")
    array = np.asarray(base.resize((WIDTH, HEIGHT), Image.BICUBIC)).astype(np.int16)
    noisy = np.clip(array + np.random.default_rng(0).integers(-12, 12, array.shape), 0, 255).astype(np.uint8)
    path = folder / "photo2048.jpg"
    Image.fromarray(noisy).save(path, quality=90)
    return path


def before_demo(services):
    """The replaced approach, as main had it: a gr.Image whose select event returns the redrawn photo."""
    from gar_app.regions import render_overlay
    from gar_app.workspace import Workspace

    def load(state, path):
        ws = state or Workspace(services)
        ws.set_image(path, name="photo")
        return ws, None

    def clicked(state, evt: gr.SelectData):
        ws = state
        ws.marking.add_point(evt.index[0], evt.index[1])
        return ws, render_overlay(ws.image, ws.regions, selected=ws.marking.current)

    with gr.Blocks() as demo:
        state = gr.State(None)
        canvas = gr.Image(
            type="filepath", sources=["upload"], interactive=True, elem_id="gar-canvas", height=560
        )
        canvas.upload(load, [state, canvas], [state, gr.State()])
        canvas.select(clicked, [state], [state, canvas])
    return demo


WATCH_IMG = """() => { window.__painted = new Promise(resolve => {
  const img = document.querySelector('#gar-canvas img');
  const old = img.src;
  const check = () => { const now = document.querySelector('#gar-canvas img');
    if (now && now.src !== old && now.complete && now.naturalWidth) requestAnimationFrame(() => resolve(performance.now()));
    else setTimeout(check, 2); };
  check();
}); }"""
WATCH_CANVAS = """(before) => { window.__painted = new Promise(resolve => {
  const check = () => { const p = window.__garCanvasPainted;
    if (p && p.version > before) resolve(p.time); else requestAnimationFrame(check); };
  check();
}); }"""


def measure(page, cdp, target, clicks: int, canvas: bool) -> tuple[list[float], list[int]]:
    received: list[int] = []
    cdp.on("Network.dataReceived", lambda event: received.append(event["dataLength"]))
    cdp.send("Network.enable")
    times, sizes = [], []
    for i in range(clicks):
        box = target()
        x = box["x"] + box["width"] * (0.25 + 0.5 * (i % 4) / 3)
        y = box["y"] + box["height"] * (0.3 + 0.4 * (i // 4 % 2))
        page.evaluate(
            "() => { window.__clickAt = null; window.addEventListener('pointerdown', "
            "() => { window.__clickAt = performance.now(); }, {once: true, capture: true}); }"
        )
        version = page.evaluate("() => window.__garCanvasPainted ? window.__garCanvasPainted.version : 0")
        received.clear()
        page.evaluate(WATCH_CANVAS if canvas else WATCH_IMG, *([version] if canvas else []))
        page.mouse.click(x, y)
        painted = page.evaluate("() => window.__painted")
        times.append(painted - page.evaluate("() => window.__clickAt"))
        page.wait_for_timeout(150)  # let trailing network events arrive before counting
        sizes.append(sum(received))
    return times, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=12)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from app import build_demo
    from components.style import css
    from gar_app.workspace import Services

    folder = Path(tempfile.mkdtemp())
    image = photo(folder)
    results = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for name, demo, canvas in [
            ("before: server-drawn photo", before_demo(Services(DiscSegmenter())), False),
            ("after: compact masks on the canvas", build_demo(Services(DiscSegmenter())), True),
        ]:
            demo.queue()
            _app, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, css=css())
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url)
            page.wait_for_selector("#gar-canvas")
            page.locator("#gar-canvas input[type=file]").set_input_files(str(image))
            if canvas:
                page.wait_for_function("document.querySelector('.gar-cv-has-image')")
            else:
                page.wait_for_function(
                    "document.querySelector('#gar-canvas img') && "
                    "document.querySelector('#gar-canvas img').complete"
                )
            target = page.locator("#gar-canvas canvas" if canvas else "#gar-canvas img")
            cdp = page.context.new_cdp_session(page)
            measure(page, cdp, target.bounding_box, 2, canvas)  # warm-up
            results[name] = measure(page, cdp, target.bounding_box, args.clicks, canvas)
            print(f"measured {name}", file=sys.stderr, flush=True)
            page.close()
            demo.close()
        browser.close()

    print(
        f"{WIDTH}x{HEIGHT} image, {args.clicks} clicks each, Chromium headless (software rendering), "
        "stand-in segmenter"
    )
    print(f"{'':38s} {'click -> painted (median)':>26s} {'bytes per click (median)':>26s}")
    for name, (times, sizes) in results.items():
        print(f"{name:38s} {statistics.median(times):23.0f} ms {statistics.median(sizes):23,.0f} B")
    (t0, s0), (t1, s1) = results.values()
    print(
        f"after / before: time x{statistics.median(t1) / statistics.median(t0):.2f}, "
        f"bytes x{statistics.median(s1) / statistics.median(s0):.4f}"
    )


if __name__ == "__main__":
    main()
