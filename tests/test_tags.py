"""Region tags: one pattern, one treatment of look-alikes, everywhere a tag is read."""

from __future__ import annotations

import numpy as np
import pytest

from gar_app.conversation import Turn, utc_now
from gar_app.errors import InputError
from gar_app.regions import RegionSet
from gar_app.tags import check_text, find_tags, lookalikes, parse_tag, renumber, split_tags, tag, tags_in

LOOKALIKES = ["<Prompt01>", "<prompt0>", "<Prompt-1>", "<Prompt 1>", "<PROMPT2>", "< Prompt3 >"]


def test_tags_are_written_and_read_one_way():
    assert tag(0) == "<Prompt0>" and tag(12) == "<Prompt12>"
    assert parse_tag("<Prompt12>") == 12 and parse_tag(" <Prompt3> ") == 3 and parse_tag(4) == 4
    assert parse_tag(np.int64(5)) == 5
    for bad in (-1, True, 1.5):
        with pytest.raises(InputError):
            tag(bad)
    with pytest.raises(InputError, match=r"did you mean <Prompt1>\?"):
        parse_tag("<Prompt01>")
    with pytest.raises(InputError, match="not a region tag"):
        parse_tag("Prompt1")


def test_found_tags_are_unique_and_in_index_order():
    text = "<Prompt10> near <Prompt2>, <Prompt2> and <Prompt0>"
    assert find_tags(text) == [0, 2, 10]
    assert tags_in(text) == ["<Prompt0>", "<Prompt2>", "<Prompt10>"]


@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_lookalikes_are_never_tags(lookalike):
    text = f"What is {lookalike} next to <Prompt4>?"
    assert find_tags(text) == [4]
    assert lookalikes(text) == [lookalike]
    assert [index for _piece, index in split_tags(text)] == [None, 4, None]
    with pytest.raises(InputError, match="not a region tag"):
        check_text(text)  # a question for the model names the tag the user meant
    assert check_text("What is <Prompt1> next to <Prompt4>?") == [1, 4]


def test_split_tags_keeps_every_character():
    text = "<Prompt0>: a <b>cup</b> on <Prompt10><Prompt1>."
    pieces = split_tags(text)
    assert "".join(piece for piece, _ in pieces) == text
    assert [index for _, index in pieces if index is not None] == [0, 10, 1]


def test_renumber_touches_only_mapped_tags():
    assert (
        renumber("<Prompt2> left of <Prompt0>, not <Prompt02>", {2: 1, 0: 0})
        == "<Prompt1> left of <Prompt0>, not <Prompt02>"
    )


def test_lookalikes_are_text_in_regions_and_exports():
    """A region set and an exported turn agree with the model: <Prompt01> names no region."""
    regions = RegionSet()
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    regions.add(mask)
    regions.add(mask)
    assert "<Prompt1>" in regions and "<Prompt01>" not in regions
    turn = Turn("user", "Is <Prompt01> like <Prompt1>?", utc_now())
    assert turn.tags == ["<Prompt1>"]
