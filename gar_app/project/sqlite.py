"""``ProjectStore`` on SQLite from the standard library: nothing to install or start.

One file, ``project.sqlite``, in the store folder. WAL mode (readers never wait for the one
writer), ``synchronous=FULL`` (a save that returned survives a power cut, not only a killed
process), every write one short ``BEGIN IMMEDIATE`` transaction (the write lock is taken
first, so two processes never deadlock upgrading a read), and a busy timeout so a writer
waits for another instead of failing. Each thread has its own connection (SQLite's rule).

Schema versioned from the first commit in ``PRAGMA user_version``: a store written by a
newer app is refused with one line instead of being misread. Every SQLite error is turned
into a ``StoreError`` saying which file and what to do; a failed save leaves the previous
state as it was (the transaction rolls back).

Layout: ``files`` (one row per file found: identity, status, counts, version), ``documents``
(an image document without its regions, or a whole video document, as ``gar-app/1`` JSON),
``regions`` (one row per image region: its ``gar-app/1`` JSON plus the caption columns the
queries need), ``leases`` and ``jobs``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gar_app.conversation import utc_now
from gar_app.errors import InputError
from gar_app.formats import FORMAT
from gar_app.formats.caption_source import CaptionSource, caption_kept
from gar_app.formats.document import AnnotationDocument, from_dict, to_dict
from gar_app.formats.video_document import VideoDocument, video_from_dict, video_to_dict
from gar_app.project.owners import owner_gone
from gar_app.project.store import (
    EVERYTHING,
    REPLACE,
    STATUSES,
    ConflictError,
    Counts,
    DamagedStoreError,
    Document,
    FileChange,
    FileEntry,
    Filters,
    Job,
    KnownFile,
    LockedError,
    NewerStoreError,
    Probe,
    RegionToDescribe,
    Stored,
    StoreError,
    StoreWriteError,
)
from gar_app.tags import tag

SCHEMA_VERSION = 1
STORE_FILE = "project.sqlite"
APP = "gar-app project store"
PAGE = 200  # rows per query when iterating over the whole project

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    folder TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('image', 'video', 'other')),
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,
    width INTEGER,
    height INTEGER,
    problem TEXT,
    missing INTEGER NOT NULL DEFAULT 0,
    changed INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'in_progress', 'done', 'skipped')),
    regions INTEGER NOT NULL DEFAULT 0,
    captioned INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,
    saved_by TEXT,
    saved_at TEXT
);
CREATE INDEX files_by_folder ON files (folder, path);
CREATE TABLE documents (
    file_id INTEGER PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE regions (
    file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    caption TEXT NOT NULL,
    caption_state TEXT NOT NULL CHECK (caption_state IN ('none', 'model', 'kept')),
    data TEXT NOT NULL,
    PRIMARY KEY (file_id, idx)
);
CREATE INDEX regions_to_describe ON regions (caption_state, file_id, idx);
CREATE TABLE leases (
    file_id INTEGER PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE jobs (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

ENTRY_COLUMNS = (
    "f.path, f.kind, f.size, f.mtime_ns, f.sha256, f.width, f.height, f.problem, f.missing, f.changed, "
    "f.status, f.regions, f.captioned, f.version, f.saved_by, f.saved_at, l.owner"
)
ENTRY_FROM = "files f LEFT JOIN leases l ON l.file_id = f.id AND l.expires > ?"


def _entry(row: tuple) -> FileEntry:
    values = list(row)
    values[8], values[9] = bool(values[8]), bool(values[9])  # missing, changed
    if values[16] is not None and owner_gone(values[16]):
        values[16] = None  # a lease left by a process that died here holds nothing
    return FileEntry(*values)


def caption_state(caption: str, source: CaptionSource | None) -> str:
    """``none`` (no caption), ``model`` (a model's, no person touched it) or ``kept``."""
    if not caption.strip():
        return "none"
    return "kept" if caption_kept(source) else "model"


def _folder_of(path: str) -> str:
    return path.rpartition("/")[0]


def _when(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


class SqliteStore:
    """The project store in ``folder/project.sqlite`` (see the module docstring)."""

    def __init__(self, folder: str | Path, busy_timeout: float = 10.0):
        self.folder = Path(folder)
        self.file = self.folder / STORE_FILE
        self.location = str(self.file)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreWriteError(
                f"cannot create the project store folder {self.folder}: {error.strerror or error}; "
                "give a writable folder for the store (--store PATH)"
            ) from None
        self._open()

    # -- connections and errors --------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            uri = f"file:{quote(str(self.file.resolve()))}?mode=rwc"
            try:
                db = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, isolation_level=None)
                db.execute("PRAGMA foreign_keys = ON")
                db.execute("PRAGMA synchronous = FULL")
            except sqlite3.Error as error:
                raise self._error(error) from None
            db.create_function("casefold", 1, lambda text: text.casefold(), deterministic=True)
            self._local.db = db
            with self._all_lock:
                self._all.append(db)
        return db

    def _error(self, error: sqlite3.Error) -> StoreError:
        """The one sentence a person reads for any SQLite error on this store."""
        name = getattr(error, "sqlite_errorname", "") or ""
        text = str(error)
        where = self.location
        if "READONLY" in name or "CANTOPEN" in name or "readonly" in text or "unable to open" in text:
            return StoreWriteError(
                f"cannot write the project store {where} ({text}): nothing was saved; make it writable, "
                "or open the project with --store PATH on a writable disk"
            )
        if "FULL" in name or "full" in text:
            return StoreWriteError(f"the disk holding the project store {where} is full: nothing was saved")
        if "BUSY" in name or "LOCKED" in name or "locked" in text:
            return StoreWriteError(
                f"the project store {where} stayed locked by another process for {self.busy_timeout:g} s: "
                "nothing was saved; try again"
            )
        if "IOERR" in name or "I/O" in text:
            return StoreWriteError(f"the disk failed reading or writing the project store {where} ({text})")
        if not ("CORRUPT" in name or "NOTADB" in name or "malformed" in text or "not a database" in text):
            return StoreError(f"the project store {where} failed: {text}")
        return DamagedStoreError(
            f"the project store {where} is damaged ({text}); move it aside (rename it to "
            f"{self.file.name}.damaged) and open the project again to start a new, empty store, or put "
            "back a backup of it; the images themselves are untouched"
        )

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One consistent snapshot for the queries inside."""
        db = self._db()
        try:
            db.execute("BEGIN")
            yield db
        except sqlite3.Error as error:
            raise self._error(error) from None
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction, or nothing changed (whatever went wrong)."""
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._error(error) from None
        finally:
            if db.in_transaction:
                with suppress(sqlite3.Error):  # the connection already ended it: nothing committed
                    db.execute("ROLLBACK")

    def _open(self) -> None:
        """Create the schema, or check the existing one is ours and not newer; check it writes
        (``opened_at`` is written on every open, so a read-only store is said at once)."""
        try:
            mode = self._db().execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.Error as error:
            raise self._error(error) from None
        if mode.lower() != "wal":
            raise StoreError(f"the project store {self.location} cannot use WAL mode (it says {mode!r})")
        with self._write() as db:
            found = db.execute("PRAGMA user_version").fetchone()[0]
            if found > SCHEMA_VERSION:
                raise NewerStoreError(
                    f"the project store {self.location} was written by a newer GAR App (store version "
                    f"{found}; this one reads up to {SCHEMA_VERSION}): update gar-app to open it"
                )
            if found == 0:
                if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise StoreError(f"{self.location} is a database, but not a GAR App project store")
                for statement in SCHEMA.split(";"):  # not executescript: it would commit
                    if statement.strip():
                        db.execute(statement)
                db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("app", APP), ("format", FORMAT), ("created_at", utc_now())],
                )
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            else:
                app = db.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
                if app is None or app[0] != APP:
                    raise StoreError(f"{self.location} is a database, but not a GAR App project store")
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_at', ?)", (utc_now(),))

    def close(self) -> None:
        with self._all_lock:
            for db in self._all:
                with suppress(sqlite3.ProgrammingError):  # another thread's: closed when it ends
                    db.close()
            self._all.clear()
        self._local = threading.local()

    # -- helpers -------------------------------------------------------------------------

    def _file(self, db: sqlite3.Connection, path: str) -> tuple:
        row = db.execute(
            "SELECT id, kind, version, saved_by, saved_at, sha256, status, changed, width, height "
            "FROM files WHERE path = ?",
            (path,),
        ).fetchone()
        if row is None:
            raise InputError(f"{path} is not a file of this project (rescan the folder if it is new)")
        return row

    def _check_lease(self, db: sqlite3.Connection, file_id: int, path: str, owner: str) -> None:
        row = db.execute("SELECT owner, expires FROM leases WHERE file_id = ?", (file_id,)).fetchone()
        if row and row[0] != owner and row[1] > time.time() and not owner_gone(row[0]):
            raise LockedError(
                f"{path} is being edited by {row[0]} (until {_when(row[1])}): nothing was saved", *row
            )

    def _check_version(self, row: tuple, path: str, expected: int | None) -> None:
        _id, _kind, version, saved_by, saved_at = row[:5]
        if expected is not None and expected != version:
            raise ConflictError(
                f"{path} was saved by {saved_by or 'someone else'} at {saved_at} (version {version}) after "
                f"you opened it (version {expected}): nothing was overwritten; reopen it to see their work",
                path,
                version,
                saved_by,
                saved_at,
            )

    def _bump(self, db: sqlite3.Connection, file_id: int, owner: str, **columns: Any) -> int:
        sets = "".join(f", {name} = ?" for name in columns)
        db.execute(
            f"UPDATE files SET version = version + 1, saved_by = ?, saved_at = ?{sets} WHERE id = ?",
            (owner, utc_now(), *columns.values(), file_id),
        )
        return db.execute("SELECT version FROM files WHERE id = ?", (file_id,)).fetchone()[0]

    def _where(self, filters: Filters) -> tuple[str, list]:
        clauses = [f"f.kind IN ({', '.join('?' * len(filters.kinds))})"]
        params: list = list(filters.kinds)
        if filters.status is not None:
            unknown = set(filters.status) - set(STATUSES)
            if unknown:
                raise InputError(f"unknown status {sorted(unknown)[0]!r}; use one of {', '.join(STATUSES)}")
            clauses.append(f"f.status IN ({', '.join('?' * len(filters.status))})")
            params += list(filters.status)
        if filters.folder:
            folder = filters.folder.strip("/")
            escaped = folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append("(f.folder = ? OR f.folder LIKE ? ESCAPE '\\')")
            params += [folder, escaped + "/%"]
        if filters.text:
            clauses.append(
                "EXISTS (SELECT 1 FROM regions r WHERE r.file_id = f.id AND instr(casefold(r.caption), ?) > 0)"
            )
            params.append(filters.text.casefold())
        for flag, sql in (
            (filters.annotated, "f.regions > 0"),
            (filters.uncaptioned, "f.captioned < f.regions"),
            (filters.failed, "(f.problem IS NOT NULL AND f.kind != 'other')"),
            (filters.changed, "f.changed = 1"),
        ):
            if flag is not None:
                clauses.append(sql if flag else f"NOT {sql}")
        return " AND ".join(clauses), params

    # -- files -----------------------------------------------------------------------------

    def folders(self) -> set[str]:
        with self._read() as db:
            return {row[0] for row in db.execute("SELECT DISTINCT folder FROM files")}

    def known_files(self, folder: str) -> dict[str, KnownFile]:
        with self._read() as db:
            rows = db.execute(
                "SELECT f.path, f.size, f.mtime_ns, d.sha256, f.missing, "
                "d.file_id IS NOT NULL OR f.status != 'new' "
                "FROM files f LEFT JOIN documents d ON d.file_id = f.id WHERE f.folder = ?",
                (folder,),
            ).fetchall()
        known = {}
        for path, size, mtime_ns, annotated_sha, missing, keep in rows:
            name = path.rpartition("/")[2]
            known[name] = KnownFile(name, size, mtime_ns, annotated_sha, bool(missing), bool(keep))
        return known

    def apply_changes(self, changes: list[FileChange]) -> None:
        if not changes:
            return
        with self._write() as db:
            for change in changes:
                if change.gone:
                    row = db.execute(
                        "SELECT f.id, d.file_id IS NOT NULL OR f.status != 'new' FROM files f "
                        "LEFT JOIN documents d ON d.file_id = f.id WHERE f.path = ?",
                        (change.path,),
                    ).fetchone()
                    if row and row[1]:
                        db.execute("UPDATE files SET missing = 1 WHERE id = ?", (row[0],))
                    elif row:
                        db.execute("DELETE FROM files WHERE id = ?", (row[0],))
                    continue
                db.execute(
                    "INSERT INTO files (path, folder, kind, size, mtime_ns, sha256, problem, changed) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET kind = excluded.kind, "
                    "size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, "
                    "width = NULL, height = NULL, problem = excluded.problem, missing = 0, "
                    "changed = excluded.changed",
                    (
                        change.path,
                        _folder_of(change.path),
                        change.kind,
                        change.size,
                        change.mtime_ns,
                        change.sha256,
                        change.problem,
                        int(change.changed),
                    ),
                )

    def record_probes(self, probes: list[Probe]) -> None:
        """What reading the files found (one transaction for the lot)."""
        with self._write() as db:
            db.executemany(
                "UPDATE files SET width = ?, height = ?, problem = ? WHERE path = ?",
                [(p.width, p.height, p.problem, p.path) for p in probes],
            )

    def record_hash(self, path: str, sha256: str, width: int, height: int) -> None:
        """The file as just read: its hash and size; ``changed`` when its annotations were
        made on other bytes."""
        with self._write() as db:
            file_id = self._file(db, path)[0]
            annotated = db.execute("SELECT sha256 FROM documents WHERE file_id = ?", (file_id,)).fetchone()
            changed = annotated is not None and annotated[0] != sha256
            db.execute(
                "UPDATE files SET sha256 = ?, width = ?, height = ?, problem = NULL, changed = ? WHERE id = ?",
                (sha256, width, height, int(changed), file_id),
            )

    def unprobed(self, kind: str, limit: int) -> list[str]:
        with self._read() as db:
            return [
                row[0]
                for row in db.execute(
                    "SELECT path FROM files WHERE kind = ? AND width IS NULL AND problem IS NULL "
                    "AND missing = 0 ORDER BY path LIMIT ?",
                    (kind, limit),
                )
            ]

    # -- reading ---------------------------------------------------------------------------

    def entry(self, path: str) -> FileEntry | None:
        with self._read() as db:
            row = db.execute(
                f"SELECT {ENTRY_COLUMNS} FROM {ENTRY_FROM} WHERE f.path = ?", (time.time(), path)
            ).fetchone()
        return None if row is None else _entry(row)

    def load(self, path: str) -> Stored:
        with self._read() as db:
            row = db.execute(
                f"SELECT {ENTRY_COLUMNS}, f.id FROM {ENTRY_FROM} WHERE f.path = ?", (time.time(), path)
            ).fetchone()
            if row is None:
                raise InputError(f"{path} is not a file of this project (rescan the folder if it is new)")
            entry, file_id = _entry(row[:-1]), row[-1]
            found = db.execute("SELECT data FROM documents WHERE file_id = ?", (file_id,)).fetchone()
            regions = [
                r[0]
                for r in db.execute("SELECT data FROM regions WHERE file_id = ? ORDER BY idx", (file_id,))
            ]
        if found is None:
            return Stored(entry, None)
        data = json.loads(found[0])
        if entry.kind == "video":
            return Stored(entry, video_from_dict(data))
        data["regions"] = [json.loads(r) for r in regions]
        return Stored(entry, from_dict(data))

    def page(
        self, filters: Filters = EVERYTHING, after: str | None = None, limit: int = 100
    ) -> list[FileEntry]:
        where, params = self._where(filters)
        if after is not None:
            where += " AND f.path > ?"
            params.append(after)
        with self._read() as db:
            rows = db.execute(
                f"SELECT {ENTRY_COLUMNS} FROM {ENTRY_FROM} WHERE {where} ORDER BY f.path LIMIT ?",
                (time.time(), *params, limit),
            ).fetchall()
        return [_entry(row) for row in rows]

    def neighbour(
        self, path: str | None, filters: Filters = EVERYTHING, forward: bool = True, wrap: bool = False
    ) -> FileEntry | None:
        """The next (or previous) file after ``path`` that the filters list; with ``wrap``,
        past the end comes the first (never ``path`` itself)."""
        where, params = self._where(filters)
        order = "ASC" if forward else "DESC"
        with self._read() as db:

            def first(extra: str, values: list) -> tuple | None:
                return db.execute(
                    f"SELECT {ENTRY_COLUMNS} FROM {ENTRY_FROM} WHERE {where}{extra} "
                    f"ORDER BY f.path {order} LIMIT 1",
                    (time.time(), *params, *values),
                ).fetchone()

            if path is None:
                row = first("", [])
            else:
                row = first(f" AND f.path {'>' if forward else '<'} ?", [path])
                if row is None and wrap:
                    row = first(" AND f.path != ?", [path])
        return None if row is None else _entry(row)

    def position(self, path: str, filters: Filters = EVERYTHING) -> int:
        """How many listed files come before ``path`` (its 0-based place in the gallery)."""
        where, params = self._where(filters)
        with self._read() as db:
            return db.execute(
                f"SELECT count(*) FROM files f WHERE {where} AND f.path < ?", (*params, path)
            ).fetchone()[0]

    def counts(self, filters: Filters = EVERYTHING) -> Counts:
        where, params = self._where(filters)
        with self._read() as db:
            row = db.execute(
                "SELECT "
                "total(f.kind = 'image'), total(f.kind = 'video'), total(f.regions > 0), total(f.regions), "
                "total(f.captioned), total(f.status = 'new'), total(f.status = 'in_progress'), "
                "total(f.status = 'done'), total(f.status = 'skipped'), total(f.problem IS NOT NULL), "
                f"total(f.changed), total(f.missing) FROM files f WHERE {where}",
                params,
            ).fetchone()
            others = db.execute("SELECT count(*) FROM files WHERE kind = 'other'").fetchone()[0]
        return Counts(*(int(v) for v in row), not_images=others)

    def documents(self, filters: Filters = EVERYTHING) -> Iterator[Stored]:
        """Every saved document the filters list, in path order, a page at a time."""
        where, params = self._where(filters)
        after = ""
        while True:
            with self._read() as db:
                paths = [
                    row[0]
                    for row in db.execute(
                        f"SELECT f.path FROM files f JOIN documents d ON d.file_id = f.id "
                        f"WHERE {where} AND f.path > ? ORDER BY f.path LIMIT ?",
                        (*params, after, PAGE),
                    )
                ]
            for path in paths:
                yield self.load(path)
            if len(paths) < PAGE:
                return
            after = paths[-1]

    # -- writing annotations ---------------------------------------------------------------

    def save_document(self, path: str, document: Document, expected_version: int | None, owner: str) -> int:
        """Replace the file's annotations with ``document``; returns the new version."""
        if isinstance(document, VideoDocument):
            data, regions = video_to_dict(document), []
            sha = document.video.sha256
            count = len(document.regions)
            captioned = sum(1 for r in document.regions if any(c.text.strip() for c in r.captions))
            kind = "video"
        elif isinstance(document, AnnotationDocument):
            data = to_dict(document)
            regions = [
                (r, region.caption, region.caption_source)
                for r, region in zip(data.pop("regions"), document.regions, strict=True)
            ]
            if document.image.sha256_of != "file":
                raise InputError(
                    f"the annotations of {path} must name the image by its file's sha256 "
                    "(open it from the project, not as pasted pixels)"
                )
            sha = document.image.sha256
            count = len(regions)
            captioned = sum(1 for _, caption, _ in regions if caption.strip())
            kind = "image"
        else:
            raise TypeError(f"not a gar-app/1 document: {type(document).__name__}")
        with self._write() as db:
            row = self._file(db, path)
            file_id, file_kind, _, _, _, file_sha, status = row[:7]
            if file_kind != kind:
                what = "an image's" if kind == "image" else "a video's"
                raise InputError(f"{path} is a {file_kind} file; it cannot take {what} annotations")
            self._check_lease(db, file_id, path, owner)
            self._check_version(row, path, expected_version)
            if sha != file_sha:
                raise InputError(
                    f"these annotations were made on another file than {path} as it is now (sha256 differs): "
                    "nothing was saved; reopen the image"
                )
            db.execute(
                "INSERT OR REPLACE INTO documents (file_id, sha256, data) VALUES (?, ?, ?)",
                (file_id, sha, json.dumps(data, ensure_ascii=False)),
            )
            db.execute("DELETE FROM regions WHERE file_id = ?", (file_id,))
            db.executemany(
                "INSERT INTO regions (file_id, idx, caption, caption_state, data) VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        file_id,
                        r["index"],
                        caption,
                        caption_state(caption, source),
                        json.dumps(r, ensure_ascii=False),
                    )
                    for r, caption, source in regions
                ],
            )
            started = "in_progress" if status == "new" and count else status
            return self._bump(
                db, file_id, owner, regions=count, captioned=captioned, changed=0, status=started
            )

    def save_caption(
        self,
        path: str,
        index: int,
        caption: str,
        source: CaptionSource | None,
        owner: str,
        expected_version: int | None = None,
        expected_mask: dict[str, Any] | None = None,
        replace: str = "any",
    ) -> int:
        """Set one image region's caption and its provenance; returns the new version.

        ``expected_mask`` (COCO RLE): refuse when the region's mask is no longer that one (the
        caption was made for another mask). ``replace``: which caption may be replaced —
        ``any``, ``model`` (none or a model's that no person touched) or ``empty``.
        """
        if replace not in REPLACE:
            raise ValueError(f"replace must be one of {REPLACE}")
        with self._write() as db:
            row = self._file(db, path)
            file_id = row[0]
            self._check_lease(db, file_id, path, owner)
            self._check_version(row, path, expected_version)
            found = db.execute(
                "SELECT data, caption_state FROM regions WHERE file_id = ? AND idx = ?", (file_id, index)
            ).fetchone()
            if found is None:
                raise ConflictError(
                    f"{path} has no region {tag(index)} any more: nothing was saved",
                    path,
                    row[2],
                    row[3],
                    row[4],
                )
            region, state = json.loads(found[0]), found[1]
            mask_moved = expected_mask is not None and (
                region["mask"]["size"] != list(expected_mask["size"])
                or region["mask"]["counts"] != expected_mask["counts"]
            )
            allowed = {"any": True, "model": state in ("none", "model"), "empty": state == "none"}[replace]
            if mask_moved or not allowed:
                why = "its mask changed" if mask_moved else "a person wrote, edited or accepted its caption"
                raise ConflictError(
                    f"{tag(index)} of {path} changed ({why}): its caption was not replaced",
                    path,
                    row[2],
                    row[3],
                    row[4],
                )
            region["caption"] = caption
            region.pop("caption_source", None)
            if source is not None:
                region["caption_source"] = source.to_dict()
            db.execute(
                "UPDATE regions SET data = ?, caption = ?, caption_state = ? WHERE file_id = ? AND idx = ?",
                (
                    json.dumps(region, ensure_ascii=False),
                    caption,
                    caption_state(caption, source),
                    file_id,
                    index,
                ),
            )
            captioned = db.execute(
                "SELECT count(*) FROM regions WHERE file_id = ? AND caption_state != 'none'", (file_id,)
            ).fetchone()[0]
            return self._bump(db, file_id, owner, captioned=captioned)

    def set_status(self, path: str, status: str, owner: str) -> None:
        if status not in STATUSES:
            raise InputError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        with self._write() as db:
            file_id = self._file(db, path)[0]
            self._check_lease(db, file_id, path, owner)
            db.execute("UPDATE files SET status = ? WHERE id = ?", (status, file_id))

    def discard(self, path: str, owner: str) -> None:
        """Drop the file's annotations (e.g. made on an earlier version of the file)."""
        with self._write() as db:
            file_id = self._file(db, path)[0]
            self._check_lease(db, file_id, path, owner)
            db.execute("DELETE FROM documents WHERE file_id = ?", (file_id,))
            db.execute("DELETE FROM regions WHERE file_id = ?", (file_id,))
            self._bump(db, file_id, owner, regions=0, captioned=0, changed=0, status="new")

    def rebase(self, path: str, owner: str) -> int:
        """Keep the annotations of a changed file on its new bytes (the person says the masks
        still fit); only when the new file has the size they were made on."""
        with self._write() as db:
            row = self._file(db, path)
            file_id, kind, _, _, _, sha, _, changed, width, height = row
            self._check_lease(db, file_id, path, owner)
            found = db.execute("SELECT data FROM documents WHERE file_id = ?", (file_id,)).fetchone()
            if not changed or found is None or sha is None:
                raise InputError(f"{path} has no annotations made on another version of the file")
            data = json.loads(found[0])
            block = data["video" if kind == "video" else "image"]
            if (block["width"], block["height"]) != (width, height):
                raise InputError(
                    f"{path} is now {width}x{height} but was annotated at {block['width']}x{block['height']}: "
                    "the masks cannot be kept; discard them instead"
                )
            block["sha256"] = sha
            db.execute(
                "UPDATE documents SET sha256 = ?, data = ? WHERE file_id = ?",
                (sha, json.dumps(data, ensure_ascii=False), file_id),
            )
            return self._bump(db, file_id, owner, changed=0)

    # -- leases ----------------------------------------------------------------------------

    def acquire(self, path: str, owner: str, seconds: float = 60.0) -> None:
        """Hold ``path`` for ``owner`` for ``seconds`` (again to renew); ``LockedError`` when
        another owner holds it."""
        with self._write() as db:
            file_id = self._file(db, path)[0]
            self._check_lease(db, file_id, path, owner)
            db.execute(
                "INSERT OR REPLACE INTO leases (file_id, owner, expires) VALUES (?, ?, ?)",
                (file_id, owner, time.time() + seconds),
            )

    def release(self, path: str, owner: str) -> None:
        with self._write() as db:
            db.execute(
                "DELETE FROM leases WHERE owner = ? AND file_id = (SELECT id FROM files WHERE path = ?)",
                (owner, path),
            )

    # -- describe-all ----------------------------------------------------------------------

    def _describe_where(self, redo_model: bool) -> str:
        states = "('none', 'model')" if redo_model else "('none')"
        return f"r.caption_state IN {states} AND f.changed = 0 AND f.missing = 0 AND f.kind = 'image'"

    def regions_to_describe(
        self, after: tuple[int, int], limit: int, redo_model: bool = False
    ) -> list[RegionToDescribe]:
        with self._read() as db:
            rows = db.execute(
                "SELECT r.file_id, f.path, r.idx, r.data FROM regions r JOIN files f ON f.id = r.file_id "
                f"WHERE {self._describe_where(redo_model)} AND (r.file_id, r.idx) > (?, ?) "
                "ORDER BY r.file_id, r.idx LIMIT ?",
                (*after, limit),
            ).fetchall()
        return [
            RegionToDescribe(file_id, path, idx, json.loads(data)["mask"])
            for file_id, path, idx, data in rows
        ]

    def count_to_describe(self, redo_model: bool = False) -> int:
        with self._read() as db:
            return db.execute(
                "SELECT count(*) FROM regions r JOIN files f ON f.id = r.file_id "
                f"WHERE {self._describe_where(redo_model)}"
            ).fetchone()[0]

    def job(self, name: str) -> Job | None:
        with self._read() as db:
            row = db.execute(
                "SELECT name, owner, expires, state, updated_at FROM jobs WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else Job(row[0], row[1], row[2], json.loads(row[3]), row[4])

    def save_job(self, name: str, owner: str, state: dict[str, Any], seconds: float) -> None:
        """Record a job's state and hold it for ``owner`` for ``seconds`` (0 lets go of it);
        ``LockedError`` while another live owner runs it."""
        with self._write() as db:
            row = db.execute("SELECT owner, expires FROM jobs WHERE name = ?", (name,)).fetchone()
            if row and row[0] != owner and row[1] > time.time() and not owner_gone(row[0]):
                raise LockedError(f"{name} is already running ({row[0]}, until {_when(row[1])})", *row)
            db.execute(
                "INSERT OR REPLACE INTO jobs (name, owner, expires, state, updated_at) VALUES (?, ?, ?, ?, ?)",
                (name, owner, time.time() + seconds if seconds else 0.0, json.dumps(state), utc_now()),
            )
