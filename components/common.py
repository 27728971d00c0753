"""What every UI piece shares: error handling and the ZeroGPU wrapper."""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from components.page import as_outputs, refresh_regions
from gar_app.errors import GarAppError

log = logging.getLogger("gar_app.ui")


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


def _message(error: Exception) -> str:
    if isinstance(error, GarAppError):
        return str(error)
    log.exception("unexpected error in the UI")
    return (
        f"Something went wrong ({type(error).__name__}: {error}). Your regions and chat are unchanged; "
        "the details are in the server log."
    )


def ui_action(page, restore: bool = False):
    """Turn user mistakes and surprises into a readable notice, never a traceback or a failed event.

    On success the notice is cleared; on error it shows the message (and a toast), nothing
    else changes, and with ``restore`` the canvas and region views are redrawn from the
    workspace (e.g. after a broken upload replaced the picture in the browser). Handlers take
    the session state first and return or yield ``{component: update}`` dicts.
    """

    def failed(error: Exception, args) -> dict:
        message = _message(error)
        gr.Warning(message)
        updates = {page.notice: f"⚠️ {message}"}
        if restore and args:
            updates |= as_outputs(page, refresh_regions(page.workspace(args[0])))
        return updates

    def decorate(function):
        if inspect.isgeneratorfunction(function):

            @functools.wraps(function)
            def stream(*args, **kwargs):
                try:
                    for number, updates in enumerate(function(*args, **kwargs)):
                        yield updates if number else {page.notice: "", **updates}
                except Exception as error:
                    yield failed(error, args)

            return stream

        @functools.wraps(function)
        def run(*args, **kwargs):
            try:
                return {page.notice: "", **(function(*args, **kwargs) or {})}
            except Exception as error:
                return failed(error, args)

        return run

    return decorate
