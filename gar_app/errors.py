"""Errors a user can act on.

Anything raised as a ``GarAppError`` is shown to people as its message alone (one line in
the CLI, a notice in the app), never as a traceback, so the message must say what went
wrong and what to do about it.
"""


class GarAppError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class InputError(GarAppError):
    """A file, image, mask, prompt or option the user gave cannot be used."""


class CheckpointError(GarAppError):
    """A model checkpoint cannot be found, fetched or loaded."""


class TooLargeError(InputError):
    """An input over one of the app's size limits (file bytes, pixels); the API answers 413."""


class MaskSizeError(InputError):
    """A mask whose width and height are not its image's."""
