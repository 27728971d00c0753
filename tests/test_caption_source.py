"""A region's ``caption_source`` in gar-app/1: optional, checked, and read back exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gar_app.errors import InputError
from gar_app.formats.caption_source import CaptionSource, caption_kept
from gar_app.formats.document import (
    AnnotationDocument,
    ExportedRegion,
    ImageInfo,
    from_json,
    to_dict,
    to_json,
)

MASK = np.eye(6, 8, dtype=bool)


def _document(source: CaptionSource | None) -> AnnotationDocument:
    region = ExportedRegion(0, "#ff0000", "mask", MASK, "a diagonal", caption_source=source)
    return AnnotationDocument(ImageInfo("x.png", 8, 6, "ab" * 32, "file"), [region])


@pytest.mark.parametrize(
    "source",
    [
        CaptionSource.generated("HaochenWang/GAR-8B", {"do_sample": True, "temperature": 0.7}),
        CaptionSource.generated("HaochenWang/GAR-1B", {}).edit("ann"),
        CaptionSource.generated("HaochenWang/GAR-1B", {}).accept(),
        CaptionSource.typed("bo"),
    ],
    ids=["generated", "edited", "accepted", "typed"],
)
def test_caption_source_round_trips(source):
    document = _document(source)
    assert from_json(to_json(document)) == document
    assert to_dict(document)["regions"][0]["caption_source"]["by"] == source.by


def test_files_without_it_read_as_before_and_are_written_without_it():
    data = to_dict(_document(None))
    assert "caption_source" not in data["regions"][0]
    assert from_json(json.dumps(data)).regions[0].caption_source is None


def test_who_may_replace_a_caption():
    model = CaptionSource.generated("m", {})
    assert not caption_kept(model)  # a model's, untouched: a model may redo it
    assert caption_kept(model.edit()) and caption_kept(model.accept()) and caption_kept(CaptionSource.typed())
    assert caption_kept(None)  # unknown origin: kept
    assert model.edit("ann").by == "model" and CaptionSource.typed("ann").edit("bo").by == "person"


@pytest.mark.parametrize(
    "source, problem",
    [
        ({"by": "robot"}, "by must be 'model' or 'person'"),
        ({"by": "model"}, "names no model"),
        ({"by": "person", "accepted": "yes"}, "accepted must be true or false"),
        ({"by": "person", "time": "yesterday"}, "ISO 8601 UTC"),
        ({"by": "model", "model": "m", "decoding": []}, "decoding must be an object"),
        ("GAR", "caption_source must be an object"),
    ],
)
def test_a_bad_caption_source_is_refused_saying_where(source, problem):
    data = to_dict(_document(None))
    data["regions"][0]["caption_source"] = source
    with pytest.raises(InputError, match="regions\\[0\\].caption_source") as refused:
        from_json(json.dumps(data))
    assert problem in str(refused.value)
