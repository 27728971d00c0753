"""GAR behind an OpenAI-compatible HTTP API (``gar-app serve``, ``python app.py --api``).

- ``request`` reads a chat-completions body into a ``ChatRequest`` (no model needed),
- ``media`` turns image / mask URLs into pixels (data URLs, or files in one allowed folder),
- ``conversations`` holds recent conversations (LRU) so a follow-up reuses the image
  features and KV cache,
- ``engine`` runs requests one at a time in arrival order from a bounded queue,
- ``responses`` writes OpenAI's response and stream-chunk objects,
- ``app`` wires the routes (FastAPI), ``cli`` the ``gar-app serve`` command.

Nothing here imports FastAPI or torch at import time except ``app`` and ``engine``.
"""
