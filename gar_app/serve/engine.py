"""Runs chat requests on the one model: a bounded FIFO queue and one worker thread.

Requests are answered one at a time, in the order they arrived; a streaming client waits
(nothing sent yet) until its turn comes, then receives its answer as it is generated. The
queue holds at most ``max_queue`` requests (waiting plus running); one more is refused
with 429 at once rather than left waiting without bound. One generation at a time keeps
each conversation's KV cache to itself and makes every answer the same as it would be
alone; the model's lock also serialises it with the web UI when both share a process.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from gar_app.errors import GarAppError
from gar_app.model.tokens import TokenLogprob
from gar_app.serve.conversations import Conversations, conversation_key
from gar_app.serve.errors import ApiError, bad_request
from gar_app.serve.request import ChatRequest, Resolved
from gar_app.serve.stops import StopScanner
from gar_app.workspace import Services

log = logging.getLogger("gar_app.serve")


@dataclass
class Delta:
    """Newly generated text and the tokens generated since the last delta."""

    text: str
    tokens: list[TokenLogprob]


@dataclass
class Finished:
    content: str
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int  # the whole conversation the answer was conditioned on, placeholders included
    completion_tokens: int


Event = Delta | Finished | ApiError


@dataclass
class Job:
    request: ChatRequest
    resolved: Resolved
    emit: Callable[[Event], None]  # called from the worker thread
    cancel: threading.Event = field(default_factory=threading.Event)


class Engine:
    """The queue and the worker that answers jobs with ``services.gar``."""

    def __init__(self, services: Services, conversations: Conversations, max_queue: int = 16):
        self.services = services
        self.conversations = conversations
        self.max_queue = max(1, max_queue)
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self.pending = 0  # waiting or running
        self.requests = 0
        self.vision_encodings = 0
        self._worker = threading.Thread(target=self._work, name="gar-api-worker", daemon=True)
        self._worker.start()

    def check_room(self) -> None:
        """429 when the queue is full (``submit`` checks again: others may have come in since)."""
        if self.pending >= self.max_queue:
            raise ApiError(
                429,
                f"the server is busy: {self.pending} requests are queued (at most "
                f"{self.max_queue}); retry shortly",
                None,
                "queue_full",
            )

    def submit(self, job: Job) -> None:
        with self._lock:
            self.check_room()
            self.pending += 1
            self.requests += 1
        self._jobs.put(job)

    def close(self) -> None:
        self._jobs.put(None)
        self._worker.join(timeout=60)

    def stats(self) -> dict:
        with self._lock:
            return {
                "requests": self.requests,
                "queued": self.pending,
                "max_queue": self.max_queue,
                "vision_encodings": self.vision_encodings,
                "conversations": self.conversations.stats(),
            }

    # -- the worker -------------------------------------------------------------------

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                if not job.cancel.is_set():
                    self._run(job)
            except ApiError as error:
                job.emit(error)
            except GarAppError as error:
                job.emit(bad_request(str(error)))
            except Exception as error:  # a bug or e.g. out of memory: answer, and keep serving
                log.exception("request failed")
                job.emit(ApiError(500, f"the server failed to answer ({type(error).__name__}: {error})"))
            finally:
                with self._lock:
                    self.pending -= 1

    def _session(self, request: ChatRequest, resolved: Resolved):
        """The held conversation this request continues, or a new one with its history replayed."""
        last = len(request.messages) - 1
        new = {r.index for r in request.regions if r.message == last}
        earlier = {k: d for k, d in resolved.digests.items() if k not in new}
        turns = [(m.role, m.text) for m in request.messages[:-1]]
        session = self.conversations.take(conversation_key(resolved.image_digest, earlier, turns))
        if session is not None:
            for index in sorted(new):
                session.masks[index] = resolved.mask(index, self.services.segment)
            log.info(
                "continuing a held conversation (%d tokens cached, image not re-encoded)", session.token_count
            )
            return session
        masks = {k: resolved.mask(k, self.services.segment) for k in sorted(resolved.masks)}
        session = self.services.gar.chat(resolved.image, masks)
        session.replay(request.history)
        return session

    def _run(self, job: Job) -> None:
        request, resolved = job.request, job.resolved
        session = self._session(request, resolved)
        encodings = session.vision_encodings
        # Log-probabilities are always recorded (top 1 at least): one per generated token, so
        # they also count the answer's tokens for ``usage``.
        settings = replace(request.settings, logprobs=max(1, request.top_logprobs))
        scanner = StopScanner(request.stop)
        stopped = False
        sent = 0
        stream = session.stream(request.question, settings, stop=job.cancel)
        try:
            for piece in stream:
                text, stopped = scanner.push(piece)
                tokens = session.turns[-1].tokens[sent:]
                sent += len(tokens)
                if text or tokens:
                    job.emit(Delta(text, list(tokens)))
                if stopped or job.cancel.is_set():
                    break
        finally:
            stream.close()
            with self._lock:
                self.vision_encodings += session.vision_encodings - encodings
        if job.cancel.is_set():
            return
        answer = session.turns[-1]
        tail = "" if stopped else scanner.flush()
        rest = answer.tokens[sent:]
        if tail or rest:
            job.emit(Delta(tail, list(rest)))
        completion = len(answer.tokens)
        limit = answer.settings["max_new_tokens"]
        job.emit(
            Finished(
                scanner.text,
                "length" if not stopped and completion >= limit else "stop",
                session.token_count - completion,
                completion,
            )
        )
        if not stopped and answer.text == scanner.text:  # the client holds exactly what the model holds
            turns = [(m.role, m.text) for m in request.messages] + [("assistant", scanner.text)]
            self.conversations.keep(conversation_key(resolved.image_digest, resolved.digests, turns), session)
