"""Helpers for the project tests: folders of small images, annotations to save, child processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from api_helpers import noise_image
from conftest import REPO
from PIL import Image

from gar_app.formats.caption_source import CaptionSource
from gar_app.formats.document import AnnotationDocument, ExportedRegion
from gar_app.project import Project
from gar_app.regions import region_colour

OWNER = "test on nowhere pid 1"


def make_images(root: Path, names: list[str], height: int = 24, width: int = 32) -> Path:
    """Noise images (each different) at ``root/name``; the format follows the name."""
    for seed, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(noise_image(seed, height, width)).save(path)
    return root


def region(
    index: int, mask: np.ndarray, caption: str = "", source: CaptionSource | None = None
) -> ExportedRegion:
    return ExportedRegion(index, region_colour(index), "mask", mask, caption, caption_source=source)


def annotate(project: Project, path: str, regions: list[ExportedRegion], owner: str = OWNER) -> int:
    """Save ``regions`` as the image's annotations (opening it as the app does); the new version."""
    opened = project.open_image(path)
    document = AnnotationDocument(opened.info, regions)
    return project.store.save_document(path, document, opened.entry.version, owner)


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}


def without_root_powers() -> list[str]:
    """A command prefix that makes root obey file permissions (as any user would), so a
    read-only file is read-only to the child; empty when not root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        import pytest

        pytest.skip("running as root without setpriv: cannot make files read-only to a child")
    caps = "-dac_override,-dac_read_search,-fowner"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]


def python(code: str, *args: str, prefix: list[str] | None = None, **kwargs) -> subprocess.Popen:
    """A child Python process running ``code`` with this tree's ``gar_app``."""
    return subprocess.Popen(
        [*(prefix or []), sys.executable, "-c", code, *args],
        cwd=REPO,
        env=child_env(),
        text=True,
        **kwargs,
    )


def gar_app(*argv: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    """``gar-app ARGV`` in a child process."""
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "gar_app.cli", *argv],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
