"""Region tags ``<PromptN>``: the one place that writes, finds and reads them.

A tag is ``<Prompt`` + the region index in decimal without leading zeros + ``>``; these are
exactly the tokens GAR's tokenizer adds, so nothing else names a region to the model.

Look-alikes (``<Prompt01>``, ``<prompt0>``, ``<Prompt-1>``, ``<Prompt 1>``) get one treatment
everywhere: they are **not** tags. In text that goes to the model (a question, an
instruction) they are refused with a message that names the tag meant (:func:`check_text`),
because the model would read them as plain characters and the user clearly meant a region.
In text that is only shown or stored (answers, captions, exports) they stay plain text: not
coloured, not listed among a turn's tags.
"""

from __future__ import annotations

import re

from gar_app.errors import InputError

TAG = re.compile(r"<Prompt(0|[1-9][0-9]*)>")
# Anything a person may have meant as a tag: any case, spaces, signs, leading zeros.
_LOOKALIKE = re.compile(r"<\s*prompt\s*([-+]?\s*[0-9]+)\s*>", re.IGNORECASE)


def tag(index: int) -> str:
    """``3`` -> ``"<Prompt3>"``."""
    if isinstance(index, bool) or int(index) != index or index < 0:
        raise InputError(f"a region index is a whole number >= 0, not {index!r}")
    return f"<Prompt{int(index)}>"


def parse_tag(text: str | int) -> int:
    """``"<Prompt3>"`` (surrounding spaces allowed) or ``3`` -> 3; anything else is an error."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise InputError(f"a region index is >= 0, not {text}")
        return text
    if hasattr(text, "__index__") and not isinstance(text, (str, bool)):  # numpy integers
        return parse_tag(int(text))
    match = TAG.fullmatch(str(text).strip())
    if match is None:
        raise InputError(f"{str(text)!r} is not a region tag like <Prompt0>{_suggestion(str(text))}")
    return int(match.group(1))


def find_tags(text: str) -> list[int]:
    """Indices of the tags a text mentions, each once, in index order (never text or set order)."""
    return sorted({int(number) for number in TAG.findall(text)})


def tags_in(text: str) -> list[str]:
    """The tags a text mentions, each once, in index order."""
    return [tag(index) for index in find_tags(text)]


def lookalikes(text: str) -> list[str]:
    """Tag-like pieces of ``text`` that are not tags (``<Prompt01>``, ``<prompt0>``...)."""
    return [m.group(0) for m in _LOOKALIKE.finditer(text) if not TAG.fullmatch(m.group(0))]


def check_text(text: str) -> list[int]:
    """The regions a model-bound text mentions; look-alike tags are refused, naming the fix."""
    wrong = lookalikes(text)
    if wrong:
        fixes = "; ".join(f"{piece!r}{_suggestion(piece)}" for piece in dict.fromkeys(wrong))
        raise InputError(f"not a region tag: {fixes}. Tags are written exactly <Prompt0>, <Prompt1>, ...")
    return find_tags(text)


def split_tags(text: str) -> list[tuple[str, int | None]]:
    """``text`` cut into pieces, each plain text (None) or a tag (its index), for colouring."""
    pieces: list[tuple[str, int | None]] = []
    last = 0
    for match in TAG.finditer(text):
        if match.start() > last:
            pieces.append((text[last : match.start()], None))
        pieces.append((match.group(0), int(match.group(1))))
        last = match.end()
    if last < len(text):
        pieces.append((text[last:], None))
    return pieces


def renumber(text: str, mapping: dict[int, int]) -> str:
    """``text`` with each tag ``<Promptk>`` whose k is in ``mapping`` rewritten to ``<Prompt{mapping[k]}>``."""
    return TAG.sub(
        lambda m: tag(mapping[int(m.group(1))]) if int(m.group(1)) in mapping else m.group(0), text
    )


def _suggestion(piece: str) -> str:
    match = _LOOKALIKE.fullmatch(piece.strip())
    if match is None:
        return ""
    number = int(re.sub(r"\s", "", match.group(1)))
    return f" (did you mean <Prompt{number}>?)" if number >= 0 else ""
