"""What every UI piece shares: the per-browser Workspace, the shared services, error handling."""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from gar_app.errors import GarAppError
from gar_app.workspace import Services, Workspace

log = logging.getLogger("gar_app.ui")
_services: Services | None = None


def set_services(services: Services) -> None:
    global _services
    _services = services


def services() -> Services:
    if _services is None:
        raise RuntimeError("app services are not set up; call components.common.set_services first")
    return _services


def workspace(state: Workspace | None) -> Workspace:
    """This browser session's workspace (made on first use: gr.State must not copy the model)."""
    return state if isinstance(state, Workspace) else Workspace(services())


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
