"""The one way user- or model-provided text reaches the page: as text, never as markup.

Captions, questions, answers, tags, file names and error messages pass through ``escape``
before they go into anything Gradio renders as HTML (gr.HTML values, Chatbot messages,
toasts). Every character that means something in HTML, in Markdown, in a
JavaScript template literal (``$``, ``{``, backtick, backslash) or to a LaTeX renderer
becomes a numeric character reference, which each of those shows as the character itself.
Templates of gr.HTML components never contain user text at all: their scripts set
``textContent`` from the component's value (see ``components/canvas.js``).
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"""[&<>"'`$\\{}\[\]()*_#+\-.!|~:=/^%@]""")


def escape(text: object) -> str:
    """``text`` as HTML / Markdown that displays exactly these characters; newlines become ``<br>``."""
    escaped = _SPECIAL.sub(lambda m: f"&#{ord(m.group(0))};", str(text))
    return escaped.replace("\r\n", "\n").replace("\n", "<br>")
