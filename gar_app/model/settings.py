"""The default checkpoint and how answers are decoded, as plain data: importing it needs no
torch (the CLI, the app's forms and the API check settings before any model library is loaded)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gar_app.errors import InputError

DEFAULT_MODEL = "HaochenWang/GAR-1B"
MAX_LOGPROBS = 20


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are decoded. Greedy by default, as the GAR authors evaluated."""

    max_new_tokens: int = 1024
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 0
    seed: int | None = None
    logprobs: int = 0  # record the top-k log-probabilities of every generated token (0: off)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise InputError("max new tokens must be at least 1")
        if self.do_sample and self.temperature <= 0:
            raise InputError("temperature must be above 0 when sampling")
        if not 0 < self.top_p <= 1:
            raise InputError("top-p must be in (0, 1]")
        if self.top_k < 0:
            raise InputError("top-k must be 0 (off) or positive")
        if not 0 <= self.logprobs <= MAX_LOGPROBS:
            raise InputError(f"logprobs must be between 1 and {MAX_LOGPROBS} (or 0 for none)")

    def to_dict(self) -> dict:
        return asdict(self)
