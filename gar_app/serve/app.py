"""The HTTP routes: ``GET /v1/models``, ``POST /v1/chat/completions``, ``GET /v1/stats``.

``create_api`` builds them as one FastAPI app meant to be mounted at ``/v1`` (beside the web
UI by ``python app.py --api``); ``create_server`` is that mount alone (``gar-app serve``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Mount

from gar_app.serve.conversations import Conversations
from gar_app.serve.engine import Delta, Engine, Event, Finished, Job
from gar_app.serve.errors import ApiError, bad_request, too_large
from gar_app.serve.media import MediaReader
from gar_app.serve.request import ChatRequest, check_model, parse_chat_request
from gar_app.serve.responses import Reply, usage
from gar_app.workspace import Services

log = logging.getLogger("gar_app.serve")


@dataclass
class ApiOptions:
    """How the API is exposed; the command-line options of ``gar-app serve`` map onto these."""

    api_key: str | None = None  # when set, every request needs "Authorization: Bearer <key>"
    allow_dir: str | None = None  # the one folder whose files image_url / mask_url may name
    max_body_bytes: int = 50 * 2**20
    max_queue: int = 16  # requests waiting or running; one more gets 429
    max_conversations: int = 8  # held conversations (their KV caches) for follow-ups


def served_name(model_id: str) -> str:
    """The id /v1/models lists: a Hub id as is, a local checkpoint folder by its name."""
    path = Path(model_id)
    return path.name if path.is_dir() else model_id


class GarApi:
    """What the routes share: the model, the media reader, the queue and held conversations."""

    def __init__(self, services: Services, options: ApiOptions):
        self.services = services
        self.options = options
        self.media = MediaReader(options.allow_dir)
        self.engine = Engine(services, Conversations(options.max_conversations), options.max_queue)

    @property
    def names(self) -> list[str]:
        gar = self.services.gar
        return [] if gar is None else list(dict.fromkeys([served_name(gar.model_id), gar.model_id]))

    def require_model(self):
        if self.services.gar is None:
            why = self.services.gar_problem or "no model"
            raise ApiError(
                503,
                f"no GAR model is loaded ({why}); this server runs in annotation mode",
                None,
                "model_not_loaded",
            )
        return self.services.gar

    def close(self) -> None:
        self.engine.close()


async def read_json(request: Request, limit: int):
    """The JSON body, refused (413) as soon as it grows past ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(
            f"the request body is {int(declared) / 2**20:.1f} MB, more than the "
            f"{limit / 2**20:g} MB this server accepts"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(f"the request body is more than the {limit / 2**20:g} MB this server accepts")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise bad_request("the request body is not valid JSON") from None


async def _first_event(request: Request, events: asyncio.Queue, cancel: threading.Event) -> Event | None:
    """This request's first event (its turn came and the first token is out), or None when
    the client disconnected while it waited; then ``cancel`` tells the worker to skip it."""
    try:
        while True:
            try:
                return await asyncio.wait_for(events.get(), timeout=1.0)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    cancel.set()
                    return None
    except asyncio.CancelledError:
        cancel.set()
        raise


def _sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(
    first: Event, events: asyncio.Queue, job: Job, reply: Reply, chat: ChatRequest
) -> AsyncIterator[str]:
    try:
        yield _sse(reply.chunk({"role": "assistant", "content": ""}))
        event = first
        while True:
            if isinstance(event, ApiError):  # failed after the answer began: say so in the stream
                yield _sse(event.body())
                break
            if isinstance(event, Delta):
                if event.text or (chat.logprobs and event.tokens):
                    yield _sse(reply.chunk({"content": event.text}, event.tokens))
            elif isinstance(event, Finished):
                yield _sse(reply.chunk({}, finish_reason=event.finish_reason))
                if chat.include_usage:
                    yield _sse(reply.usage_chunk(usage(event.prompt_tokens, event.completion_tokens)))
                break
            event = await events.get()
        yield _sse("[DONE]")
    finally:
        job.cancel.set()  # the client went away (or all is sent): stop generating


async def _collect(first: Event, events: asyncio.Queue, reply: Reply) -> dict:
    tokens = []
    event = first
    while not isinstance(event, Finished):
        if isinstance(event, ApiError):
            raise event
        tokens += event.tokens
        event = await events.get()
    return reply.completion(
        event.content, tokens, event.finish_reason, usage(event.prompt_tokens, event.completion_tokens)
    )


def _error_response(error: ApiError) -> JSONResponse:
    headers = {"Retry-After": "1"} if error.status == 429 else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    message = f"{error.detail}: {request.method} {request.url.path}"
    if error.status_code == 404:
        message += " (the API has GET /v1/models, POST /v1/chat/completions and GET /v1/stats)"
    return _error_response(
        ApiError(error.status_code, message, None, "not_found" if error.status_code == 404 else None)
    )


def create_api(api: GarApi) -> FastAPI:
    """The routes, to be mounted at ``/v1``."""

    def check_key(request: Request) -> None:
        key = api.options.api_key
        if key:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
                what = "a wrong API key" if given else "no API key"
                raise ApiError(
                    401, f"{what}: send the header 'Authorization: Bearer <key>'", None, "invalid_api_key"
                )

    # The key check is a dependency of every route rather than a middleware: Starlette's
    # middleware wrapper hides a client's disconnect from the route, which must see it.
    app = FastAPI(
        title="GAR App API",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(check_key)],
    )
    app.state.gar_api = api
    app.add_exception_handler(ApiError, lambda _request, error: _error_response(error))
    app.add_exception_handler(HTTPException, _http_error)

    @app.get("/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "gar-app"} for name in api.names[:1]
            ],
        }

    @app.get("/stats")
    async def stats() -> dict:
        return {"model": (api.names or [None])[0], **api.engine.stats()}

    @app.post("/chat/completions")
    async def chat_completions(request: Request):
        gar = api.require_model()
        api.engine.check_room()  # refuse before reading and decoding the body when the queue is full
        chat = parse_chat_request(await read_json(request, api.options.max_body_bytes), gar.prompt_numbers)
        check_model(chat, set(api.names))
        resolved = await run_in_threadpool(chat.resolve, api.media)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def emit(event: Event) -> None:  # called by the worker thread
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the event loop is gone (server shutting down)
                cancel.set()

        job = Job(chat, resolved, emit, cancel)
        api.engine.submit(job)
        first = await _first_event(request, events, cancel)
        if first is None:  # the client left while waiting: its turn is skipped
            return JSONResponse({}, status_code=499)
        if isinstance(first, ApiError):
            raise first
        reply = Reply(api.names[0], chat.logprobs, chat.top_logprobs)
        if chat.stream:
            return StreamingResponse(
                _stream(first, events, job, reply, chat),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        return await _collect(first, events, reply)

    return app


def create_server(services: Services, options: ApiOptions | None = None) -> FastAPI:
    """The API alone: the routes at ``/v1`` (``gar-app serve``)."""
    api = GarApi(services, options or ApiOptions())
    server = FastAPI(
        title="GAR App API",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        routes=[Mount("/v1", create_api(api))],
    )
    server.state.gar_api = api
    server.add_exception_handler(HTTPException, _http_error)
    return server


def api_mount(services: Services, options: ApiOptions | None = None) -> Mount:
    """The routes as one ``/v1`` mount, to serve beside another app (the web UI)."""
    return Mount("/v1", create_api(GarApi(services, options or ApiOptions())))
