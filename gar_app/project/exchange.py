"""A whole project out to other formats, and COCO annotations in.

Exports (``gar-app project export``): COCO instances (``gar_app.formats.coco``), GAR's
training records (``gar_app.formats.training``), a ``datasets`` folder
(``gar_app.formats.hf``) and one ``gar-app/1`` file per image or video. They read the store
a page at a time, so memory does not grow with the project. Images whose annotations cannot
be trusted are left out and listed: a file changed on disk since it was annotated (its masks
were drawn on other pixels), missing or unreadable files.

Import (``gar-app project import --coco``) seeds regions from a COCO file's annotations
(RLE or polygons, with captions when present), read by ``gar_app.batch.coco``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gar_app.errors import GarAppError, InputError
from gar_app.files import write_atomically
from gar_app.formats.document import AnnotationDocument, ExportedRegion, to_json
from gar_app.formats.video_document import VideoDocument, video_to_json
from gar_app.project.project import Project
from gar_app.project.store import FileEntry, Filters

GAR_SUFFIX = ".gar.json"


@dataclass
class ExchangeReport:
    images: int = 0  # images (or files) written or imported
    regions: int = 0
    left_out: list[str] = field(default_factory=list)  # "path: why", one each

    def leave_out(self, path: str, why: str) -> None:
        self.left_out.append(f"{path}: {why}")


def project_images(
    project: Project, report: ExchangeReport
) -> Iterator[tuple[FileEntry, AnnotationDocument | None]]:
    """Every usable image in path order, with its annotations when they can be used."""
    project.probe()
    after = None
    while page := project.store.page(Filters(kinds=("image",)), after, 200):
        for entry in page:
            after = entry.path
            if entry.missing:
                report.leave_out(entry.path, "no longer in the folder")
                continue
            if entry.problem:
                report.leave_out(entry.path, entry.problem)
                continue
            document = project.store.load(entry.path).document if entry.version else None
            if document is not None and entry.changed:
                report.leave_out(
                    entry.path, "changed on disk since it was annotated: its regions are left out"
                )
                document = None
            yield entry, document  # type: ignore[misc]


def export_coco(project: Project, out: Path) -> ExchangeReport:
    from gar_app.formats.coco import CocoWriter

    report = ExchangeReport()
    with CocoWriter(out) as coco:
        for entry, document in project_images(project, report):
            if document is not None:
                size = (document.image.width, document.image.height)
            elif entry.width is not None and entry.height is not None:
                size = (entry.width, entry.height)
            else:
                report.leave_out(entry.path, "its size is unknown (it could not be read)")
                continue
            image_id = coco.add_image(entry.path, *size)
            report.images += 1
            for region in document.regions if document is not None else []:
                if region.area == 0:
                    report.leave_out(entry.path, f"{region.tag} has an empty mask")
                    continue
                coco.add_region(image_id, region)
                report.regions += 1
    return report


def export_training(project: Project, out: Path) -> ExchangeReport:
    """GAR's training records of every annotated image, as one JSON list."""
    from gar_app.formats.training import to_training_records

    report = ExchangeReport()
    lines = []  # records are small (RLE text); the images stay on disk
    for entry, document in project_images(project, report):
        if document is None:
            continue
        for record in to_training_records(document):
            record["image"] = entry.path
            lines.append(json.dumps(record, ensure_ascii=False))
            report.images += 1
            report.regions += len(record["mask_rle"])
    write_atomically(out, "[\n" + ",\n".join(lines) + ("\n" if lines else "") + "]\n")
    return report


def export_hf(project: Project, out: Path) -> ExchangeReport:
    from gar_app.formats.hf import region_row, write_hf_dataset

    report = ExchangeReport()

    def rows() -> Iterator[dict]:
        for entry, document in project_images(project, report):
            if document is None or not document.regions:
                continue
            data = project.file(entry.path).read_bytes()  # datasets turns it upright (EXIF) as the app does
            report.images += 1
            for region in document.regions:
                if region.area == 0:
                    report.leave_out(entry.path, f"{region.tag} has an empty mask")
                    continue
                report.regions += 1
                yield region_row(entry.path, data, region)

    write_hf_dataset(rows, out)
    return report


def export_gar(project: Project, out: Path) -> ExchangeReport:
    """One ``gar-app/1`` file per annotated image or video: ``OUT/<its path>.gar.json``."""
    report = ExchangeReport()
    for stored in project.store.documents():
        entry, document = stored.entry, stored.document
        if entry.changed:
            report.leave_out(entry.path, "changed on disk since it was annotated")
            continue
        text = video_to_json(document) if isinstance(document, VideoDocument) else to_json(document)  # type: ignore[arg-type]
        target = out.joinpath(*PurePosixPath(entry.path + GAR_SUFFIX).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, text)
        report.images += 1
        report.regions += len(document.regions)  # type: ignore[union-attr]
    return report


EXPORTS = {"coco": export_coco, "train": export_training, "hf": export_hf, "gar": export_gar}


# -- import ----------------------------------------------------------------------------------


def _project_path(file_name: object) -> str | None:
    if not isinstance(file_name, str) or not file_name.strip():
        return None
    parts = [p for p in PurePosixPath(file_name.replace("\\", "/")).parts if p not in (".", "")]
    if not parts or parts[0] == "/" or ".." in parts:
        return None
    return "/".join(parts)


def _regions(
    annotations: list[dict], height: int, width: int, coco_name: str, report, path: str
) -> list[ExportedRegion]:
    from gar_app.batch.coco import segmentation_mask
    from gar_app.formats.caption_source import read_caption_source
    from gar_app.regions import region_colour

    regions = []
    for annotation in annotations:
        try:
            where = f"annotation {annotation['id']}"
            mask = segmentation_mask(annotation["segmentation"], height, width, f"{where}'s segmentation")
            caption = annotation.get("caption")
            source = annotation.get("caption_source")
            source = None if source is None else read_caption_source(source, f"{where}.caption_source")
        except GarAppError as error:
            report.leave_out(path, f"annotation {annotation['id']}: {error}")
            continue
        index = len(regions)
        regions.append(
            ExportedRegion(
                index,
                region_colour(index),
                "mask",
                mask,
                caption if isinstance(caption, str) else "",
                mask_name=f"{coco_name}#{annotation['id']}",
                caption_source=source if isinstance(caption, str) and caption.strip() else None,
            )
        )
    return regions


def import_coco(project: Project, coco: Path, owner: str, replace: bool = False) -> ExchangeReport:
    """Seed each image's regions from its COCO annotations (in file order, ``<Prompt0>``...).

    Images that already have regions are left as they are unless ``replace`` (which drops
    their regions and dialogue). Images the project does not have, or of another size than
    the file says, are listed and skipped."""
    from gar_app.batch.coco import read_coco

    data = read_coco(coco)
    by_image: dict = defaultdict(list)
    for annotation in data["annotations"]:
        by_image[annotation["image_id"]].append(annotation)
    report = ExchangeReport()
    for image in data["images"]:
        annotations = by_image.pop(image["id"], None)
        if not annotations:
            continue
        path = _project_path(image["file_name"])
        if path is None:
            report.leave_out(str(image["file_name"]), "not a path inside the project")
            continue
        entry = project.store.entry(path)
        if entry is None or entry.kind != "image":
            report.leave_out(path, "not an image of this project")
            continue
        if entry.regions and not replace:
            report.leave_out(path, f"already has {entry.regions} region(s) (--replace to overwrite them)")
            continue
        try:
            opened = project.open_image(path)
        except InputError as error:
            report.leave_out(path, str(error))
            continue
        size = (opened.image.width, opened.image.height)
        if (image["width"], image["height"]) != size:
            report.leave_out(
                path,
                f"the COCO file says {image['width']}x{image['height']}, the image is {size[0]}x{size[1]}",
            )
            continue
        regions = _regions(annotations, size[1], size[0], coco.name, report, path)
        if not regions:
            continue
        kept = opened.document.dialogue if opened.document is not None and not replace else []
        document = AnnotationDocument(opened.info, regions, kept)
        project.store.save_document(path, document, opened.entry.version, owner)
        report.images += 1
        report.regions += len(regions)
    return report
