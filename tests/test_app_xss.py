"""Text reaches the page as text: captions, dialogue, file names and notices that look like
script, templates, HTML or Markdown are shown as written, after an import and after being
typed, and nothing runs (no dialog opens, no global is set)."""

from __future__ import annotations

import numpy as np
import pytest
from browser import ARTIFACTS, after, browser, click_at, load, page, unique_copy

from gar_app.conversation import Turn
from gar_app.formats.document import AnnotationDocument, ExportedRegion, ImageInfo, pixels_sha256, to_json
from gar_app.images import load_image
from gar_app.regions import region_colour

pytestmark = [pytest.mark.browser, pytest.mark.slow]
__all__ = ["browser", "page"]  # fixtures from tests/browser.py

PAYLOADS = [
    "${alert(document.domain)}",
    "${window.__xss = 'template'}",
    "<script>window.__xss = 'script'</script>",
    "<img src=x onerror=\"window.__xss = 'img'\">",
    "C:\\users\\me\\new folder",
    "**bold** _italic_ [link](javascript:window.__xss='md') `code` # not a heading",
    "<b>bold</b> &amp; &lt;b&gt; {{value}} {{#each value}}x{{/each}} $$x^2$$ \\(y\\)",
]
NOTHING_RAN = "window.__xss === undefined && !document.querySelector('#gar-chat img, .gar-regions img, #gar-notice img')"


def document_for(path, name: str = "cat.jpg") -> AnnotationDocument:
    """Regions captioned with the payloads and a dialogue made of them, for the image at ``path``."""
    image = load_image(path)
    info = ImageInfo(name, image.width, image.height, pixels_sha256(image), "pixels")
    regions = []
    for index, caption in enumerate(PAYLOADS[:5]):
        mask = np.zeros((image.height, image.width), bool)
        mask[20 + 50 * index : 60 + 50 * index, 30:120] = True
        regions.append(ExportedRegion(index, region_colour(index).lower(), "mask", mask, caption))
    dialogue = []
    for question, answer in zip(PAYLOADS, PAYLOADS[1:] + PAYLOADS[:1], strict=True):
        dialogue.append(Turn("user", f"<Prompt0> {question}", "2025-06-01T12:00:00Z"))
        dialogue.append(Turn("assistant", answer, "2025-06-01T12:00:01Z", "tiny", {}))
    return AnnotationDocument(info, regions, dialogue)


def rows(page) -> list[str]:
    return page.locator(".gar-region-caption").all_inner_texts()


def chat(page) -> list[str]:
    return [
        t.strip() for t in page.locator("#gar-chat .message.user, #gar-chat .message.bot").all_inner_texts()
    ]


def test_imported_captions_and_dialogue_are_shown_as_written(page, tmp_path):
    cat = unique_copy("cat.jpg", tmp_path)
    load(page, cat)
    saved = tmp_path / "payloads.gar.json"
    saved.write_text(to_json(document_for(cat)))
    after(page, lambda: page.locator("input[type=file][accept*='.json']").set_input_files(str(saved)))
    page.wait_for_function("document.querySelectorAll('.gar-region-row').length === 5")
    assert rows(page) == PAYLOADS[:5]
    page.get_by_role("tab", name="Chat").click()
    page.wait_for_function("document.querySelectorAll('#gar-chat .message.bot').length === 7")
    expected = []
    for question, answer in zip(PAYLOADS, PAYLOADS[1:] + PAYLOADS[:1], strict=True):
        expected += [f"<Prompt0> {question}", answer]
    assert chat(page) == expected
    page.screenshot(path=str(ARTIFACTS / "xss-imported.png"))
    assert page.evaluate(NOTHING_RAN) and page.dialogs == []
    assert page.locator(".gar-cv-status").inner_text().startswith(cat.name)


def test_typed_captions_and_questions_are_shown_as_written(page, tmp_path):
    cat = unique_copy("cat.jpg", tmp_path)
    load(page, cat)
    click_at(page, 200, 130)
    caption = page.locator("#gar-caption textarea")
    for text in PAYLOADS:
        caption.fill(text)
        after(page, lambda: page.locator(".gar-cv-status").click())  # leaving the box saves the caption
        page.wait_for_function(
            "t => document.querySelector('.gar-region-caption').textContent === t", arg=text
        )
    page.get_by_role("tab", name="Chat").click()
    question = page.locator("#gar-question textarea")
    question.fill("<Prompt0> " + " ".join(PAYLOADS))
    page.get_by_role("button", name="Send").click()
    page.locator("#gar-chat .message.user").first.wait_for()
    assert chat(page)[0] == "<Prompt0> " + " ".join(PAYLOADS)
    assert page.evaluate(NOTHING_RAN) and page.dialogs == []


def test_file_names_in_the_status_line_and_notices_are_shown_as_written(page, tmp_path):
    name = "${window.__xss = 'name'}<img src=x onerror=\"window.__xss = 'name'\">.png"
    odd = tmp_path / name
    odd.write_bytes((unique_copy("cat.jpg", tmp_path)).read_bytes())
    load(page, odd)
    assert page.locator(".gar-cv-status").inner_text().startswith(name)
    click_at(page, 200, 130)

    foreign = tmp_path / "foreign.gar.json"
    document = document_for(unique_copy("coffee.jpg", tmp_path), name=PAYLOADS[3] + PAYLOADS[0])
    foreign.write_text(to_json(document))
    page.locator("input[type=file][accept*='.json']").set_input_files(str(foreign))
    notice = page.locator("#gar-notice .gar-notice")
    notice.wait_for()
    assert f"this file annotates {PAYLOADS[3] + PAYLOADS[0]} (600x400)" in notice.inner_text()

    page.get_by_role("button", name="Export JSON").click()
    link = page.locator('a[download$=".gar.json"]')
    link.wait_for()
    assert link.get_attribute("download") == "window.__xss_name_img_src_x_onerror_window.__xss_name.gar.json"
    assert page.evaluate(NOTHING_RAN) and page.dialogs == []
