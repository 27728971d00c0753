"""Opening a 10,000-image project: time and memory against a 100-image one.

    python bench/bench_project.py [--images 10000] [--small 100] [--annotated 0.1]

Writes tiny PNGs (100 to a folder) into a temporary folder and measures each step in a fresh
interpreter: the first open (creating the store, scanning every file); then, once a share of
the images is annotated (two regions each, opened and saved as the app does), a re-open
(nothing changed: one stat per file), reading every
header (``Project.probe``), and the gallery's queries (counts, a page of 100, next
unannotated) plus one pass over the whole gallery a page at a time. Peak memory is the
process's, with the import-only interpreter's beside it: what the project itself adds must
not grow with the number of images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PER_FOLDER = 100

STEP = """
import json, sys, time
started = time.perf_counter()
from gar_app.project import Filters, open_project
imported = time.perf_counter()
step, folder = sys.argv[1], sys.argv[2]
out = {"import_s": imported - started}
if step != "import":
    begin = time.perf_counter()
    project = open_project(folder)
    out["open_s"] = time.perf_counter() - begin
    out["scan"] = {"added": project.last_scan.added, "files": project.last_scan.files}
    if step == "probe":
        begin = time.perf_counter()
        out["probed"] = project.probe()
        out["probe_s"] = time.perf_counter() - begin
    if step == "gallery":
        store = project.store
        begin = time.perf_counter()
        counts = store.counts()
        out["counts_ms"] = (time.perf_counter() - begin) * 1000
        begin = time.perf_counter()
        page = store.page(limit=100)
        out["page_ms"] = (time.perf_counter() - begin) * 1000
        begin = time.perf_counter()
        todo = store.neighbour(page[50].path, Filters(annotated=False, status=("new", "in_progress")))
        out["next_unannotated_ms"] = (time.perf_counter() - begin) * 1000
        begin, seen, after = time.perf_counter(), 0, None
        while rows := store.page(after=after, limit=100):
            seen, after = seen + len(rows), rows[-1].path
        out["all_pages_s"] = time.perf_counter() - begin
        begin = time.perf_counter()
        documents = sum(1 for _ in store.documents())
        out["all_documents_s"] = time.perf_counter() - begin
        out["seen"], out["documents"], out["images"] = seen, documents, counts.images
    project.close()
print(json.dumps(out))
"""


def make_images(folder: Path, count: int) -> None:
    """``count`` 16x12 noise PNGs, 100 to a folder."""
    rng = np.random.default_rng(0)
    for k in range(count):
        path = folder / f"part{k // PER_FOLDER:03d}" / f"img{k:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(path)


def annotate(folder: Path, count: int, annotated: float) -> int:
    """Two regions on every ``1 / annotated``-th image, saved as the app saves them."""
    from gar_app.formats.document import AnnotationDocument, ExportedRegion
    from gar_app.project import open_project, owner_id

    owner = owner_id("bench")
    mask = np.zeros((12, 16), bool)
    mask[2:9, 3:12] = True
    step = max(1, round(1 / annotated)) if annotated else count + 1
    with open_project(folder) as project:
        for k in range(0, count, step):
            path = f"part{k // PER_FOLDER:03d}/img{k:05d}.png"
            opened = project.open_image(path)
            regions = [
                ExportedRegion(0, "#ff0000", "mask", mask, "a caption"),
                ExportedRegion(1, "#00ff00", "mask", ~mask),
            ]
            project.store.save_document(path, AnnotationDocument(opened.info, regions), 0, owner)
    return len(range(0, count, step))


def run(step: str, folder: Path) -> tuple[dict, float]:
    """The step's figures and the process's peak RSS in MB."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", STEP, step, str(folder)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    out = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"{step} failed")
    return json.loads(out), usage.ru_maxrss / 1024


def measure(count: int, annotated: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "project"
        make_images(folder, count)
        first, first_rss = run("open", folder)  # no store yet
        begin = time.perf_counter()
        saved = annotate(folder, count, annotated)
        saves = (time.perf_counter() - begin) / max(saved, 1)
        again, again_rss = run("open", folder)
        probe, _ = run("probe", folder)
        gallery, gallery_rss = run("gallery", folder)
        size = sum(f.stat().st_size for f in (folder / ".gar-project").glob("project.sqlite*"))
    return {
        "open_and_save_ms": saves * 1000,
        "first_open_s": first["open_s"],
        "reopen_s": again["open_s"],
        "probe_s": probe["probe_s"],
        "gallery": gallery,
        "rss": {"first open": first_rss, "re-open": again_rss, "gallery pass": gallery_rss},
        "store_mb": size / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--annotated", type=float, default=0.1, help="share of images with two regions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base, base_rss = run("import", Path(tmp))
    results = {n: measure(n, args.annotated) for n in (args.small, args.images)}
    small, large = results[args.small], results[args.images]
    print(f"{sys.executable}; {args.annotated:.0%} of the images annotated (two regions each)")
    print(f"import gar_app.project alone: {base['import_s'] * 1000:.0f} ms, peak RSS {base_rss:.0f} MB")
    print(f"{'':34s} {args.small:>10,d} {args.images:>10,d} {'ratio':>7s}")

    def row(name: str, a: float, b: float, unit: str, scale: float = 1.0) -> None:
        print(f"{name:34s} {a * scale:8.1f}{unit:>2s} {b * scale:8.1f}{unit:>2s} {b / a if a else 0:6.1f}x")

    row("first open (create store, scan)", small["first_open_s"], large["first_open_s"], "ms", 1000)
    row("re-open (nothing changed)", small["reopen_s"], large["reopen_s"], "ms", 1000)
    row("read every header (probe)", small["probe_s"], large["probe_s"], "ms", 1000)
    for key, name in (
        ("counts_ms", "counts"),
        ("page_ms", "a page of 100"),
        ("next_unannotated_ms", "next unannotated"),
    ):
        row(name, small["gallery"][key], large["gallery"][key], "ms")
    row(
        "every page of the gallery",
        small["gallery"]["all_pages_s"],
        large["gallery"]["all_pages_s"],
        "ms",
        1000,
    )
    row(
        "every saved document",
        small["gallery"]["all_documents_s"],
        large["gallery"]["all_documents_s"],
        "ms",
        1000,
    )
    for step in ("first open", "re-open", "gallery pass"):
        a, b = small["rss"][step], large["rss"][step]
        print(
            f"{'peak RSS, ' + step:34s} {a:8.0f}MB {b:8.0f}MB   +{b - a:.0f} MB ({b - base_rss:.0f} MB over the import)"
        )
    row("store size", small["store_mb"], large["store_mb"], "MB")
    row("open an image + save 2 regions", small["open_and_save_ms"], large["open_and_save_ms"], "ms")


if __name__ == "__main__":
    main()
