"""One person's session without a browser: marks, regions, captions, chat, export and import."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from gar_app import export
from gar_app.errors import InputError
from gar_app.model import GenerationSettings
from gar_app.segment import GrabCutSegmenter
from gar_app.workspace import ANNOTATION_MODE, Services, Workspace

SHORT = GenerationSettings(max_new_tokens=6)


def scene() -> Image.Image:
    """A grey picture with a red disc (left) and a blue square (right)."""
    image = Image.new("RGB", (160, 100), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    draw.ellipse((15, 20, 75, 80), fill=(220, 30, 30))
    draw.rectangle((100, 25, 145, 70), fill=(30, 30, 220))
    return image


@pytest.fixture()
def ws(tiny_gar) -> Workspace:
    workspace = Workspace(Services(segmenter=GrabCutSegmenter(), gar=tiny_gar))
    workspace.set_image(scene(), name="scene.png")
    return workspace


def test_points_box_and_new_region(ws):
    disc = ws.add_point(45, 50)
    assert disc.tag == "<Prompt0>" and disc.source == "points" and disc.mask[50, 45]
    ws.add_point(44, 48, positive=False)  # an exclude point refines the same region
    assert len(ws.regions) == 1 and list(ws.regions[0].prompt.labels) == [1, 0]
    ws.new_region()
    assert ws.box_click(95, 20) is None and ws.corner == (95.0, 20.0)
    square = ws.box_click(150, 75)
    assert square.tag == "<Prompt1>" and square.source == "box"
    x1, y1, x2, y2 = square.box
    assert x1 >= 95 and x2 <= 150 and y1 >= 20 and y2 <= 75
    canvas = ws.render()
    assert canvas.shape == (100, 160, 3)
    assert tuple(canvas[50, 45]) != tuple(np.asarray(scene())[50, 45])  # the region is drawn


def test_scribble_and_uploaded_mask(ws):
    stroke = np.zeros((100, 160), dtype=bool)
    stroke[45:55, 30:60] = True
    region = ws.add_scribble(stroke)
    assert region.source == "scribble" and region.mask[50, 45]
    ws.new_region()
    mask = np.zeros((50, 80), dtype=np.uint8)  # half size: resized to the image
    mask[12:35, 50:73] = 255
    uploaded = ws.add_mask(Image.fromarray(mask))
    assert uploaded.source == "mask" and uploaded.mask.shape == (100, 160) and uploaded.mask[45, 120]
    with pytest.raises(InputError, match="empty"):
        ws.add_mask(Image.fromarray(np.zeros((100, 160), dtype=np.uint8)))
    with pytest.raises(InputError, match="scribble is empty"):
        ws.add_scribble(np.zeros((100, 160), dtype=bool))


def test_region_limit_and_deletion_keep_tags(ws):
    for k in range(5):
        ws.new_region()
        ws.add_mask(np.pad(np.ones((5, 5), bool), ((k * 10, 95 - k * 10), (0, 155))))
    with pytest.raises(InputError, match="at most 5 regions"):
        ws.new_region()
    ws.delete("<Prompt1>")
    assert ws.regions.tags == ["<Prompt0>", "<Prompt2>", "<Prompt3>", "<Prompt4>"]
    ws.new_region()
    assert ws.add_point(45, 50).tag == "<Prompt1>"  # the freed number is reused


def test_caption_streams_into_the_region(ws):
    ws.add_point(45, 50)
    texts = list(ws.stream_caption("<Prompt0>", SHORT))
    assert texts and all(b.startswith(a) for a, b in zip(texts, texts[1:], strict=False))
    assert ws.regions[0].caption == texts[-1].strip()


def test_chat_turns_and_a_changed_region_starts_over(ws):
    ws.add_point(45, 50)
    ws.new_region()
    ws.box_click(95, 20)
    ws.box_click(150, 75)
    answers = list(ws.stream_answer("How is <Prompt0> placed next to <Prompt1>?", SHORT))
    assert answers
    first_session = ws.chat
    list(ws.stream_answer("And <Prompt1>?", SHORT))
    assert ws.chat is first_session, "follow-ups continue the same conversation"
    assert [t.role for t in ws.dialogue] == ["user", "assistant"] * 2
    assert ws.dialogue[1].model == ws.services.model_id and ws.dialogue[1].decoding["max_new_tokens"] == 6
    ws.select("<Prompt1>")
    smaller = np.zeros((100, 160), dtype=bool)
    smaller[30:60, 105:140] = True
    ws.add_mask(smaller)  # editing a region the conversation relies on
    list(ws.stream_answer("And now <Prompt1>?", SHORT))
    assert ws.chat is not first_session
    assert len(ws.dialogue) == 6, "the transcript keeps the earlier turns"


def test_bad_question_keeps_the_transcript(ws):
    ws.add_point(45, 50)
    list(ws.stream_answer("What is <Prompt0>?", SHORT))
    with pytest.raises(InputError, match="<Prompt3>, which is not a region"):
        list(ws.stream_answer("What is <Prompt3>?", SHORT))
    with pytest.raises(InputError, match="type a question"):
        list(ws.stream_answer("  ", SHORT))
    assert len(ws.dialogue) == 2


def test_export_and_restore_bit_identical(ws, tiny_gar):
    ws.add_point(45, 50)
    ws.set_caption(0, "a red disc")
    ws.new_region()
    ws.box_click(95, 20)
    ws.box_click(150, 75)
    list(ws.stream_answer("Compare <Prompt0> and <Prompt1>.", SHORT))
    text = export.to_json(ws.document())

    other = Workspace(Services(segmenter=GrabCutSegmenter(), gar=tiny_gar))
    other.set_image(scene(), name="scene.png")
    other.restore(export.from_json(text))
    assert export.to_json(other.document()) == text
    for a, b in zip(ws.regions, other.regions, strict=True):
        assert np.array_equal(a.mask, b.mask) and a.tag == b.tag and a.caption == b.caption


def test_restore_refuses_another_image(ws):
    ws.add_point(45, 50)
    document = ws.document()
    ws.set_image(Image.new("RGB", (160, 100), (0, 0, 0)), name="black.png")
    with pytest.raises(InputError, match="load that image first"):
        ws.restore(document)
    assert len(ws.regions) == 0


def test_restore_checks_a_document_that_names_its_image_by_file(ws, tmp_path):
    """Such a document was restored onto any image of its size; now the hash is checked too."""
    ws.add_point(45, 50)
    document = ws.document()
    scene().save(tmp_path / "scene.png")
    document.image = export.image_info(tmp_path / "scene.png")
    assert document.image.sha256_of == "file"
    ws.set_image(Image.new("RGB", (160, 100), (0, 0, 0)), name="black.png")
    with pytest.raises(InputError, match="this file annotates scene.png .*open scene.png itself"):
        ws.restore(document)
    assert len(ws.regions) == 0


def test_annotation_mode_without_a_model():
    ws = Workspace(Services(segmenter=GrabCutSegmenter()))
    with pytest.raises(InputError, match="load an image first"):
        ws.add_point(1, 1)
    ws.set_image(scene(), name="scene.png")
    ws.add_point(45, 50)
    ws.set_caption(0, "typed by hand")
    with pytest.raises(InputError, match=ANNOTATION_MODE[:20]):
        list(ws.stream_caption(0))
    with pytest.raises(InputError, match=ANNOTATION_MODE[:20]):
        list(ws.stream_answer("What is <Prompt0>?"))
    document = ws.document()
    assert document.regions[0].caption == "typed by hand" and document.dialogue == []


def test_only_the_most_recent_conversations_keep_their_cache(tiny_gar):
    services = Services(segmenter=GrabCutSegmenter(), gar=tiny_gar, max_live_chats=2)
    people = [Workspace(services) for _ in range(3)]
    for ws in people:
        ws.set_image(scene(), name="scene.png")
        ws.add_point(45, 50)
        list(ws.stream_answer("What is <Prompt0>?", SHORT))
    assert [ws.chat.holds_cache for ws in people] == [False, True, True]
    list(people[0].stream_answer("And again <Prompt0>?", SHORT))  # recomputed, then kept
    assert [ws.chat.holds_cache for ws in people] == [True, False, True]


def test_an_imported_dialogue_continues(ws, tiny_gar):
    ws.add_point(45, 50)
    list(ws.stream_answer("What is <Prompt0>?", SHORT))
    list(ws.stream_answer("Is <Prompt0> round?", SHORT))
    document = export.from_json(export.to_json(ws.document()))

    other = Workspace(Services(segmenter=GrabCutSegmenter(), gar=tiny_gar))
    other.set_image(scene(), name="scene.png")
    other.restore(document)
    assert other.chat is not None and [t.text for t in other.chat.turns] == [t.text for t in document.dialogue]
    list(other.stream_answer("And its colour?", SHORT))
    assert len(other.dialogue) == 6 and len(other.chat.turns) == 6
