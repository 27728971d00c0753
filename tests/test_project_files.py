"""A project's files: what the scan finds and skips, failed images, reading only what changed,
images changed on disk since they were annotated, thumbnails, and the gallery's queries."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from api_helpers import box_mask, noise_image
from conftest import EXAMPLES, write_blank_png
from PIL import Image
from project_helpers import OWNER, annotate, make_images, region

import gar_app.project.scan as scan_module
from gar_app.errors import InputError
from gar_app.formats.caption_source import CaptionSource
from gar_app.formats.document import AnnotationDocument, ImageInfo
from gar_app.project import Filters, open_project

H, W = 24, 32


def _size(entry) -> tuple:
    return entry.width, entry.height


IMAGES = ["a.jpg", "b.PNG", "c.webp", "d.bmp", "e.tif", "f.tiff", "deep/er/g.jpeg"]


def test_the_scan_lists_images_and_videos_and_skips_the_rest(tmp_path):
    root = make_images(tmp_path / "p", IMAGES)
    shutil.copy(EXAMPLES / "photo_tour.webm", root / "deep" / "tour.webm")
    (root / "notes.txt").write_text("not a picture")
    (root / "README").write_text("no extension")
    make_images(root, [".hidden.png", ".git/x.png"])
    with open_project(root) as project:
        entries = {e.path: e for e in project.store.page(Filters(kinds=("image", "video", "other")))}
        assert set(entries) == set(IMAGES) | {"deep/tour.webm", "notes.txt", "README"}
        assert {p for p, e in entries.items() if e.kind == "image"} == set(IMAGES)
        assert entries["deep/tour.webm"].kind == "video"
        assert entries["notes.txt"].problem == "not an image or a video (.txt)"
        assert entries["README"].problem == "not an image or a video (no extension)"
        assert [e.path for e in project.store.page()] == sorted(set(IMAGES) | {"deep/tour.webm"})
        counts = project.store.counts()
        assert (counts.images, counts.videos, counts.not_images, counts.total) == (7, 1, 2, 8)
        assert project.probe() == 8
        assert _size(project.store.entry("deep/er/g.jpeg")) == (W, H)  # width, height from the header
        assert project.store.entry("deep/tour.webm").width > 0 and project.store.counts().failed == 0


def test_unreadable_and_oversized_images_fail_with_their_reason_and_the_rest_goes_on(tmp_path, monkeypatch):
    root = make_images(tmp_path / "p", ["ok.png", "z.png"])
    (root / "text.jpg").write_text("this is not a JPEG")
    (root / "cut.png").write_bytes((root / "ok.png").read_bytes()[:200])  # a header, half the pixels
    write_blank_png(root / "huge.png", 2000, 1000)
    monkeypatch.setenv("GAR_APP_MAX_IMAGE_MEGAPIXELS", "1")
    with open_project(root) as project:
        project.probe()
        problems = {e.path: e.problem for e in project.store.page(Filters(failed=True))}
        assert set(problems) == {"text.jpg", "huge.png"}  # cut.png's header is fine: found when opened
        assert "not a valid image" in problems["text.jpg"]
        assert "2000x1000" in problems["huge.png"] and "megapixels" in problems["huge.png"]
        with pytest.raises(InputError, match="cut.png"):
            project.open_image("cut.png")
        assert project.thumbnail("cut.png") is None
        assert "cut.png" in project.store.entry("cut.png").problem
        assert project.open_image("z.png").image.size == (W, H)  # the others open as before
        assert project.store.counts().failed == 3
        assert [e.path for e in project.store.page(Filters(failed=False))] == ["ok.png", "z.png"]


def test_a_rescan_reads_only_what_changed(tmp_path, monkeypatch):
    root = make_images(tmp_path / "p", ["a.png", "b.png", "c.png", "sub/d.png"])
    hashed = []
    monkeypatch.setattr(scan_module, "file_sha256", lambda path: hashed.append(path) or "0" * 64)
    with open_project(root) as project:
        assert (project.last_scan.added, hashed) == (4, [])
        annotate(project, "a.png", [region(0, box_mask((H, W), 0, 4, 0, 4))])
        assert project.scan().updated == 0 and hashed == []
        os.utime(root / "b.png", ns=(1, 1))  # not annotated: a new time needs no reading
        assert project.scan().updated == 1 and hashed == []
        os.utime(root / "a.png", ns=(1, 1))  # annotated: is it still the same picture?
        project.scan()
        assert [p.name for p in hashed] == ["a.png"]

        (root / "c.png").unlink()
        shutil.rmtree(root / "sub")
        (root / "a.png").rename(root / "moved.png")
        report = project.scan()
        assert report.gone == 3 and report.added == 1
        assert project.store.entry("c.png") is None  # nothing of it to keep
        kept = project.store.entry("a.png")
        assert kept.missing and kept.regions == 1  # its annotations stay, the gallery says it is gone
        assert project.store.counts().missing == 1
        with pytest.raises(InputError, match="no longer in the project folder"):
            project.open_image("a.png")


def _same_size_other_pixels(path, seed: int) -> None:
    """Rewrite a BMP with other pixels, same byte size and same modification time: only the
    file's hash can tell."""
    before = os.stat(path)
    Image.fromarray(noise_image(seed, H, W)).save(path, "BMP")
    assert os.path.getsize(path) == before.st_size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("seen_by", ["scan", "open"])
def test_an_image_changed_on_disk_is_flagged_and_never_given_the_old_masks(tmp_path, seen_by):
    root = make_images(tmp_path / "p", ["a.bmp", "b.bmp"])
    with open_project(root) as project:
        store = project.store
        masks = [box_mask((H, W), 2, 9, 3, 12), box_mask((H, W), 10, 20, 5, 30)]
        annotate(project, "a.bmp", [region(0, masks[0], "a"), region(1, masks[1], "b")])
        old = project.open_image("a.bmp")
        if seen_by == "scan":  # a new modification time: the scan reads the file
            Image.fromarray(noise_image(99, H, W)).save(root / "a.bmp", "BMP")
            assert project.scan().changed == ["a.bmp"]
        else:  # nothing the scan could notice; opening hashes the file
            _same_size_other_pixels(root / "a.bmp", 99)
            assert project.scan().changed == []
        opened = project.open_image("a.bmp")
        assert (
            opened.document is None
            and "changed on disk" in opened.changed
            and "2 saved region" in opened.changed
        )
        assert opened.entry.changed and opened.info.sha256 != old.info.sha256
        assert [e.path for e in store.page(Filters(changed=True))] == ["a.bmp"]
        assert store.counts().changed == 1 and store.count_to_describe() == 0  # not described either
        with pytest.raises(InputError, match="another file"):  # a tab still showing the old image
            store.save_document("a.bmp", old.document, opened.entry.version, OWNER)

        store.rebase("a.bmp", OWNER)  # the person says: same picture, keep the masks
        kept = project.open_image("a.bmp")
        assert kept.changed is None and kept.document.image.sha256 == opened.info.sha256
        assert all(np.array_equal(r.mask, m) for r, m in zip(kept.document.regions, masks, strict=True))
        _same_size_other_pixels(root / "a.bmp", 7)
        assert project.open_image("a.bmp").changed
        store.discard("a.bmp", OWNER)  # or: start again on it
        fresh = project.open_image("a.bmp")
        assert fresh.document is None and fresh.changed is None and fresh.entry.status == "new"


def test_thumbnails_are_made_once_upright_and_can_be_deleted(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    photo = Image.fromarray(noise_image(3, 300, 600))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown turned by 90 degrees
    photo.save(root / "sideways.jpg", exif=exif)
    shutil.copy(EXAMPLES / "photo_tour.webm", root / "tour.webm")
    with open_project(root) as project:
        thumb = project.thumbnail("sideways.jpg")
        with Image.open(thumb) as small:
            assert small.size == (128, 256)  # upright (taller than wide), 256 on the long side
        assert _size(project.store.entry("sideways.jpg")) == (300, 600)
        made = thumb.stat().st_mtime_ns
        assert project.thumbnail("sideways.jpg") == thumb and thumb.stat().st_mtime_ns == made
        with Image.open(project.thumbnail("tour.webm")) as frame:
            assert max(frame.size) <= 256
        project.clear_thumbnails()
        assert not project.thumbnail_folder.exists()
        assert project.thumbnail("sideways.jpg").exists()  # made again when asked


def test_the_gallery_counts_filters_and_steps_through_images(tmp_path):
    names = [f"{folder}/{k}.png" for folder in ("birds", "birds/herons", "cars") for k in range(4)]
    root = make_images(tmp_path / "p", names)
    mask = box_mask((H, W), 1, 8, 1, 8)
    with open_project(root) as project:
        store = project.store
        annotate(project, "birds/0.png", [region(0, mask, "A grey HERON"), region(1, mask)])
        annotate(project, "birds/herons/2.png", [region(0, mask, "Ein Reiher", CaptionSource.typed())])
        annotate(project, "cars/1.png", [region(0, mask, "a red car")])
        store.set_status("cars/1.png", "done", OWNER)
        store.set_status("cars/3.png", "skipped", OWNER)
        counts = store.counts()
        assert (counts.images, counts.annotated, counts.regions, counts.captioned) == (12, 3, 4, 3)
        assert (counts.new, counts.in_progress, counts.done, counts.skipped) == (8, 2, 1, 1)
        assert store.counts(Filters(folder="birds")).images == 8  # with birds/herons
        assert store.counts(Filters(folder="birds/herons")).images == 4

        def paths(**filters) -> list[str]:
            return [e.path for e in store.page(Filters(**filters))]

        assert paths(text="heron") == ["birds/0.png"]  # captions, not names; any case
        assert paths(text="reiher") == ["birds/herons/2.png"]
        assert paths(status=("done", "skipped")) == ["cars/1.png", "cars/3.png"]
        assert paths(uncaptioned=True) == ["birds/0.png"]
        assert paths(folder="cars", annotated=False) == ["cars/0.png", "cars/2.png", "cars/3.png"]
        first = store.page(limit=5)
        rest = store.page(after=first[-1].path, limit=100)
        assert [e.path for e in first + rest] == sorted(names)
        entry = store.entry("birds/0.png")
        assert (entry.regions, entry.captioned, entry.uncaptioned, entry.status) == (2, 1, 1, "in_progress")

        todo = Filters(annotated=False, status=("new", "in_progress"))  # "next unannotated"
        assert store.neighbour("birds/0.png", todo).path == "birds/1.png"
        assert store.neighbour("cars/2.png", todo) is None
        assert store.neighbour("cars/2.png", todo, wrap=True).path == "birds/1.png"
        assert store.neighbour("birds/1.png", forward=False).path == "birds/0.png"
        assert store.neighbour("birds/0.png", forward=False) is None
        assert store.neighbour(None).path == "birds/0.png"
        assert store.position("birds/herons/0.png") == 4 and store.position("cars/0.png", todo) == 6
        with pytest.raises(InputError, match="unknown status 'finished'"):
            store.page(Filters(status=("finished",)))


def test_paths_outside_the_project_are_refused(tmp_path):
    root = make_images(tmp_path / "p", ["a.png"])
    (tmp_path / "secret.png").write_bytes((root / "a.png").read_bytes())
    with open_project(root) as project:
        for path in ("../secret.png", "/etc/passwd", "a/../../secret.png", "sub\\..\\..\\x.png", ""):
            with pytest.raises(InputError):
                project.open_image(path)
        with pytest.raises(InputError, match="not an image or video of this project"):
            project.open_image("missing.png")
        opened = project.open_image("a.png")
        pasted = AnnotationDocument(ImageInfo("a.png", W, H, "ab" * 32, "pixels"))
        assert opened.entry.version == 0
        with pytest.raises(InputError, match="by its file"):
            project.store.save_document("a.png", pasted, 0, OWNER)


def test_a_project_folder_must_exist(tmp_path):
    with pytest.raises(InputError, match="project folder not found"):
        open_project(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(InputError, match="is not a folder"):
        open_project(tmp_path / "file.png")
