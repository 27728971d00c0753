"""A whole project out (COCO read back by pycocotools, a dataset read back by ``datasets``,
gar-app/1 files, training records) and COCO annotations in; ``gar-app project status``."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from api_helpers import box_mask, noise_image
from PIL import Image
from project_helpers import annotate, gar_app, make_images, python, region

from gar_app.formats.caption_source import CaptionSource
from gar_app.formats.document import from_json
from gar_app.images import load_image
from gar_app.project import open_project

H, W = 24, 32
SOURCE = CaptionSource.generated("HaochenWang/GAR-1B", {"max_new_tokens": 64})
SPECKLES = np.random.default_rng(1).random((H, W)) < 0.3


@pytest.fixture()
def folder(tmp_path):
    """a.png: two regions; sub/b.jpg: none; c.bmp: annotated, then changed on disk; e.png: an
    empty region; rot.jpg: stored sideways (EXIF), one region; bad.png: unreadable; a text file."""
    root = make_images(tmp_path / "p", ["a.png", "sub/b.jpg", "c.bmp", "e.png"])
    photo = Image.fromarray(noise_image(9, W, H))  # H x W once turned upright
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.save(root / "rot.jpg", exif=exif, quality=95)
    (root / "bad.png").write_text("not a png")
    (root / "notes.txt").write_text("notes")
    with open_project(root) as project:
        annotate(
            project,
            "a.png",
            [region(0, box_mask((H, W), 2, 9, 3, 12), "a grey heron", SOURCE), region(1, SPECKLES)],
        )
        annotate(project, "c.bmp", [region(0, box_mask((H, W), 0, 5, 0, 5), "gone")])
        annotate(project, "e.png", [region(0, np.zeros((H, W), bool), "nothing")])
        annotate(
            project, "rot.jpg", [region(0, box_mask((H, W), 1, 20, 1, 9), "tall", CaptionSource.typed())]
        )
        project.store.set_status("rot.jpg", "done", "test")
    Image.fromarray(noise_image(99, H, W)).save(root / "c.bmp")
    return root


def test_coco_export_loads_in_pycocotools_with_masks_boxes_areas_and_captions(tmp_path, folder):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    out = tmp_path / "instances.json"
    result = gar_app("project", "export", str(folder), "--format", "coco", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "5 image(s), 3 region(s)" in result.stderr
    for line in ("c.bmp: changed on disk", "e.png: <Prompt0> has an empty mask", "bad.png: cannot read"):
        assert f"left out {line}" in result.stderr

    coco = COCO(str(out))
    images = {image["file_name"]: image for image in coco.dataset["images"]}
    assert set(images) == {"a.png", "c.bmp", "e.png", "rot.jpg", "sub/b.jpg"}
    assert (images["rot.jpg"]["width"], images["rot.jpg"]["height"]) == (W, H)  # as the app shows it
    assert coco.getCatIds() and all(a["category_id"] in coco.getCatIds() for a in coco.dataset["annotations"])
    expected = {
        "a.png": [(box_mask((H, W), 2, 9, 3, 12), "a grey heron", SOURCE), (SPECKLES, "", None)],
        "rot.jpg": [(box_mask((H, W), 1, 20, 1, 9), "tall", "person")],
        "c.bmp": [],
        "e.png": [],
        "sub/b.jpg": [],
    }
    for name, regions in expected.items():
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=images[name]["id"]))
        assert len(annotations) == len(regions), name
        for k, (annotation, (mask, caption, source)) in enumerate(zip(annotations, regions, strict=True)):
            assert np.array_equal(coco.annToMask(annotation).astype(bool), mask)
            ys, xs = np.nonzero(mask)
            bbox = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert annotation["bbox"] == bbox == mask_utils.toBbox(annotation["segmentation"]).tolist()
            assert annotation["area"] == int(mask.sum()) == mask_utils.area(annotation["segmentation"])
            assert isinstance(annotation["segmentation"]["counts"], str) and annotation["iscrowd"] == 0
            assert (annotation["caption"], annotation["tag"]) == (caption, f"<Prompt{k}>")
            if source == "person":
                assert annotation["caption_source"]["by"] == "person"
            else:
                assert annotation["caption_source"] == (source and source.to_dict())


def test_hf_export_loads_with_datasets(tmp_path, folder):
    import datasets

    out = tmp_path / "dataset"
    result = gar_app("project", "export", str(folder), "--format", "hf", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = datasets.load_from_disk(str(out))
    assert set(rows.column_names) == {"file_name", "image", "mask", "tag", "caption", "caption_source"}
    assert [(r["file_name"], r["tag"], r["caption"]) for r in rows] == [
        ("a.png", "<Prompt0>", "a grey heron"),
        ("a.png", "<Prompt1>", ""),
        ("rot.jpg", "<Prompt0>", "tall"),
    ]
    for row, mask in zip(
        rows, [box_mask((H, W), 2, 9, 3, 12), SPECKLES, box_mask((H, W), 1, 20, 1, 9)], strict=True
    ):
        assert np.array_equal(np.array(row["mask"]), mask)
        upright = np.asarray(load_image(folder / row["file_name"]))
        assert np.array_equal(
            np.asarray(row["image"].convert("RGB")), upright
        )  # rot.jpg: turned, as annotated
    assert json.loads(rows[0]["caption_source"]) == SOURCE.to_dict() and rows[1]["caption_source"] is None

    again = gar_app("project", "export", str(folder), "--format", "hf", "--out", str(out))
    assert again.returncode == 2 and "not an empty folder" in again.stderr  # never written over


def test_gar_export_writes_one_document_per_image_in_the_same_layout(tmp_path, folder):
    out = tmp_path / "gar"
    result = gar_app("project", "export", str(folder), "--format", "gar", "--out", str(out))
    assert result.returncode == 0, result.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.gar.json"))
    assert written == ["a.png.gar.json", "e.png.gar.json", "rot.jpg.gar.json"]  # c.bmp changed: left out
    with open_project(folder) as project:
        for name in written:
            path = name.removesuffix(".gar.json")
            assert from_json((out / name).read_bytes()) == project.store.load(path).document


def test_training_export_names_images_by_project_path(tmp_path, folder):
    from gar_app.rle import rle_to_mask

    out = tmp_path / "train.json"
    result = gar_app("project", "export", str(folder), "--format", "train", "--out", str(out))
    assert result.returncode == 0, result.stderr
    records = json.loads(out.read_text())
    assert [r["image"] for r in records] == ["a.png", "rot.jpg"]  # e.png's only region is empty
    assert np.array_equal(rle_to_mask(records[0]["mask_rle"][1]), SPECKLES)
    assert records[0]["conversations"][:2] == [
        {"from": "human", "value": "<image>\nDescribe <Prompt0> in detail."},
        {"from": "gpt", "value": "a grey heron"},
    ]


def _polygon_mask(polygon: list[float]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([polygon], H, W))).astype(bool)


def test_import_seeds_regions_from_coco_polygons_and_rle(tmp_path):
    from pycocotools import mask as mask_utils

    root = make_images(tmp_path / "p", ["img0.png", "img1.png", "sub/img2.png"])
    polygon = [2.0, 2.0, 20.5, 3.0, 18.0, 15.0, 3.0, 12.0]
    compressed = mask_utils.encode(np.asfortranarray(SPECKLES.astype(np.uint8)))
    compressed["counts"] = compressed["counts"].decode()
    plain = box_mask((H, W), 5, 11, 5, 25)
    runs = [int(v) for v in np.diff(np.flatnonzero(np.diff(np.r_[-1, plain.flatten("F"), -1])))]
    coco = {
        "images": [
            {"id": 1, "file_name": "img0.png", "width": W, "height": H},
            {"id": 2, "file_name": "./img1.png", "width": W, "height": H},
            {"id": 3, "file_name": "sub/img2.png", "width": 64, "height": 48},
            {"id": 4, "file_name": "ghost.png", "width": W, "height": H},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "segmentation": [polygon], "caption": "a kite"},
            {
                "id": 11,
                "image_id": 1,
                "segmentation": compressed,
                "caption": "dots",
                "caption_source": SOURCE.to_dict(),
            },
            {"id": 12, "image_id": 1, "segmentation": {"size": [H, W], "counts": "!!"}},
            {"id": 20, "image_id": 2, "segmentation": {"size": [H, W], "counts": runs}},
            {"id": 30, "image_id": 3, "segmentation": [polygon]},
            {"id": 40, "image_id": 4, "segmentation": [polygon]},
        ],
    }
    file = tmp_path / "instances.json"
    file.write_text(json.dumps(coco))
    result = gar_app("project", "import", str(root), "--coco", str(file))
    assert result.returncode == 0, result.stderr
    assert "imported from" in result.stderr and "2 image(s), 3 region(s)" in result.stderr
    assert "left out img0.png: annotation 12:" in result.stderr
    assert "left out sub/img2.png: the COCO file says 64x48, the image is 32x24" in result.stderr
    assert "left out ghost.png: not an image of this project" in result.stderr
    with open_project(root) as project:
        first = project.store.load("img0.png").document.regions
        assert [(r.tag, r.caption, r.caption_source) for r in first] == [
            ("<Prompt0>", "a kite", None),
            ("<Prompt1>", "dots", SOURCE),
        ]
        assert np.array_equal(first[0].mask, _polygon_mask(polygon)) and np.array_equal(
            first[1].mask, SPECKLES
        )
        assert np.array_equal(project.store.load("img1.png").document.regions[0].mask, plain)

    again = gar_app("project", "import", str(root), "--coco", str(file))
    assert "left out img0.png: already has 2 region(s) (--replace to overwrite them)" in again.stderr
    coco["annotations"] = [{"id": 50, "image_id": 1, "segmentation": [polygon], "caption": "only this"}]
    file.write_text(json.dumps(coco))
    assert gar_app("project", "import", str(root), "--coco", str(file), "--replace").returncode == 0
    with open_project(root) as project:
        assert [r.caption for r in project.store.load("img0.png").document.regions] == ["only this"]


def test_a_coco_export_imports_into_another_copy_of_the_folder(tmp_path, folder):
    out = tmp_path / "instances.json"
    assert gar_app("project", "export", str(folder), "--format", "coco", "--out", str(out)).returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(".gar-project"))
    assert gar_app("project", "import", str(copy), "--coco", str(out)).returncode == 0
    with open_project(folder) as original, open_project(copy) as imported:
        for path in ("a.png", "rot.jpg"):
            before = original.store.load(path).document.regions
            after = imported.store.load(path).document.regions
            assert [(r.caption, r.caption_source) for r in after] == [
                (r.caption, r.caption_source) for r in before
            ]
            assert all(np.array_equal(a.mask, b.mask) for a, b in zip(after, before, strict=True))


def test_status_counts_as_json_and_as_text(folder):
    result = gar_app("project", "status", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "images": 6,
        "videos": 0,
        "annotated": 4,
        "regions": 5,
        "captioned": 4,
        "uncaptioned": 1,
        "new": 2,
        "in_progress": 3,
        "done": 1,
        "skipped": 0,
        "failed": 1,
        "changed": 1,
        "missing": 0,
        "not_images": 1,
    }
    text = gar_app("project", "status", str(folder))
    assert text.stdout.splitlines()[0] == f"{folder}: 1 of 6 done (17%)"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["status", "{dir}/nowhere"], "project folder not found"),
        (["export", "{dir}", "--format", "coco", "--out", "{dir}/no/such/x.json"], "does not exist"),
        (["export", "{dir}", "--format", "coco", "--out", "{dir}"], "is a folder"),
        (["export", "{dir}", "--format", "xml", "--out", "x"], "invalid choice: 'xml'"),
        (["import", "{dir}", "--coco", "{dir}/missing.json"], "COCO file not found"),
    ],
)
def test_mistakes_end_in_one_line(tmp_path, argv, message):
    make_images(tmp_path, ["a.png"])
    result = gar_app("project", *(a.format(dir=tmp_path) for a in argv))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_without_datasets_the_hf_export_says_how_to_get_it(tmp_path, folder):
    hidden = "import sys; sys.modules['datasets'] = None; from gar_app.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["project", "export", str(folder), "--format", "hf", "--out", str(tmp_path / "d")]
    child = python(hidden, *argv, stderr=subprocess.PIPE)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 2 and err.count("\n") == 1
    assert "needs the datasets package: pip install 'gar-app[hf]'" in err and not (tmp_path / "d").exists()
