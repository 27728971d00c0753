"""A Hugging Face ``datasets`` folder of regions: one row per region, for training or the Hub.

Columns: ``file_name`` (the image's path in the project), ``image`` (the image file's own
bytes; ``datasets`` applies its EXIF rotation when decoding, as the app does, so the pixels
are the ones the mask was drawn on), ``mask`` (a 1-bit PNG: ``numpy.array(row["mask"])`` is the boolean
mask), ``tag``, ``caption`` and ``caption_source`` (the provenance object as JSON text, or
null). ``datasets.load_from_disk(folder)`` reads it. An image with several regions is stored
once per region (rows stand alone).

``datasets`` is an optional dependency (``pip install "gar-app[hf]"``); it is imported only
here, when writing.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gar_app.errors import InputError
from gar_app.formats.document import ExportedRegion

ROWS_PER_WRITE = 16  # rows held in memory before they are written (images can be large)


def _datasets():
    try:
        import datasets
    except ImportError:
        raise InputError(
            "exporting a Hugging Face dataset needs the datasets package: pip install 'gar-app[hf]'"
        ) from None
    return datasets


def mask_png(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(mask, bool)).save(buffer, "PNG")  # mode "1": one bit a pixel
    return buffer.getvalue()


def region_row(file_name: str, image_bytes: bytes, region: ExportedRegion) -> dict[str, Any]:
    source = region.caption_source
    return {
        "file_name": file_name,
        "image": {"bytes": image_bytes, "path": None},
        "mask": {"bytes": mask_png(region.mask), "path": None},
        "tag": region.tag,
        "caption": region.caption,
        "caption_source": None if source is None else json.dumps(source.to_dict(), ensure_ascii=False),
    }


def write_hf_dataset(rows: Callable[[], Iterator[dict[str, Any]]], out: str | Path) -> int:
    """Write the rows ``rows()`` yields (see ``region_row``) as a dataset folder at ``out``;
    returns how many. The folder appears only once complete."""
    datasets = _datasets()
    features = datasets.Features(
        {
            "file_name": datasets.Value("string"),
            "image": datasets.Image(),
            "mask": datasets.Image(),
            "tag": datasets.Value("string"),
            "caption": datasets.Value("string"),
            "caption_source": datasets.Value("string"),
        }
    )
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(
            f"{out} already exists and is not an empty folder: choose a new folder for the dataset"
        )
    scratch = Path(tempfile.mkdtemp(prefix=".gar-hf-", dir=out.parent))
    try:
        dataset = datasets.Dataset.from_generator(
            rows,
            features=features,
            cache_dir=str(scratch / "cache"),
            fingerprint=secrets.token_hex(16),  # nothing to reuse between exports
            writer_batch_size=ROWS_PER_WRITE,
        )
        dataset.save_to_disk(str(scratch / "dataset"))
        count = len(dataset)
        del dataset
        if out.exists():
            out.rmdir()  # empty, checked above
        (scratch / "dataset").rename(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return count
