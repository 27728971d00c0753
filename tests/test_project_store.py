"""The project store: every save committed whole or not at all, versions and leases between
owners (also between two processes), refusing stores it cannot trust, surviving SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest
from api_helpers import box_mask
from project_helpers import OWNER, annotate, gar_app, make_images, python, region, without_root_powers

from gar_app.conversation import Turn
from gar_app.errors import InputError
from gar_app.formats.caption_source import CaptionSource
from gar_app.formats.document import AnnotationDocument, ExportedRegion, ImageInfo, to_json
from gar_app.project import (
    ConflictError,
    DamagedStoreError,
    LockedError,
    NewerStoreError,
    StoreError,
    StoreWriteError,
    open_project,
)
from gar_app.project.sqlite import STORE_FILE
from gar_app.rle import mask_to_rle

H, W = 24, 32


@pytest.fixture()
def folder(tmp_path):
    return make_images(tmp_path / "photos", ["a.png", "b.png", "sub/c.png"])


def _full_document(info) -> AnnotationDocument:
    """Every field a region and a dialogue can carry, with masks that test the RLE's edges."""
    rng = np.random.default_rng(5)
    corner = np.zeros((H, W), bool)
    corner[H - 1, W - 1] = True
    regions = [
        ExportedRegion(
            0,
            "#ff0000",
            "points",
            rng.random((H, W)) < 0.4,
            "speckles «ünïcode» 🐦",
            points=[(3, 4), (10.5, 20.25)],
            labels=[1, 0],
            caption_source=CaptionSource.generated("HaochenWang/GAR-1B", {"max_new_tokens": 64}),
        ),
        ExportedRegion(
            1,
            "#00ff00",
            "box",
            np.ones((H, W), bool),
            "everything",
            prompt_box=(0.5, 0.0, 31.9, 23.0),
            caption_source=CaptionSource.generated("m", {}).edit("ann"),
        ),
        ExportedRegion(3, "#0000ff", "scribble", corner, "", scribble=[(31, 23), (30, 22.5)]),
        ExportedRegion(4, "#ffe119", "mask", np.zeros((H, W), bool), "typed", mask_name="up.png",
                       caption_source=CaptionSource.typed("bo").accept("cy")),
    ]  # fmt: skip
    earlier = {"<Prompt0>": mask_to_rle(box_mask((H, W), 2, 5, 2, 9))}  # the region was edited since
    dialogue = [
        Turn("user", "Compare <Prompt1> with <Prompt0>.", "2025-06-01T12:00:00.000Z", masks=earlier),
        Turn("assistant", "<Prompt0> is speckled.", "2025-06-01T12:00:01Z", "GAR", {"do_sample": False}),
    ]
    return AnnotationDocument(info, regions, dialogue)


def test_a_document_comes_back_bit_for_bit_after_reopening(folder):
    with open_project(folder) as project:
        opened = project.open_image("sub/c.png")
        assert opened.document is None and opened.entry.version == 0
        document = _full_document(opened.info)
        version = project.store.save_document("sub/c.png", document, 0, OWNER)
    with open_project(folder) as project:  # a new process would see the same: a fresh store object
        again = project.open_image("sub/c.png")
    assert version == 1 and again.entry.version == 1 and again.entry.saved_by == OWNER
    assert again.document == document
    assert to_json(again.document) == to_json(document)  # masks, floats, provenance: all identical
    assert (again.entry.regions, again.entry.captioned, again.entry.status) == (4, 3, "in_progress")


def test_a_stale_save_is_refused_naming_who_saved_and_nothing_is_overwritten(folder):
    with open_project(folder) as project:
        first = annotate(project, "a.png", [region(0, box_mask((H, W), 0, 5, 0, 5), "mine")], owner="tab one")
        opened = project.open_image("a.png")
        theirs = AnnotationDocument(opened.info, [region(0, box_mask((H, W), 9, 15, 9, 15), "theirs")])
        with pytest.raises(ConflictError) as refused:
            project.store.save_document("a.png", theirs, first - 1, "tab two")
        assert "tab one" in str(refused.value) and refused.value.saved_by == "tab one"
        assert refused.value.version == first
        assert project.store.load("a.png").document.regions[0].caption == "mine"
        assert project.store.save_document("a.png", theirs, first, "tab two") == first + 1


def test_a_lease_keeps_other_owners_out_until_released_expired_or_its_process_is_gone(folder):
    with open_project(folder) as project:
        store = project.store
        annotate(project, "a.png", [region(0, box_mask((H, W), 0, 5, 0, 5))])
        store.acquire("a.png", "tab one", seconds=60)
        assert store.entry("a.png").lease_owner == "tab one"
        version = store.entry("a.png").version
        with pytest.raises(LockedError, match="tab one"):
            store.save_caption("a.png", 0, "sneaky", None, "tab two", expected_version=version)
        with pytest.raises(LockedError):
            store.acquire("a.png", "tab two")
        store.save_caption("a.png", 0, "fine", CaptionSource.typed(), "tab one", expected_version=version)
        store.release("a.png", "tab one")
        store.acquire("a.png", "tab two", seconds=0.05)  # free again
        import time

        time.sleep(0.1)
        store.acquire("a.png", "tab three")  # tab two's lease ran out

        gone = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        )
        import socket

        dead = f"tab on {socket.gethostname()} pid {gone.stdout.strip()}"
        store.release("a.png", "tab three")
        store.acquire("a.png", dead, seconds=600)
        assert store.entry("a.png").lease_owner is None  # the gallery shows nobody editing it
        store.acquire("a.png", "tab four")  # its process is gone: no need to wait 10 minutes


def test_a_caption_is_saved_only_onto_the_mask_and_caption_it_was_made_for(folder):
    mask = box_mask((H, W), 2, 9, 3, 12)
    with open_project(folder) as project:
        store = project.store
        annotate(project, "a.png", [region(0, mask), region(1, mask, "a person's", CaptionSource.typed())])
        model = CaptionSource.generated("tiny", {"max_new_tokens": 3})
        with pytest.raises(ConflictError, match="mask changed"):
            store.save_caption(
                "a.png", 0, "late", model, OWNER, expected_mask=mask_to_rle(~mask), replace="empty"
            )
        with pytest.raises(ConflictError, match="person"):
            store.save_caption("a.png", 1, "model's", model, OWNER, replace="model")
        store.save_caption(
            "a.png", 0, "first", model, OWNER, expected_mask=mask_to_rle(mask), replace="empty"
        )
        with pytest.raises(ConflictError):  # no longer empty
            store.save_caption("a.png", 0, "second", model, OWNER, replace="empty")
        store.save_caption("a.png", 0, "redone", model, OWNER, replace="model")
        with pytest.raises(ConflictError, match="no region <Prompt5>"):
            store.save_caption("a.png", 5, "x", model, OWNER)
        regions = store.load("a.png").document.regions
        assert [r.caption for r in regions] == ["redone", "a person's"]
        assert regions[0].caption_source == model and store.entry("a.png").captioned == 2


def test_a_store_written_by_a_newer_app_is_refused_in_one_line(folder):
    open_project(folder).close()
    with sqlite3.connect(folder / ".gar-project" / STORE_FILE) as db:
        db.execute("PRAGMA user_version = 7")
    with pytest.raises(NewerStoreError, match="newer GAR App.*store version 7.*reads up to 1"):
        open_project(folder)
    result = gar_app("project", "status", str(folder))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "newer GAR App" in result.stderr


def test_another_database_is_not_taken_for_a_store(tmp_path, folder):
    other = tmp_path / "other"
    other.mkdir()
    with sqlite3.connect(other / STORE_FILE) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match="not a GAR App project store"):
        open_project(folder, store=other)


def test_a_damaged_store_names_its_file_and_how_to_recover(folder):
    with open_project(folder) as project:
        for path in ("a.png", "b.png", "sub/c.png"):
            annotate(
                project, path, [region(k, np.random.default_rng(k).random((H, W)) < 0.5) for k in range(4)]
            )
    file = folder / ".gar-project" / STORE_FILE
    data = bytearray(file.read_bytes())
    assert len(data) > 8192 and not (folder / ".gar-project" / f"{STORE_FILE}-wal").exists()

    data[4096:] = np.random.default_rng(0).integers(0, 256, len(data) - 4096, dtype=np.uint8).tobytes()
    file.write_bytes(data)  # the first page is fine, the tables behind it are noise
    with pytest.raises(DamagedStoreError) as damaged, open_project(folder) as project:
        project.store.counts()
        list(project.store.documents())
    message = str(damaged.value)
    assert str(file) in message and "rename it to project.sqlite.damaged" in message and "\n" not in message

    file.write_bytes(b"this is not a database at all" * 200)
    result = gar_app("project", "status", str(folder))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is damaged" in result.stderr and str(file) in result.stderr and result.stderr.count("\n") == 1

    file.rename(file.with_name(f"{STORE_FILE}.damaged"))  # what the message says to do
    with open_project(folder) as project:
        assert project.store.counts().images == 3


def test_a_full_disk_fails_the_save_and_keeps_the_state_before_it(folder):
    with open_project(folder) as project:
        store = project.store
        version = annotate(project, "a.png", [region(0, box_mask((H, W), 0, 5, 0, 5), "kept")])
        db = store._db()  # what a full disk looks like to SQLite: no page can be added
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        opened = project.open_image("a.png")
        noisy = [region(k, np.random.default_rng(k).random((H, W)) < 0.5, "x" * 3000) for k in range(40)]
        with pytest.raises(StoreWriteError, match="full: nothing was saved"):
            store.save_document("a.png", AnnotationDocument(opened.info, noisy), version, OWNER)
        stored = store.load("a.png")
        assert stored.entry.version == version and [r.caption for r in stored.document.regions] == ["kept"]
        db.execute("PRAGMA max_page_count = 1073741823")
        assert (
            store.save_document("a.png", AnnotationDocument(opened.info, noisy), version, OWNER)
            == version + 1
        )


CHILD_OPEN = """
import json, sys
from gar_app.project import open_project
from gar_app.errors import GarAppError
try:
    with open_project(sys.argv[1], store=sys.argv[2] if len(sys.argv) > 2 else None) as project:
        print(json.dumps({"opened": project.store.counts().images}))
except GarAppError as error:
    print(json.dumps({"error": str(error), "kind": type(error).__name__}))
"""


def _read_only(path) -> None:
    for root, folders, files in os.walk(path):
        for name in files + folders:
            target = os.path.join(root, name)
            os.chmod(target, os.stat(target).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    os.chmod(path, os.stat(path).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _writable(path) -> None:
    os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)
    for root, folders, files in os.walk(path):
        for name in files + folders:
            target = os.path.join(root, name)
            os.chmod(target, os.stat(target).st_mode | stat.S_IWUSR)


def _child_open(*args: str, prefix: list[str]) -> dict:
    child = python(CHILD_OPEN, *map(str, args), prefix=prefix, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return json.loads(out)


def test_a_read_only_store_is_said_at_once_and_nothing_is_pretended(tmp_path, folder):
    prefix = without_root_powers()
    with open_project(folder) as project:
        annotate(project, "a.png", [region(0, box_mask((H, W), 0, 5, 0, 5), "kept")])
    store = folder / ".gar-project"
    before = (store / STORE_FILE).read_bytes()
    _read_only(store)
    try:
        result = _child_open(folder, prefix=prefix)
        assert result["kind"] == "StoreWriteError", result
        assert (
            "cannot write the project store" in result["error"] and str(store / STORE_FILE) in result["error"]
        )
        assert "--store" in result["error"]
        status = gar_app("project", "status", str(folder), prefix=prefix)
        assert status.returncode == 2 and "Traceback" not in status.stderr
        assert status.stderr.startswith("gar-app: error: cannot write the project store")
        _writable(store)
        _read_only(store / STORE_FILE)  # the folder takes SQLite's side files, the store does not
        result = _child_open(folder, prefix=prefix)
        assert result["kind"] == "StoreWriteError" and "readonly" in result["error"], result
    finally:
        _writable(store)
    assert (store / STORE_FILE).read_bytes() == before


def test_a_read_only_folder_is_annotated_with_the_store_elsewhere(tmp_path, folder):
    prefix = without_root_powers()
    _read_only(folder)
    try:
        refused = _child_open(folder, prefix=prefix)
        assert refused["kind"] == "StoreWriteError" and "--store" in refused["error"], refused
        elsewhere = tmp_path / "store"
        assert _child_open(folder, elsewhere, prefix=prefix) == {"opened": 3}
    finally:
        _writable(folder)
    assert not (folder / ".gar-project").exists()
    with open_project(folder, store=elsewhere) as project:
        annotate(project, "b.png", [region(0, box_mask((H, W), 1, 4, 1, 4))])
        assert project.store.counts().annotated == 1


SAVE_FOREVER = """
import sys
import numpy as np
from gar_app.formats.document import AnnotationDocument
from gar_app.project import open_project
sys.path.insert(0, "tests")
from api_helpers import box_mask
from project_helpers import region
project = open_project(sys.argv[1])
opened = project.open_image("a.png")
version = opened.entry.version
while True:
    count = version % 3 + 1
    regions = [region(k, box_mask((24, 32), k, k + 5, 0, 9), f"save {version + 1}") for k in range(count)]
    version = project.store.save_document("a.png", AnnotationDocument(opened.info, regions), version, "saver")
    print(version, flush=True)
"""


def test_a_killed_process_leaves_the_last_committed_save(folder):
    """Killed at a random moment of a save, three times: each time the store holds the last
    save whole (its caption and its number of regions agree with its version)."""
    open_project(folder).close()
    rng = np.random.default_rng(0)
    for _ in range(3):
        child = python(SAVE_FOREVER, str(folder), stdout=subprocess.PIPE)
        try:
            assert child.stdout.readline()  # saving
            threading.Event().wait(rng.uniform(0.05, 0.3))
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            printed = [int(line) for line in child.stdout.read().split()]  # what it said was saved
        finally:
            child.kill()
            child.stdout.close()
        with open_project(folder) as project:
            stored = project.store.load("a.png")
            version = stored.entry.version
            assert printed and version in (printed[-1], printed[-1] + 1)  # one more may have committed
            assert [r.caption for r in stored.document.regions] == [f"save {version}"] * (
                (version - 1) % 3 + 1
            )
            assert project.store._db().execute("PRAGMA integrity_check").fetchone() == ("ok",)


WRITER = """
import sys
from gar_app.formats.document import AnnotationDocument
from gar_app.project import open_project
sys.path.insert(0, "tests")
from api_helpers import box_mask
from project_helpers import region
name, path, rounds = sys.argv[2], sys.argv[3], int(sys.argv[4])
with open_project(sys.argv[1]) as project:
    opened = project.open_image(path)
    version = opened.entry.version
    for k in range(rounds):
        regions = [region(0, box_mask((24, 32), 0, 4, 0, 4), f"{name} {k}")]
        version = project.store.save_document(path, AnnotationDocument(opened.info, regions), version, name)
        project.store.counts()  # readers while the other process writes
    print(version)
"""

STALE = """
import sys
from gar_app.formats.document import AnnotationDocument
from gar_app.project import open_project, ConflictError
sys.path.insert(0, "tests")
from api_helpers import box_mask
from project_helpers import region
with open_project(sys.argv[1]) as project:
    opened = project.open_image("b.png")
    print(opened.entry.version, flush=True)
    sys.stdin.readline()  # the other process saves meanwhile
    try:
        document = AnnotationDocument(opened.info, [region(0, box_mask((24, 32), 0, 4, 0, 4), "stale")])
        project.store.save_document("b.png", document, opened.entry.version, "first server")
        print("saved")
    except ConflictError as error:
        print("conflict:", error)
"""


def test_two_processes_share_one_store(folder):
    open_project(folder).close()
    writers = [
        python(WRITER, str(folder), name, path, "40", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name, path in (("left", "a.png"), ("right", "sub/c.png"))
    ]
    results = [w.communicate(timeout=300) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err for _, err in results]
    assert [int(out) for out, _ in results] == [40, 40]

    stale = python(STALE, str(folder), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert stale.stdout.readline().strip() == "0"
    other = python(WRITER, str(folder), "second server", "b.png", "1", stdout=subprocess.PIPE)
    assert other.communicate(timeout=120)[0].strip() == "1"
    out, _ = stale.communicate("go\n", timeout=120)
    assert out.startswith("conflict: b.png was saved by second server at ")
    with open_project(folder) as project:
        assert project.store.load("b.png").document.regions[0].caption == "second server 0"
        assert [project.store.entry(p).version for p in ("a.png", "b.png", "sub/c.png")] == [40, 1, 40]


def test_a_videos_tracks_are_stored_and_come_back_exactly(tmp_path):
    from conftest import EXAMPLES

    from gar_app.formats.video_document import (
        TrackCaption,
        TrackData,
        TrackFrame,
        TrackKeyframe,
        VideoDocument,
        VideoSource,
        video_to_json,
    )

    root = tmp_path / "clips"
    root.mkdir()
    shutil.copy(EXAMPLES / "photo_tour.webm", root / "tour.webm")
    with open_project(root) as project:
        opened = project.open_video("tour.webm")
        assert opened.document is None and (opened.entry.width, opened.entry.height) == (320, 240)
        mask = mask_to_rle(box_mask((240, 320), 10, 100, 20, 200))
        track = TrackData(
            0,
            "#ff0000",
            0,
            [TrackKeyframe(0, 0.0, "box")],
            [TrackFrame(0, 0.0, mask), TrackFrame(4, 0.5, None)],
            [TrackCaption(0, 0.0, "a gallery wall")],
        )
        source = VideoSource("tour.webm", 320, 240, 8.0, 36, opened.sha256, fps_cap=2.0)
        document = VideoDocument(source, 2, [track])
        assert project.store.save_document("tour.webm", document, 0, OWNER) == 1
        image_info = ImageInfo("tour.webm", W, H, opened.sha256, "file")
        with pytest.raises(InputError, match="is a video file; it cannot take an image.s annotations"):
            project.store.save_document("tour.webm", _full_document(image_info), 1, OWNER)
    with open_project(root) as project:
        again = project.open_video("tour.webm")
        assert video_to_json(again.document) == video_to_json(document)
        assert (again.entry.regions, again.entry.captioned, project.store.counts().videos) == (1, 1, 1)


def test_threads_of_one_server_share_the_store(folder):
    """The app saves from many request threads and describe-all's own: each gets its own
    connection, and no save is lost or refused for being concurrent."""
    from concurrent.futures import ThreadPoolExecutor

    with open_project(folder) as project:
        opened = {path: project.open_image(path) for path in ("a.png", "b.png", "sub/c.png")}

        def save_many(path: str) -> int:
            version = 0
            for k in range(15):
                regions = [region(0, box_mask((H, W), 0, 4, 0, 4), f"{path} {k}")]
                version = project.store.save_document(
                    path, AnnotationDocument(opened[path].info, regions), version, path
                )
                project.store.counts()
            return version

        with ThreadPoolExecutor(3) as pool:
            assert list(pool.map(save_many, opened)) == [15, 15, 15]
        assert [project.store.load(p).document.regions[0].caption for p in opened] == [
            f"{p} 14" for p in opened
        ]


def test_the_sqlite_store_is_exactly_the_interface():
    """Everything the app may call is in ``ProjectStore``, with the same signature, so another
    database can take SQLite's place by implementing that one interface."""
    import inspect

    from gar_app.project import ProjectStore
    from gar_app.project.sqlite import SqliteStore

    wanted = {
        name
        for name in vars(ProjectStore)
        if not name.startswith("_") and callable(getattr(ProjectStore, name))
    }
    offered = {
        name
        for name in vars(SqliteStore)
        if not name.startswith("_") and callable(getattr(SqliteStore, name))
    }
    assert wanted == offered
    for name in wanted:
        assert inspect.signature(getattr(SqliteStore, name)) == inspect.signature(
            getattr(ProjectStore, name)
        ), name
