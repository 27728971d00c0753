"""COCO instances files, written one image at a time.

``CocoWriter`` streams ``images`` and ``annotations`` to two scratch files beside the output
and joins them on ``close``, so a project of any size is written holding one image's
regions in memory; the output appears whole (renamed into place) or not at all.

Each region becomes an annotation with its mask as COCO RLE (``counts`` as text), ``area``
(pixels), ``bbox`` as COCO's ``[x, y, width, height]`` (pixel edges: a one-pixel region is
``[x, y, 1, 1]``), ``iscrowd`` 0 and this app's ``caption``, ``caption_source`` (the
``gar-app/1`` region's provenance object, or null) and ``tag``. Reading COCO files is
``gar_app.batch.coco``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

from gar_app.files import sync_folder
from gar_app.formats.document import ExportedRegion
from gar_app.rle import mask_to_rle

CATEGORY = {"id": 1, "name": "region", "supercategory": "region"}


def coco_bbox(region: ExportedRegion) -> list[int]:
    """COCO's ``[x, y, width, height]`` of the region's mask (``[0, 0, 0, 0]`` when empty)."""
    box = region.box
    if box is None:
        return [0, 0, 0, 0]
    x1, y1, x2, y2 = box  # inclusive pixel indices
    return [x1, y1, x2 - x1 + 1, y2 - y1 + 1]


def coco_annotation(region: ExportedRegion, annotation_id: int, image_id: int) -> dict[str, Any]:
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": CATEGORY["id"],
        "segmentation": mask_to_rle(region.mask),
        "area": region.area,
        "bbox": coco_bbox(region),
        "iscrowd": 0,
        "caption": region.caption,
        "caption_source": None if region.caption_source is None else region.caption_source.to_dict(),
        "tag": region.tag,
    }


class CocoWriter:
    """``with CocoWriter(path) as coco: image_id = coco.add_image(...); coco.add_region(...)``."""

    def __init__(self, path: str | os.PathLike, description: str = "GAR App project export"):
        self.path = Path(path)
        self.description = description
        self.images = 0
        self.annotations = 0
        self._parts: list[IO[str]] = [  # closed by close() / discard()
            tempfile.TemporaryFile("w+", encoding="utf-8", dir=self.path.parent)  # noqa: SIM115
            for _ in range(2)
        ]

    def _write(self, part: IO[str], count: int, entry: dict[str, Any]) -> None:
        part.write((",\n" if count else "") + json.dumps(entry, ensure_ascii=False))

    def add_image(self, file_name: str, width: int, height: int) -> int:
        self.images += 1
        entry = {"id": self.images, "file_name": file_name, "width": width, "height": height}
        self._write(self._parts[0], self.images - 1, entry)
        return self.images

    def add_region(self, image_id: int, region: ExportedRegion) -> int:
        self.annotations += 1
        self._write(self._parts[1], self.annotations - 1, coco_annotation(region, self.annotations, image_id))
        return self.annotations

    def close(self) -> None:
        """Join the parts into the output file (atomically)."""
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
        try:
            with open(partial, "w", encoding="utf-8") as out:
                info = {"description": self.description, "format": "COCO instances"}
                out.write(f'{{"info": {json.dumps(info)},\n"licenses": [],\n"images": [\n')
                self._copy(self._parts[0], out)
                out.write('\n],\n"annotations": [\n')
                self._copy(self._parts[1], out)
                out.write(f'\n],\n"categories": [{json.dumps(CATEGORY)}]}}\n')
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, self.path)
            sync_folder(self.path.parent)
        finally:
            partial.unlink(missing_ok=True)
            self.discard()

    @staticmethod
    def _copy(part: IO[str], out: IO[str]) -> None:
        part.seek(0)
        shutil.copyfileobj(part, out)

    def discard(self) -> None:
        for part in self._parts:
            part.close()

    def __enter__(self) -> CocoWriter:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()
