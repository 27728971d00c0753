"""GAR (Grasp Any Region) on top of transformers' PerceptionLM, loaded without remote code.

The names below load their module (and torch / transformers with it) on first use, so
importing ``gar_app.model`` for ``DEFAULT_MODEL`` keeps ``gar-app --help`` fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

DEFAULT_MODEL = "HaochenWang/GAR-1B"

if TYPE_CHECKING:
    from gar_app.model.configuration import GarConfig
    from gar_app.model.loading import Gar, load_gar
    from gar_app.model.modeling import GarForConditionalGeneration
    from gar_app.model.processing import GarProcessor, multiple_choice_question
    from gar_app.model.session import ChatSession, Turn
    from gar_app.model.settings import GenerationSettings

_LAZY = {
    "GarConfig": "configuration",
    "GenerationSettings": "settings",
    "Gar": "loading",
    "load_gar": "loading",
    "GarForConditionalGeneration": "modeling",
    "GarProcessor": "processing",
    "multiple_choice_question": "processing",
    "ChatSession": "session",
    "Turn": "session",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"gar_app.model.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'gar_app.model' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL",
    "ChatSession",
    "Gar",
    "GarConfig",
    "GarForConditionalGeneration",
    "GarProcessor",
    "GenerationSettings",
    "Turn",
    "load_gar",
    "multiple_choice_question",
]
