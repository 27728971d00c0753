"""GAR (Grasp Any Region) on top of transformers' PerceptionLM, loaded without remote code."""

from gar_app.model.configuration import GarConfig
from gar_app.model.generation import GenerationSettings
from gar_app.model.loading import DEFAULT_MODEL, Gar, load_gar
from gar_app.model.modeling import GarForConditionalGeneration
from gar_app.model.processing import GarProcessor, multiple_choice_question
from gar_app.model.session import ChatSession, Turn

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
