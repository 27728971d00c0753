"""How ``describe`` and ``ask`` give their answer: streamed to stdout, or one JSON document."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping

import numpy as np

from gar_app.errors import InputError


def emit(pieces: Iterable[str], as_json: bool) -> str:
    """Stream pieces to stdout as they come (or collect them quietly for --json)."""
    text = []
    for piece in pieces:
        text.append(piece)
        if not as_json:
            sys.stdout.write(piece)
            sys.stdout.flush()
    if not as_json:
        sys.stdout.write("\n")
    return "".join(text)


def regions_json(masks: Mapping[int, np.ndarray]) -> list[dict]:
    from gar_app.images import mask_box
    from gar_app.tags import tag

    return [
        {"tag": tag(k), "box": list(mask_box(m)) if m.any() else None, "area": int(m.sum())}
        for k, m in sorted(masks.items())
    ]


def print_json(args: argparse.Namespace, text: str, masks: Mapping[int, np.ndarray], **extra) -> None:
    document = {
        "text": text,
        "model": str(args.model),
        "image": str(args.image),
        "regions": regions_json(masks),
    }
    document.update(extra)
    print(json.dumps(document, ensure_ascii=False))


def settings_from(args: argparse.Namespace):
    """Decoding settings from the options; --logprobs only makes sense in the JSON document."""
    from gar_app.model import GenerationSettings
    from gar_app.model.settings import MAX_LOGPROBS

    if args.logprobs is not None:
        if not args.json:
            raise InputError("--logprobs needs --json (the log-probabilities are part of the JSON document)")
        if not 1 <= args.logprobs <= MAX_LOGPROBS:
            raise InputError(f"--logprobs must be between 1 and {MAX_LOGPROBS}, not {args.logprobs}")
    return GenerationSettings(max_new_tokens=args.max_new_tokens, logprobs=args.logprobs or 0)


def tokens_json(session) -> dict:
    """``{"tokens": [...]}`` of the last answer when log-probabilities were asked for."""
    answer = session.turns[-1]
    if not (answer.settings or {}).get("logprobs"):
        return {}
    return {"tokens": [token.to_dict() for token in answer.tokens]}
