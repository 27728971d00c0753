"""How UI pieces turn a user action into page updates: one wrapper, used by every event.

Each UI module owns its widgets (a small dataclass made by its ``build``) and has named,
module-level handlers ``handler(session, *inputs)`` that change the session and return a
note for the person (or None), or yield one per streamed step. ``Wiring.event`` makes the
Gradio event from such a handler: it finds this tab's ``Session``, runs the handler, and
returns the session, every ``View`` (each UI piece says which of its components show the
session and how), and the notice. A mistake a person can make becomes a readable notice
and a toast, never a traceback or a failed event, and the views are redrawn from the
session, so the page never shows work that is not there (or hides work that is).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import gradio as gr
from gradio.components import Component

from components.session import Session, session_of
from components.text import escape
from gar_app.errors import GarAppError
from gar_app.workspace import Services

log = logging.getLogger("gar_app.ui")


@dataclass
class View:
    """Components that show the session, and how to show it (one value per component)."""

    components: Sequence[Component]
    render: Callable[[Session], list]


def payload_path(value) -> str | None:
    """The uploaded file's path from a raw (not preprocessed) Image / Video / File payload.

    Uploads skip Gradio's own decoding (``preprocess=False``) so a broken file reaches our
    loaders, which explain what is wrong instead of failing inside the framework.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("video"), dict):
            return value["video"].get("path")
        return value.get("path")
    return getattr(value, "path", None) or getattr(value, "name", None)


def on_gpu(function):
    """On Hugging Face ZeroGPU Spaces, model calls must run inside ``spaces.GPU``."""
    try:
        import spaces
    except ImportError:
        return function
    return spaces.GPU(duration=120)(function)


def message(error: Exception) -> str:
    if isinstance(error, GarAppError):
        return str(error)
    log.exception("unexpected error in the UI")
    return (
        f"Something went wrong ({type(error).__name__}). Your regions and chat are unchanged; "
        "the details are in the server log."
    )


def notice_html(text: str | None, warning: bool = False) -> str:
    """The notice line: the text escaped (file names and captions end up in messages)."""
    if not text:
        return ""
    kind = "gar-notice gar-warning" if warning else "gar-notice"
    return f'<div class="{kind}">{"⚠️ " if warning else ""}{escape(text)}</div>'


class Wiring:
    """Makes Gradio events from handlers; knows the state, the notice and every view.

    A handler returns (or yields) None, a note (str), or a dict: ``"note"`` and, by the
    names given in ``extra``, updates for other components of its event.
    """

    def __init__(self, services: Services, state: gr.State, notice: gr.HTML, views: Sequence[View] = ()):
        self.services = services
        self.state = state
        self.notice = notice
        self.views = list(views)
        self.after: list[Callable[[Session], None]] = []  # run after every handler (e.g. marks to tracks)

    def outputs(
        self, views: Sequence[View] | None = None, extra: Mapping[str, Component] | None = None
    ) -> list:
        views = self.views if views is None else views
        return [
            self.state,
            *(c for view in views for c in view.components),
            *(extra or {}).values(),
            self.notice,
        ]

    def render(
        self, session: Session, result=None, error: Exception | None = None, views=None, extra=None
    ) -> dict:
        updates = {self.state: session}
        for view in self.views if views is None else views:
            updates.update(zip(view.components, view.render(session), strict=True))
        note = result
        if isinstance(result, dict):
            note = result.get("note")
            updates.update({extra[name]: value for name, value in result.items() if name != "note"})
        if error is not None:
            text = message(error)
            gr.Warning(escape(text))
            updates[self.notice] = notice_html(text, warning=True)
        else:
            updates[self.notice] = notice_html(note)
        return updates

    def settle(self, session: Session) -> None:
        """What every event does after its handler: the ``after`` hooks, in order."""
        for hook in self.after:
            hook(session)

    def event(
        self,
        handler: Callable,
        inputs: Sequence = (),
        views: Sequence[View] | None = None,
        extra: Mapping[str, Component] | None = None,
        gpu: bool = False,
        **options,
    ) -> dict:
        """Keyword arguments for a listener: ``button.click(**wiring.event(handler, [box]), api_name=...)``.

        ``views``: the views this event changes (default: all); ``extra``: other components
        the handler updates through a returned dict, by name; ``gpu``: it runs the model (ZeroGPU).
        """
        if inspect.isgeneratorfunction(handler):

            @functools.wraps(handler)
            def run(state, *args):
                session = session_of(state, self.services)
                try:
                    for result in handler(session, *args):
                        self.settle(session)
                        yield self.render(session, result, views=views, extra=extra)
                except Exception as error:  # noqa: BLE001 - shown to the person, logged when unexpected
                    yield self.render(session, error=error, views=views)

        else:

            @functools.wraps(handler)
            def run(state, *args):
                session = session_of(state, self.services)
                with session.lock:
                    try:
                        result = handler(session, *args)
                        self.settle(session)
                        return self.render(session, result, views=views, extra=extra)
                    except Exception as error:  # noqa: BLE001 - shown to the person, logged when unexpected
                        return self.render(session, error=error, views=views)

        options.setdefault("show_progress", "hidden")  # the canvas and the streamed text show progress
        return {
            "fn": on_gpu(run) if gpu else run,
            "inputs": [self.state, *inputs],
            "outputs": self.outputs(views, extra),
            **options,
        }
