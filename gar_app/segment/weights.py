"""Where SAM weights come from: a path, ``$GAR_APP_SAM_CHECKPOINT``, the cache, or a download.

A path the user names (argument or environment variable) must exist; a wrong one is an
error rather than a silent fallback. The cache is only looked at, never filled, unless a
download is explicitly allowed.
"""

from __future__ import annotations

import os
from pathlib import Path

from gar_app.errors import CheckpointError

ENV_VAR = "GAR_APP_SAM_CHECKPOINT"
SAM_URLS = {
    "vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    "vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
}


def sam_cache_dir() -> Path:
    """``~/.cache/gar-app/sam`` (or under ``$XDG_CACHE_HOME`` when that is set)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gar-app" / "sam"


def _file_name(model_type: str) -> str:
    return SAM_URLS[model_type].rsplit("/", 1)[-1]


def find_checkpoint(path: str | os.PathLike | None = None, model_type: str | None = None) -> Path | None:
    """The checkpoint to use, or None when there is none; best size first in the cache."""
    named = path if path is not None else os.environ.get(ENV_VAR) or None
    if named is not None:
        found = Path(named).expanduser()
        if not found.is_file():
            source = "" if path is not None else f" (from ${ENV_VAR})"
            raise CheckpointError(f"SAM checkpoint not found: {found}{source}")
        return found
    if model_type is not None and model_type not in SAM_URLS:
        raise CheckpointError(f"unknown SAM model type {model_type!r}; use one of {', '.join(SAM_URLS)}")
    for name in [model_type] if model_type else ["vit_h", "vit_l", "vit_b"]:
        cached = sam_cache_dir() / _file_name(name)
        if cached.is_file():
            return cached
    return None


def download_checkpoint(model_type: str, progress: bool = True) -> Path:
    """Fetch the official checkpoint into the cache (with a progress bar) and return its path."""
    if model_type not in SAM_URLS:
        raise CheckpointError(f"unknown SAM model type {model_type!r}; use one of {', '.join(SAM_URLS)}")
    from torch.hub import download_url_to_file

    target = sam_cache_dir() / _file_name(model_type)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        download_url_to_file(SAM_URLS[model_type], str(target), progress=progress)  # temp file, then rename
    except (OSError, ValueError) as error:  # URLError is an OSError
        raise CheckpointError(f"could not download SAM {model_type} weights: {error}") from None
    return target
