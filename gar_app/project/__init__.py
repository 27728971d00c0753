"""Projects: a folder of images (and videos) annotated in place, every change saved as it
happens.

    from gar_app.formats.caption_source import CaptionSource
    from gar_app.project import Filters, open_project, owner_id

    project = open_project("photos/")  # store in photos/.gar-project/ (or store="elsewhere/")
    store = project.store  # ProjectStore: lists, counts, saves, leases
    me = owner_id("tab")  # who saves: named in conflicts and leases

    store.counts()  # Counts(images=500, done=37, ...)
    first = store.neighbour(None, Filters(annotated=False))  # first image without regions
    opened = project.open_image(first.path)  # PIL image, identity, saved document (or None)
    store.acquire(first.path, me)  # others are told it is being edited (renew within 60 s)
    version = store.save_document(first.path, document, opened.entry.version, me)
    version = store.save_caption(first.path, 0, "a heron", CaptionSource.typed(), me, expected_version=version)
    store.set_status(first.path, "done", me)

For a page on top of it: one ``owner_id`` per tab; save after every action with the version
the last save returned (``ConflictError``: someone else saved, reload and say so;
``LockedError``: someone holds the image; ``StoreWriteError``: nothing was saved, say so at
once). ``OpenedImage.changed`` is set, and ``document`` None, when the file's bytes are not
the annotated ones: offer ``store.rebase`` (keep the masks) or ``store.discard``. A
document's ``image`` must be ``OpenedImage.info`` (the relative path and the file's hash).
``project.thumbnail(path)`` gives a cached JPEG; ``describe_all.DescribeAll`` runs the bulk
captioning in a thread (``progress``, ``cancel``, ``unfinished`` to offer resuming).

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
