"""Projects: a folder of images (and videos) annotated in place, every change saved as it
happens.

    from gar_app.project import open_project, Filters, owner_id

    project = open_project("photos/")  # store in photos/.gar-project/ (or store="elsewhere/")
    store = project.store  # ProjectStore: lists, counts, saves, leases
    me = owner_id("tab")  # who saves: named in conflicts and leases

    store.counts()  # Counts(images=500, done=37, ...)
    first = store.neighbour(None, Filters(annotated=False))  # first image without regions
    opened = project.open_image(first.path)  # PIL image, identity, saved document (or None)
    store.acquire(first.path, me)  # others are told it is being edited (renew within 60 s)
    version = store.save_document(first.path, document, opened.entry.version, me)
    store.save_caption(first.path, 0, "a heron", CaptionSource.typed(), me, expected_version=version)
    store.set_status(first.path, "done", me)

Modules: ``store`` (the interface, its records and errors), ``sqlite`` (the SQLite store),
``project`` (folder + store: open, scan, images, thumbnails), ``scan`` (incremental file
list), ``media`` (headers and thumbnails), ``describe_all`` (the resumable captioning job),
``exchange`` (project-wide export and COCO import), ``owners`` (owner names).
"""

from gar_app.project.owners import owner_id
from gar_app.project.project import OpenedImage, OpenedVideo, Project, open_project
from gar_app.project.store import (
    STATUSES,
    ConflictError,
    Counts,
    DamagedStoreError,
    FileEntry,
    Filters,
    LockedError,
    NewerStoreError,
    ProjectStore,
    Stored,
    StoreError,
    StoreWriteError,
)

__all__ = [
    "STATUSES",
    "ConflictError",
    "Counts",
    "DamagedStoreError",
    "FileEntry",
    "Filters",
    "LockedError",
    "NewerStoreError",
    "OpenedImage",
    "OpenedVideo",
    "Project",
    "ProjectStore",
    "StoreError",
    "StoreWriteError",
    "Stored",
    "open_project",
    "owner_id",
]
