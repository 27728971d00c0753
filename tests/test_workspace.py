"""One person's session without a browser: image, marking, captions, conversation, export, import."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from helpers import disc_and_square
from PIL import Image

from gar_app.errors import InputError
from gar_app.formats.document import VideoFrame, from_dict, from_json, image_info, to_dict, to_json
from gar_app.formats.training import to_training_records
from gar_app.model import GenerationSettings
from gar_app.rle import rle_to_mask
from gar_app.segment import GrabCutSegmenter
from gar_app.workspace import ANNOTATION_MODE, Services, Workspace

SHORT = GenerationSettings(max_new_tokens=6)


def ask(ws: Workspace, question: str) -> str:
    return list(ws.stream_answer(question, SHORT))[-1]


@pytest.fixture()
def ws(tiny_gar) -> Workspace:
    workspace = Workspace(Services(segmenter=GrabCutSegmenter(), gar=tiny_gar))
    workspace.set_image(disc_and_square(), name="scene.png")
    return workspace


@pytest.fixture()
def two_regions(ws) -> Workspace:
    ws.marking.add_point(45, 50)
    ws.marking.new_region()
    ws.marking.set_box((95, 20, 150, 75))
    return ws


def test_marks_make_regions_and_a_new_image_starts_over(ws):
    disc = ws.marking.add_point(45, 50)
    assert disc.tag == "<Prompt0>" and disc.mask[50, 45] and ws.unsaved
    ws.set_image(Image.new("RGB", (80, 60)), name="black.png")
    assert len(ws.regions) == 0 and ws.info.name == "black.png" and not ws.unsaved


def test_an_image_can_come_with_regions(ws):
    """What a video tab uses to show a frame with masks tracked from another frame."""
    tracked = {0: np.zeros((100, 160), bool), 3: np.zeros((100, 160), bool)}
    tracked[0][20:40, 20:40] = True
    tracked[3][50:70, 100:140] = True
    ws.set_image(
        disc_and_square(), name="clip_frame00012.png", video=VideoFrame("clip.webm", 12, 0.5), regions=tracked
    )
    assert ws.regions.tags == ["<Prompt0>", "<Prompt3>"]
    assert np.array_equal(ws.regions[3].mask, tracked[3]) and not ws.marking.can_undo
    assert ws.document().video.frame_index == 12


def test_an_uploaded_mask_of_the_same_shape_is_fitted_and_another_shape_refused(ws):
    half = np.zeros((50, 80), np.uint8)
    half[12:35, 50:73] = 255
    region, note = ws.add_mask(Image.fromarray(half))
    assert region.mask.shape == (100, 160) and region.mask[45, 120] and not region.mask[10, 10]
    assert note == "the mask is 80x50, the image 160x100: scaled to fit (same aspect ratio)"
    with pytest.raises(InputError, match="80x80 but the image is 160x100: another aspect ratio"):
        ws.add_mask(Image.fromarray(np.full((80, 80), 255, np.uint8)))
    _same, note = ws.add_mask(Image.fromarray(np.pad(half, ((25, 25), (40, 40)))))
    assert note is None
    with pytest.raises(InputError, match="empty"):
        ws.add_mask(Image.fromarray(np.zeros((100, 160), np.uint8)))


def test_a_caption_fills_in_while_it_streams(ws):
    ws.marking.add_point(45, 50)
    seen = []
    for text in ws.stream_caption("<Prompt0>", SHORT):
        seen.append((text, ws.regions[0].caption))
    assert len(seen) >= 2 and all(caption == text.strip() for text, caption in seen)
    assert ws.regions[0].caption == seen[-1][0].strip()


def test_follow_ups_continue_one_conversation(two_regions):
    ws = two_regions
    ask(ws, "How is <Prompt0> placed next to <Prompt1>?")
    chat = ws.conversation.chat
    ask(ws, "And <Prompt1>?")
    assert ws.conversation.chat is chat and len(chat.turns) == 4
    assert [t.role for t in ws.conversation.turns] == ["user", "assistant"] * 2
    assert ws.conversation.turns[1].model == ws.services.model_id
    assert ws.conversation.turns[1].decoding["max_new_tokens"] == 6


def test_new_conversation_forgets_every_turn(two_regions):
    ws = two_regions
    first = ask(ws, "What is <Prompt0>?")
    ask(ws, "Is <Prompt1> blue?")
    ws.new_conversation()
    again = ask(ws, "What is <Prompt0>?")
    assert again == first, "a fresh conversation answers as the first one did"
    assert len(ws.conversation.chat.turns) == 2 and len(ws.conversation.turns) == 2


def test_editing_a_region_the_conversation_used_is_flagged_and_refused_until_decided(two_regions):
    ws = two_regions
    ask(ws, "Compare <Prompt0> and <Prompt1>.")
    old = ws.regions[1].mask.copy()
    ws.marking.select("<Prompt1>")
    ws.marking.set_box((100, 25, 130, 60))
    assert ws.conversation.conflicts(ws.regions) == [1]
    with pytest.raises(InputError, match="<Prompt1> changed after this conversation used it"):
        ask(ws, "What about <Prompt1> now?")
    ask(ws, "And <Prompt0>?")  # regions that did not change can still be asked about
    ws.conversation.keep_old_masks(ws.regions)
    assert ws.conversation.conflicts(ws.regions) == [] and ws.conversation.changed(ws.regions) == [1]
    document = from_json(to_json(ws.document()))
    first = document.dialogue[0]
    assert list(first.masks) == ["<Prompt1>"]
    assert np.array_equal(rle_to_mask(first.masks["<Prompt1>"]), old)
    assert not document.dialogue[2].masks, "a turn about <Prompt0> only saw the exported mask"
    assert to_training_records(document)[0]["conversations"][0]["value"].endswith("And <Prompt0>?")
    ws.marking.undo()  # the edit taken back: nothing is out of date any more
    assert ws.conversation.changed(ws.regions) == []


def test_a_deleted_region_keeps_its_tag_for_the_conversation(two_regions):
    ws = two_regions
    ask(ws, "Compare <Prompt0> and <Prompt1>.")
    old = ws.regions[1].mask.copy()
    ws.marking.delete("<Prompt1>")
    assert ws.conversation.conflicts(ws.regions) == [1]
    ws.marking.new_region()
    assert ws.marking.add_point(120, 45).tag == "<Prompt2>", (
        "<Prompt1> is not reused while the chat mentions it"
    )
    document = ws.document()
    assert [r.tag for r in document.regions] == ["<Prompt0>", "<Prompt2>"]
    assert np.array_equal(rle_to_mask(document.dialogue[0].masks["<Prompt1>"]), old)
    ws.new_conversation()
    ws.marking.new_region()
    assert ws.marking.add_point(125, 50).tag == "<Prompt1>", "a new conversation frees the tag"


def test_a_caption_that_mentions_a_tag_keeps_it_taken(ws):
    ws.marking.add_point(45, 50)
    ws.marking.new_region()
    ws.marking.add_point(120, 45)
    ws.marking.set_caption(0, "left of <Prompt1>")
    ws.marking.delete(1)
    ws.marking.new_region()
    assert ws.marking.add_point(125, 50).tag == "<Prompt2>"


def test_a_failed_question_changes_nothing(ws):
    ws.marking.add_point(45, 50)
    ask(ws, "What is <Prompt0>?")
    with pytest.raises(InputError, match="<Prompt3>, which is not a region"):
        ask(ws, "What is <Prompt3>?")
    with pytest.raises(InputError, match="type a question"):
        ask(ws, "  ")
    assert len(ws.conversation.turns) == 2 and list(ws.conversation.masks) == [0]


def test_export_and_restore_bit_identical_and_the_chat_continues(two_regions, tiny_gar):
    ws = two_regions
    ws.marking.set_caption(0, "a red disc")
    ask(ws, "Compare <Prompt0> and <Prompt1>.")
    text = to_json(ws.document())

    other = Workspace(Services(segmenter=GrabCutSegmenter(), gar=tiny_gar))
    other.set_image(disc_and_square(), name="scene.png")
    other.restore(from_json(text))
    assert to_json(other.document()) == text
    for a, b in zip(ws.regions, other.regions, strict=True):
        assert np.array_equal(a.mask, b.mask) and a.tag == b.tag and a.caption == b.caption
    assert not other.unsaved and not other.marking.can_undo
    ask(other, "And <Prompt0>?")
    assert len(other.conversation.chat.turns) == 4, "the imported exchange is part of the model's context"


def test_an_imported_dialogue_about_a_missing_region_cannot_go_on(ws, tiny_gar):
    ws.marking.add_point(45, 50)
    ws.marking.new_region()
    ws.marking.add_point(120, 45)
    ask(ws, "Compare <Prompt0> and <Prompt1>.")
    data = to_dict(ws.document())
    data["regions"] = data["regions"][:1]  # an old file: the region is gone and the turn has no mask
    ws.restore(from_dict(data))
    with pytest.raises(InputError, match="cannot be continued"):
        ask(ws, "What is <Prompt0>?")
    ws.new_conversation()
    ask(ws, "What is <Prompt0>?")


def test_restore_refuses_another_image(ws):
    ws.marking.add_point(45, 50)
    document = ws.document()
    ws.set_image(Image.new("RGB", (160, 100), (0, 0, 0)), name="black.png")
    with pytest.raises(InputError, match="load that image first"):
        ws.restore(document)
    assert len(ws.regions) == 0


def test_unsaved_work_is_known_until_exported(ws):
    assert not ws.unsaved
    ws.marking.add_point(45, 50)
    assert ws.unsaved
    ws.document()
    ws.mark_saved()
    assert not ws.unsaved
    ws.marking.set_caption(0, "changed")
    assert ws.unsaved


def test_restore_checks_a_document_that_names_its_image_by_file(ws, tmp_path):
    """Such a document was restored onto any image of its size; now the hash is checked too."""
    ws.marking.add_point(45, 50)
    document = ws.document()
    disc_and_square().save(tmp_path / "scene.png")
    document.image = image_info(tmp_path / "scene.png")
    assert document.image.sha256_of == "file"
    ws.set_image(Image.new("RGB", (160, 100), (0, 0, 0)), name="black.png")
    with pytest.raises(InputError, match="this file annotates scene.png .*open scene.png itself"):
        ws.restore(document)
    assert len(ws.regions) == 0


def test_annotation_mode_without_a_model():
    ws = Workspace(Services(segmenter=GrabCutSegmenter()))
    with pytest.raises(InputError, match="load an image first"):
        ws.require_marking()
    ws.set_image(disc_and_square(), name="scene.png")
    ws.marking.add_point(45, 50)
    ws.marking.set_caption(0, "typed by hand")
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
        ws.set_image(disc_and_square(), name="scene.png")
        ws.marking.add_point(45, 50)
        ask(ws, "What is <Prompt0>?")
    assert [ws.conversation.chat.holds_cache for ws in people] == [False, True, True]
    ask(people[0], "And again <Prompt0>?")  # recomputed, then kept
    assert [ws.conversation.chat.holds_cache for ws in people] == [True, False, True]


def test_the_segmenter_gets_each_image_once(tiny_gar):
    class Counting(GrabCutSegmenter):
        images = 0

        def _set_rgb(self, rgb):
            Counting.images += 1
            super()._set_rgb(rgb)

    ws = Workspace(Services(segmenter=Counting(), gar=tiny_gar))
    ws.set_image(disc_and_square(), name="scene.png")
    ws.marking.add_point(45, 50)
    ws.marking.add_point(50, 55)
    assert Counting.images == 1
    ws.set_image(disc_and_square(), name="again.png")
    ws.marking.add_point(45, 50)
    assert Counting.images == 2


def test_masks_a_file_gives_its_turns_are_checked(two_regions):
    ws = two_regions
    ask(ws, "Compare <Prompt0> and <Prompt1>.")
    ws.marking.delete(1)
    data = to_dict(ws.document())
    good = data["dialogue"][0]["masks"]["<Prompt1>"]
    assert from_dict(copy.deepcopy(data)).dialogue[0].masks == {"<Prompt1>": good}
    for masks, problem in [
        ({"<Prompt3>": good}, "names '<Prompt3>', which is not a tag its text mentions"),
        ({"<Prompt01>": good}, "not a tag its text mentions"),
        (
            {"<Prompt1>": {"size": [10, 10], "counts": "0"}},
            r"masks\['<Prompt1>'\] is 10x10 but the image is 160x100",
        ),
        ({"<Prompt1>": {"size": [100, 160], "counts": "~~"}}, "RLE counts"),
        ({"<Prompt1>": "not an RLE"}, "must be an object"),
    ]:
        bad = copy.deepcopy(data)
        bad["dialogue"][0]["masks"] = masks
        with pytest.raises(InputError, match=problem):
            from_dict(bad)
