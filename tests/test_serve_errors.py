"""Every error status of the API, as the ``openai`` client sees it: status, code and a
readable one-line message."""

from __future__ import annotations

import struct
import threading
import zlib

import httpx
import numpy as np
import openai
import pytest
from api_helpers import (
    RunningApi,
    box_mask,
    data_url,
    image_part,
    noise_image,
    png_bytes,
    rle_part,
    text_part,
    wait_until,
)

from gar_app.segment import GrabCutSegmenter
from gar_app.workspace import Services

IMAGE = noise_image(2)
SHAPE = IMAGE.shape[:2]
MASK = box_mask(SHAPE, 4, 30, 6, 40)


@pytest.fixture(scope="module")
def served(tiny_gar):
    server = RunningApi(Services(segmenter=GrabCutSegmenter(), gar=tiny_gar), max_body_bytes=2**20)
    yield server
    server.close()


def ask(client, content, **options):
    options = {"max_tokens": 2, **options}
    return client.chat.completions.create(
        model=None, messages=[{"role": "user", "content": content}], **options
    )


def refused(error_type, call) -> dict:
    """The error body of a refused request (checks the exception type, i.e. the status)."""
    with pytest.raises(error_type) as caught:
        call()
    error = caught.value.body
    assert error["message"] and "\n" not in error["message"] and "Traceback" not in error["message"]
    return error


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` but holds no pixels: the header decides."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


GOOD = [image_part(IMAGE), rle_part(0, MASK)]


@pytest.mark.parametrize(
    ("content", "code", "words"),
    [
        (GOOD + [text_part("What is <Prompt3>?")], "unknown_tag", "<Prompt3>"),
        (GOOD + [text_part("What is <Prompt01>?")], "invalid_tag", "did you mean <Prompt1>"),
        (
            [image_part(IMAGE), rle_part(5, MASK), text_part("What is <Prompt5>?")],
            "too_many_regions",
            "5 regions",
        ),
        (
            [image_part(data_url(b"not an image at all")), rle_part(0, MASK), text_part("<Prompt0>?")],
            "invalid_image",
            "not an image",
        ),
        (
            [image_part("data:image/png;base64,@@@"), rle_part(0, MASK), text_part("<Prompt0>?")],
            None,
            "base64",
        ),
        (
            [
                image_part(IMAGE),
                {"type": "region", "tag": "<Prompt0>", "mask": {"size": list(SHAPE), "counts": "!!"}},
                text_part("<Prompt0>?"),
            ],
            "invalid_mask",
            "RLE",
        ),
        (
            [
                image_part(IMAGE),
                {"type": "region", "tag": "<Prompt0>", "mask_url": data_url(b"garbage")},
                text_part("<Prompt0>?"),
            ],
            "invalid_mask",
            "not an image",
        ),
        (
            [image_part(IMAGE), rle_part(0, np.ones((10, 10), bool)), text_part("<Prompt0>?")],
            "mask_size",
            "mask is 10x10 but the image is 64x48",
        ),
        (
            [
                image_part(IMAGE),
                {
                    "type": "region",
                    "tag": "<Prompt0>",
                    "mask_url": data_url(png_bytes(np.zeros((8, 8), np.uint8))),
                },
                text_part("<Prompt0>?"),
            ],
            "mask_size",
            "64x48",
        ),
        (
            [image_part(IMAGE), rle_part(0, np.zeros(SHAPE, bool)), text_part("<Prompt0>?")],
            "empty_mask",
            "empty",
        ),
        (
            [
                image_part(IMAGE),
                {"type": "region", "tag": "<Prompt0>", "box": [5, 5, 5, 30]},
                text_part("<Prompt0>?"),
            ],
            "invalid_box",
            "zero area",
        ),
        ([rle_part(0, MASK), text_part("<Prompt0>?")], "no_image", "needs an image"),
        (GOOD + [image_part(IMAGE), text_part("<Prompt0>?")], "one_image", "one image"),
        (GOOD + [rle_part(0, MASK), text_part("<Prompt0>?")], "duplicate_tag", "declared twice"),
        (GOOD, None, "no text"),
    ],
    ids=[
        "unknown-tag",
        "look-alike-tag",
        "too-many-regions",
        "undecodable-image",
        "bad-base64",
        "undecodable-rle",
        "undecodable-mask-png",
        "rle-wrong-size",
        "png-mask-wrong-size",
        "empty-mask",
        "empty-box",
        "no-image",
        "two-images",
        "tag-twice",
        "no-question",
    ],
)
def test_bad_requests_are_400_with_a_readable_message(served, content, code, words):
    error = refused(openai.BadRequestError, lambda: ask(served.client(), content))
    assert words in error["message"]
    assert error["type"] == "invalid_request_error"
    if code:
        assert error["code"] == code


@pytest.mark.parametrize(
    ("messages", "words"),
    [
        (
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": GOOD + [text_part("<Prompt0>?")]},
            ],
            "no system prompt",
        ),
        (
            [
                {"role": "user", "content": GOOD + [text_part("<Prompt0>?")]},
                {"role": "assistant", "content": "A cat."},
            ],
            "last message",
        ),
        (
            [
                {"role": "user", "content": GOOD + [text_part("<Prompt0>?")]},
                {"role": "user", "content": "Why?"},
            ],
            "alternate",
        ),
        (
            [
                {"role": "user", "content": GOOD + [text_part("<Prompt0>?")]},
                {"role": "assistant", "content": [image_part(IMAGE)]},
                {"role": "user", "content": "Why?"},
            ],
            "text only",
        ),
    ],
    ids=["system", "ends-with-assistant", "no-alternation", "assistant-image"],
)
def test_dialogues_gar_cannot_hold_are_400(served, messages, words):
    client = served.client()
    error = refused(
        openai.BadRequestError,
        lambda: client.chat.completions.create(model=None, messages=messages, max_tokens=2),
    )
    assert words in error["message"]


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"n": 2}, "n"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"presence_penalty": 1}, "presence_penalty"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ],
)
def test_options_out_of_range_or_unsupported_are_400(served, options, param):
    error = refused(
        openai.BadRequestError, lambda: ask(served.client(), GOOD + [text_part("<Prompt0>?")], **options)
    )
    assert error["param"] == param


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"messages": "hi"}', b"[" * 100000])
def test_malformed_bodies_are_400(served, body):
    response = httpx.post(
        f"{served.url}/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"]


def test_unknown_model_is_404(served):
    error = refused(
        openai.NotFoundError,
        lambda: served.client().chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": GOOD + [text_part("<Prompt0>?")]}],
            max_tokens=2,
        ),
    )
    assert error["code"] == "model_not_found" and "gpt-4o" in error["message"]


def test_unknown_route_is_404_in_openai_shape(served):
    response = httpx.get(f"{served.url}/engines")
    assert response.status_code == 404 and "/v1/models" in response.json()["error"]["message"]


def test_body_over_the_limit_is_413(served):
    big = image_part(data_url(b"\0" * (2**20)))  # more than the server's 1 MB
    error = refused(
        openai.APIStatusError, lambda: ask(served.client(), [big, rle_part(0, MASK), text_part("<Prompt0>?")])
    )
    assert error["code"] == "request_too_large" and "1 MB" in error["message"]


@pytest.mark.parametrize("size", [(11_000, 11_000), (20_000, 20_000)])
def test_image_over_the_pixel_limit_is_413_before_decoding(served, size):
    content = [image_part(data_url(png_header(*size))), text_part("Describe it.")]
    with pytest.raises(openai.APIStatusError) as caught:
        ask(served.client(), content)
    assert caught.value.status_code == 413
    assert "megapixels" in caught.value.body["message"]


def test_key_is_required_when_set(tiny_gar):
    server = RunningApi(Services(segmenter=GrabCutSegmenter(), gar=tiny_gar), api_key="s3cret")
    try:
        content = GOOD + [text_part("<Prompt0>?")]
        error = refused(openai.AuthenticationError, lambda: ask(server.client(api_key="wrong"), content))
        assert error["code"] == "invalid_api_key" and "Authorization: Bearer" in error["message"]
        assert httpx.get(f"{server.url}/models").status_code == 401  # no key at all
        assert ask(server.client(api_key="s3cret"), content).choices[0].message.content is not None
    finally:
        server.close()


def test_annotation_mode_is_503(tiny_gar):
    server = RunningApi(Services(segmenter=GrabCutSegmenter(), gar_problem="started with --no-model"))
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            ask(server.client(), GOOD + [text_part("<Prompt0>?")])
        assert caught.value.status_code == 503
        assert "annotation mode" in caught.value.body["message"]
        assert caught.value.body["code"] == "model_not_loaded"
        assert server.client().models.list().data == []
    finally:
        server.close()


def test_full_queue_is_429_and_the_queued_request_still_finishes(tiny_gar):
    server = RunningApi(Services(segmenter=GrabCutSegmenter(), gar=tiny_gar), max_queue=1)
    content = GOOD + [text_part("<Prompt0>?")]
    answers = []
    try:
        with tiny_gar.lock:  # the model is busy: the first request waits in the queue
            waiting = threading.Thread(target=lambda: answers.append(ask(server.client(), content)))
            waiting.start()
            wait_until(lambda: server.stats()["queued"] >= 1, "the first request is queued")
            # (a timeout, so that a server accepting this one fails the test instead of waiting on the lock)
            error = refused(openai.RateLimitError, lambda: ask(server.client(timeout=60), content))
            assert error["code"] == "queue_full" and "retry" in error["message"]
        waiting.join(timeout=120)
        assert answers and answers[0].choices[0].message.content is not None
    finally:
        server.close()


def test_a_client_that_leaves_while_queued_loses_its_turn(tiny_gar):
    """Its request is skipped, not answered to nobody: only the first request uses the model."""
    server = RunningApi(Services(segmenter=GrabCutSegmenter(), gar=tiny_gar))
    body = {"messages": [{"role": "user", "content": GOOD + [text_part("<Prompt0>?")]}], "max_tokens": 2}
    answers = []
    try:
        with tiny_gar.lock:  # the model is busy with the first request
            first = threading.Thread(
                target=lambda: answers.append(
                    httpx.post(f"{server.url}/chat/completions", json=body, timeout=120)
                )
            )
            first.start()
            wait_until(lambda: server.stats()["queued"] >= 1, "the first request is queued")
            with pytest.raises(httpx.ReadTimeout):  # the second client gives up and disconnects
                httpx.post(f"{server.url}/chat/completions", json=body, timeout=httpx.Timeout(60, read=0.5))
            queue = server.api.engine._jobs.queue
            wait_until(
                lambda: any(job.cancel.is_set() for job in list(queue)),
                "the server noticed the client left",
                timeout=30,
            )
        first.join(timeout=120)
        wait_until(lambda: not server.stats()["queued"], "the queue is empty")
        stats = server.stats()
        assert answers[0].status_code == 200
        assert stats["requests"] == 2 and stats["vision_encodings"] == 1
    finally:
        server.close()
