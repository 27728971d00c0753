"""Helpers for the browser tests: Debian's chromium through Playwright, the canvas's geometry
computed independently of the app's script, and the server-side session behind a page."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from conftest import REPO, REQUIRE_BROWSER, chromium, unavailable

ARTIFACTS = REPO / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EXAMPLES = REPO / "assets" / "examples"
TIMEOUT = 60_000  # ms; the CI machine has two cores


def sync_api():
    """Playwright's sync API: the test is skipped without it (failed in CI, which must have it)."""
    try:
        from playwright import sync_api
    except ImportError:
        unavailable("playwright is not installed (make test installs it)", REQUIRE_BROWSER)
    return sync_api


def launch(playwright):
    """Debian's chromium (the test is skipped when it is missing, failed in CI)."""
    return playwright.chromium.launch(executable_path=chromium(), args=ARGS)


@pytest.fixture(scope="module")
def browser():
    """One chromium per test module (import this fixture with ``page``)."""
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api().sync_playwright() as playwright:
        chromium_browser = launch(playwright)
        yield chromium_browser
        chromium_browser.close()


@pytest.fixture()
def page(browser, gar_app_server):
    """A fresh 1280x800 tab on the app with the tiny GAR."""
    tab = open_page(browser, gar_app_server.url)
    yield tab
    tab.context.close()


def open_page(browser, url: str, width: int = 1280, height: int = 800, scale: float = 1):
    context = browser.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=scale, accept_downloads=True
    )
    page = context.new_page()
    page.dialogs = []  # any alert/confirm/prompt a page opens is recorded (and dismissed)
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.set_default_timeout(TIMEOUT)
    page.goto(url)
    page.wait_for_selector("#gar-canvas canvas")
    return page


def unique_copy(name: str, folder: Path) -> Path:
    """An example image under a name no other test uses, so its server session can be found."""
    source = EXAMPLES / name
    target = folder / f"{source.stem}-{uuid.uuid4().hex[:8]}{source.suffix}"
    target.write_bytes(source.read_bytes())
    return target


def version(page) -> int:
    return int(page.locator("#gar-canvas").get_attribute("data-version") or 0)


def after(page, action) -> None:
    """Do ``action`` and wait until the server's answer is painted on the canvas."""
    before = version(page)
    action()
    page.wait_for_function(f"Number(document.querySelector('#gar-canvas').dataset.version) > {before}")


def load(page, path: Path) -> None:
    """Open an image through the file input inside #gar-canvas."""
    page.locator("#gar-canvas input[type=file]").set_input_files(str(path))
    page.wait_for_function(
        "name => document.querySelector('.gar-cv-status').textContent.startsWith(name)", arg=path.name
    )


def view(page) -> dict:
    import json

    page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")  # drawn
    return json.loads(page.locator("#gar-canvas").get_attribute("data-view"))


def fit(page, width: int, height: int) -> dict:
    """Where a width x height image sits when fitted and centred in the canvas, computed here."""
    box = page.locator("#gar-canvas canvas").bounding_box()
    scale = min(box["width"] / width, box["height"] / height)
    return {"s": scale, "ox": (box["width"] - width * scale) / 2, "oy": (box["height"] - height * scale) / 2}


def to_page(page, x: float, y: float, v: dict | None = None) -> tuple[float, float]:
    """Page coordinates of image pixel (x, y) for the view ``v`` (default: the current one)."""
    box = page.locator("#gar-canvas canvas").bounding_box()
    v = v or view(page)
    return box["x"] + v["ox"] + x * v["s"], box["y"] + v["oy"] + y * v["s"]


def click_at(page, x: float, y: float) -> None:
    after(page, lambda: page.mouse.click(*to_page(page, x, y)))


def drag(page, a: tuple[float, float], b: tuple[float, float], steps: int = 10) -> None:
    def gesture():
        page.mouse.move(*to_page(page, *a))
        page.mouse.down()
        page.mouse.move(*to_page(page, *b), steps=steps)
        page.mouse.up()

    after(page, gesture)


def press(page, key: str) -> None:
    """A shortcut that goes to the server (the canvas repaints when it has answered)."""
    after(page, lambda: page.keyboard.press(key))


def server_session(app, image_name: str):
    """The server-side ``Session`` of the page showing ``image_name`` (found in Gradio's state)."""
    from components.session import Session

    for state in list(app.demo.state_holder.session_data.values()):
        for value in list(state.state_data.values()):
            if (
                isinstance(value, Session)
                and value.workspace.info
                and value.workspace.info.name == image_name
            ):
                return value
    raise AssertionError(f"no session shows {image_name}")


def short_answers(page, tokens: int = 16) -> None:
    """Cap answers at a few tokens (the Decoding settings), so chat tests do not wait on long ones."""
    page.get_by_role("tab", name="Chat").click()
    page.get_by_text("Decoding").click()
    field = page.get_by_label("number input for Max new tokens")
    field.fill(str(tokens))
    field.press("Enter")


def answered(app, image_name: str, turns: int) -> str:
    """Wait until the conversation has ``turns`` turns, the model finished the last one and the
    chat's event is over (its final update, which re-renders the page, is on its way before
    anything the test does next)."""
    import time

    deadline = time.time() + TIMEOUT / 1000
    while time.time() < deadline:
        conversation = server_session(app, image_name).workspace.conversation
        chat = conversation.chat
        finished = len(conversation.turns) == turns and chat is not None and chat.turns[-1].finished
        # ...and its event has sent its last update: what the page does next arrives after it
        if finished and app.demo._queue.get_active_worker_count() == 0:
            return conversation.turns[-1].text
        time.sleep(0.05)
    last = chat.turns[-1].finished if chat is not None and chat.turns else None
    raise AssertionError(
        f"no finished answer number {turns // 2}: {len(conversation.turns)} turns, the last "
        f"finished: {last}, events running: {app.demo._queue.get_active_worker_count()}"
    )


def chat_settled(page) -> None:
    """Wait until the page has taken the chat event's end (Gradio's status tracker on the chat is
    hidden again): until then a click on Send is ignored, as Gradio ignores a pending event's trigger."""
    page.wait_for_function(
        "[...document.querySelectorAll('#gar-chat .wrap')].every(w => w.classList.contains('hide'))"
    )
