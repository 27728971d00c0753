"""Errors as OpenAI's API reports them: a status code and ``{"error": {message, type, param, code}}``.

Clients written for OpenAI (its Python client included) read these fields and raise the
matching exception (``BadRequestError`` for 400, ``RateLimitError`` for 429, ...).
"""

from __future__ import annotations

from typing import Any

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class ApiError(Exception):
    """A request that cannot be served, with the status and message the client will see."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": _TYPES.get(self.status, "invalid_request_error"),
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param, code)


def too_large(message: str, param: str | None = None) -> ApiError:
    return ApiError(413, message, param, "request_too_large")
