"""What every UI piece shares: error handling and the ZeroGPU wrapper."""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

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


def _user_error(error: Exception) -> gr.Error:
    if isinstance(error, GarAppError):
        return gr.Error(str(error), title="Cannot do that", print_exception=False)
    log.exception("unexpected error in the UI")
    return gr.Error(
        f"Something went wrong ({type(error).__name__}: {error}). Your regions and chat are unchanged; "
        "the details are in the server log.",
        title="Unexpected problem",
        print_exception=False,
    )


def ui_action(function):
    """Show user mistakes and surprises as a readable notice, never as a traceback.

    The event fails, so its outputs (and the workspace shown) stay as they were.
    """
    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def stream(*args, **kwargs):
            try:
                yield from function(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as error:
                raise _user_error(error) from None

        return stream

    @functools.wraps(function)
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:
            raise _user_error(error) from None

    return run
