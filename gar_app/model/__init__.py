"""GAR (Grasp Any Region) on top of transformers' PerceptionLM, loaded without remote code.

The names below load their module (and torch / transformers with it) on first use, so
importing ``gar_app.model`` for ``DEFAULT_MODEL`` or ``GenerationSettings`` (torch-free, in
``settings``) keeps ``gar-app --help`` fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gar_app.model.settings import DEFAULT_MODEL, GenerationSettings

if TYPE_CHECKING:
    from gar_app.model.chat import ChatSession, ChatTurn
    from gar_app.model.configuration import GarConfig
    from gar_app.model.loading import Gar, load_gar
    from gar_app.model.modeling import GarForConditionalGeneration
    from gar_app.model.processing import GarProcessor, multiple_choice_question

_LAZY = {
    "GarConfig": "configuration",
    "Gar": "loading",
    "load_gar": "loading",
    "GarForConditionalGeneration": "modeling",
    "GarProcessor": "processing",
    "multiple_choice_question": "processing",
    "ChatSession": "chat",
    "ChatTurn": "chat",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"gar_app.model.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'gar_app.model' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL",
    "ChatSession",
    "ChatTurn",
    "Gar",
    "GarConfig",
    "GarForConditionalGeneration",
    "GarProcessor",
    "GenerationSettings",
    "load_gar",
    "multiple_choice_question",
]
