"""GAR's training format: LLaVA-style records (image, ``mask_rle`` list, human/gpt turns),
so annotations made here can train a model."""

from __future__ import annotations

from typing import Any

from gar_app.formats.document import AnnotationDocument
from gar_app.rle import mask_to_rle
from gar_app.tags import find_tags, renumber

DESCRIBE = "Describe {tag} in detail."


IMAGE_MARKER = "<image>"


def to_training_records(doc: AnnotationDocument) -> list[dict[str, Any]]:
    """The document as LLaVA-style GAR training data: zero or one record.

    Regions with empty masks are dropped and the rest renumbered ``<Prompt0>..`` in index
    order, so ``mask_rle[k]`` is ``<Promptk>``. Each user turn answered by the next assistant
    turn becomes a human/gpt pair; captions not already given as an answer become
    ``"Describe <Promptk> in detail."`` pairs. Pairs mentioning a dropped region, or asked
    about a mask the region no longer has (a turn with ``masks``), are left out. The first human value starts with ``"<image>\\n"``; tags stay as text, the trainer
    expands them into GAR's prompt.
    """
    kept = [r for r in doc.regions if r.area > 0]
    numbers = {r.index: new for new, r in enumerate(kept)}
    pairs: list[tuple[str, str]] = []
    question: str | None = None
    for turn in doc.dialogue:
        if turn.role == "user":
            question = None if turn.masks else turn.text  # about masks the regions no longer have
        elif question is not None and turn.text.strip():
            pairs.append((question, turn.text))
            question = None
    answers = {answer.strip() for _, answer in pairs}
    pairs += [
        (DESCRIBE.format(tag=r.tag), r.caption)
        for r in kept
        if r.caption.strip() and r.caption.strip() not in answers
    ]
    pairs = [p for p in pairs if all(k in numbers for k in find_tags(p[0]) + find_tags(p[1]))]
    if not pairs:
        return []

    conversations = []
    for i, (question, answer) in enumerate(pairs):
        prefix = f"{IMAGE_MARKER}\n" if i == 0 else ""
        conversations += [
            {"from": "human", "value": prefix + renumber(question, numbers)},
            {"from": "gpt", "value": renumber(answer, numbers)},
        ]
    ident = doc.image.name if doc.video is None else f"{doc.video.name}#{doc.video.frame_index}"
    return [
        {
            "id": ident,
            "image": doc.image.name,
            "mask_rle": [mask_to_rle(r.mask) for r in kept],
            "conversations": conversations,
        }
    ]
