"""A project: a folder of images (and videos) and the store that holds their annotations.

``open_project(DIR)`` opens or creates the store (``DIR/.gar-project/`` unless another
folder is given, e.g. when DIR is read-only) and scans DIR incrementally. The ``Project``
adds what needs the files themselves to the store: opening an image for annotation (with
its saved document, unless the file changed since), reading headers, thumbnails. Reading
lists and saving go straight to ``project.store`` (``gar_app.project.store.ProjectStore``).

Images are referenced by relative path and sha256, never copied. An image whose bytes
differ from the ones its annotations were made on is *changed*: ``open_image`` gives it
without the old masks and says so; ``store.rebase`` keeps them on the new file (same size
only) and ``store.discard`` drops them.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

from gar_app.errors import InputError
from gar_app.formats.document import AnnotationDocument, ImageInfo, file_sha256
from gar_app.formats.video_document import VideoDocument
from gar_app.images import load_image
from gar_app.project.media import make_thumbnail, probe
from gar_app.project.scan import ScanReport, scan
from gar_app.project.sqlite import SqliteStore
from gar_app.project.store import FileEntry, Probe, ProjectStore

STORE_FOLDER = ".gar-project"
THUMBNAILS = "thumbnails"
THUMBNAIL_EDGE = 256


@dataclass
class OpenedImage:
    """An image ready to annotate: pass ``entry.version`` as ``expected_version`` when saving."""

    entry: FileEntry
    image: Image.Image  # RGB, EXIF rotation applied (gar_app.images.load_image)
    info: ImageInfo  # name = the relative path, sha256 of the file: what its document must carry
    document: AnnotationDocument | None  # the saved annotations; None when none, or ``changed``
    changed: str | None = None  # why saved annotations were held back (made on other bytes)


@dataclass
class OpenedVideo:
    entry: FileEntry
    file: Path
    sha256: str  # of the file: the ``video.sha256`` its tracks document must carry
    document: VideoDocument | None
    changed: str | None = None


def _changed(path: str, regions: int) -> str:
    return (
        f"{path} changed on disk since it was annotated (other bytes): its {regions} saved region(s) "
        "were made on the old file and are not shown; keep them on the new file if it is the same "
        "picture, or discard them"
    )


class Project:
    def __init__(self, root: Path, store: ProjectStore, store_folder: Path):
        self.root = root
        self.store = store
        self.store_folder = store_folder
        self.last_scan: ScanReport | None = None

    # -- files ---------------------------------------------------------------------------

    def file(self, path: str) -> Path:
        """The file on disk for a project path (relative, ``/``-separated, inside the folder)."""
        parts = PurePosixPath(path).parts
        if not parts or PurePosixPath(path).is_absolute() or ".." in parts or "\\" in path:
            raise InputError(f"{path!r} is not a path inside the project (relative, with / between folders)")
        return self.root.joinpath(*parts)

    def scan(self) -> ScanReport:
        """Bring the file list up to date with the folder (see ``gar_app.project.scan``)."""
        self.last_scan = scan(self.root, self.store, exclude=self.store_folder)
        return self.last_scan

    def probe(self, progress: Callable[[int], object] | None = None, batch: int = 200) -> int:
        """Read the header of every file not read yet: its size, or why it cannot be used
        (unreadable, over the limits), so the gallery and exports know. Returns how many."""
        done = 0
        for kind in ("image", "video"):
            while paths := self.store.unprobed(kind, batch):
                self.store.record_probes([Probe(path, *probe(self.file(path), kind)) for path in paths])
                done += len(paths)
                if progress is not None:
                    progress(done)
        return done

    def _entry(self, path: str, kind: str) -> FileEntry:
        entry = self.store.entry(path)
        if entry is None or entry.kind == "other":
            raise InputError(f"{path} is not an image or video of this project")
        if entry.kind != kind:
            raise InputError(f"{path} is not {'an image' if kind == 'image' else 'a video'}")
        if entry.missing or not self.file(path).is_file():
            raise InputError(f"{path} is no longer in the project folder (its annotations are kept)")
        return entry

    # -- opening for annotation ------------------------------------------------------------

    def open_image(self, path: str) -> OpenedImage:
        """The image, its identity and its saved annotations; an unreadable image is recorded
        as failed (with the reason) and raises ``InputError``."""
        self._entry(path, "image")
        file = self.file(path)
        try:
            image = load_image(file)
        except InputError as error:
            self.store.record_probes([Probe(path, None, None, str(error))])
            raise
        sha = file_sha256(file)
        self.store.record_hash(path, sha, image.width, image.height)
        stored = self.store.load(path)
        document = stored.document
        info = ImageInfo(path, image.width, image.height, sha, "file")
        if isinstance(document, AnnotationDocument) and document.image.sha256 != sha:
            return OpenedImage(stored.entry, image, info, None, _changed(path, len(document.regions)))
        return OpenedImage(stored.entry, image, info, document)  # type: ignore[arg-type]

    def open_video(self, path: str) -> OpenedVideo:
        """A video's file, hash and saved tracks (``gar_app.tracking`` opens the frames)."""
        self._entry(path, "video")
        file = self.file(path)
        width, height, problem = probe(file, "video")
        if problem is not None:
            self.store.record_probes([Probe(path, None, None, problem)])
            raise InputError(problem)
        sha = file_sha256(file)
        self.store.record_hash(path, sha, width, height)  # type: ignore[arg-type]
        stored = self.store.load(path)
        document = stored.document
        if isinstance(document, VideoDocument) and document.video.sha256 != sha:
            return OpenedVideo(stored.entry, file, sha, None, _changed(path, len(document.regions)))
        return OpenedVideo(stored.entry, file, sha, document)  # type: ignore[arg-type]

    # -- thumbnails (a cache: delete the folder any time) ----------------------------------

    @property
    def thumbnail_folder(self) -> Path:
        return self.store_folder / THUMBNAILS

    def thumbnail(self, path: str, edge: int = THUMBNAIL_EDGE) -> Path | None:
        """A JPEG preview of the file, made on first request and kept; None when the file
        cannot be read (it is then recorded as failed, with the reason)."""
        entry = self.store.entry(path)
        if entry is None or entry.kind == "other" or entry.missing:
            return None
        key = hashlib.sha1(f"{path}\0{entry.size}\0{entry.mtime_ns}\0{edge}".encode()).hexdigest()
        target = self.thumbnail_folder / key[:2] / f"{key}.jpg"
        if target.exists():
            return target
        try:
            width, height = make_thumbnail(self.file(path), entry.kind, target, edge)
        except InputError as error:
            self.store.record_probes([Probe(path, None, None, str(error))])
            return None
        if (entry.width, entry.height) != (width, height) or entry.problem:
            self.store.record_probes([Probe(path, width, height, None)])
        return target

    def clear_thumbnails(self) -> None:
        shutil.rmtree(self.thumbnail_folder, ignore_errors=True)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_project(folder: str | Path, store: str | Path | None = None, rescan: bool = True) -> Project:
    """Open (or start) the project in ``folder``; its store lives in ``store`` (a folder,
    default ``folder/.gar-project``). ``rescan`` brings the file list up to date first."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(
            f"project folder not found: {root}" if not root.exists() else f"{root} is not a folder"
        )
    root = root.resolve()
    store_folder = Path(store).expanduser().resolve() if store is not None else root / STORE_FOLDER
    project = Project(root, SqliteStore(store_folder), store_folder)
    if rescan:
        try:
            project.scan()
        except BaseException:
            project.close()
            raise
    return project
