"""The OpenAI-compatible API with the ``openai`` client against a running server on the tiny GAR.

Expected answers come from the library itself (``Gar.chat`` / ``ChatSession``) with the same
inputs, compared token by token with their log-probabilities: the tiny random model writes
similar text for similar inputs, but its log-probabilities differ for any change of image,
mask or history, so they show which inputs an answer was really computed from.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from api_helpers import (
    RectangleSegmenter,
    RunningApi,
    box_mask,
    image_part,
    noise_image,
    rle_part,
    text_part,
    wait_until,
)

from gar_app.model import GenerationSettings
from gar_app.workspace import Services

IMAGE = noise_image(1)
SHAPE = IMAGE.shape[:2]
MASKS = [box_mask(SHAPE, 4, 30, 6, 40), box_mask(SHAPE, 20, 46, 30, 62)]
QUESTION = "What is <Prompt0> doing next to <Prompt1>?"
FOLLOW_UP = "And what colour is <Prompt1>?"
TOKENS = 8
MODEL = "tiny-gar0"  # the checkpoint folder's name, which /v1/models lists


@pytest.fixture(scope="module")
def served(tiny_gar):
    server = RunningApi(Services(segmenter=RectangleSegmenter(), gar=tiny_gar))
    assert server.api.names[0] == MODEL
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(served):
    return served.client()


def first_message(masks=MASKS, question=QUESTION, image=IMAGE) -> dict:
    parts = [image_part(image)] + [rle_part(k, m) for k, m in enumerate(masks)] + [text_part(question)]
    return {"role": "user", "content": parts}


def create(client, messages, **options):
    options = {"max_tokens": TOKENS, "logprobs": True, **options}
    return client.chat.completions.create(model=MODEL, messages=messages, **options)


def pairs(logprobs) -> list[tuple[str, float]]:
    return [(t.token, t.logprob) for t in logprobs]


def library_turns(gar, masks, questions, history=(), image=IMAGE):
    """Ask ``questions`` one after the other in one library session (after replaying ``history``);
    each answer with its (token, logprob) pairs and the conversation's length before it."""
    session = gar.chat(image, masks)
    session.replay(list(history))
    answers = []
    for question in questions:
        text = session.ask(question, GenerationSettings(max_new_tokens=TOKENS, logprobs=1))
        tokens = session.turns[-1].tokens
        answers.append((text, [(t.text, t.logprob) for t in tokens], session.token_count - len(tokens)))
    return answers


def test_models_lists_the_checkpoint(client, tiny_gar_dir):
    assert [model.id for model in client.models.list()] == [tiny_gar_dir.name] == [MODEL]


def test_answer_is_the_librarys_and_streamed_text_equals_non_streamed(client, tiny_gar):
    [(text, tokens, prompt_tokens)] = library_turns(tiny_gar, MASKS, [QUESTION])
    whole = create(client, [first_message()], top_logprobs=2)
    choice = whole.choices[0]
    assert choice.message.content == text
    assert pairs(choice.logprobs.content) == tokens
    assert all(
        len(t.top_logprobs) == 2 and t.top_logprobs[0].token == t.token for t in choice.logprobs.content
    )
    assert whole.usage.prompt_tokens == prompt_tokens  # the whole conversation, image placeholders included
    assert whole.usage.completion_tokens == TOKENS and choice.finish_reason == "length"

    chunks = list(
        create(client, [first_message()], top_logprobs=2, stream=True, stream_options={"include_usage": True})
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1  # really streamed, piece by piece
    assert "".join(pieces) == choice.message.content
    streamed = [
        t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content
    ]
    assert pairs(streamed) == pairs(choice.logprobs.content)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


def test_stream_is_server_sent_events_ending_in_done(served):
    body = {"messages": [first_message()], "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{served.url}/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(isinstance(c["choices"][0]["delta"].get("content", ""), str) for c in chunks)
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}


def test_follow_up_continues_the_held_conversation(client, served, tiny_gar):
    (text1, _, _), (text2, tokens2, prompt2) = library_turns(tiny_gar, MASKS, [QUESTION, FOLLOW_UP])
    first = create(client, [first_message()])
    assert first.choices[0].message.content == text1
    before = served.stats()
    history = [
        first_message(),
        {"role": "assistant", "content": text1},
        {"role": "user", "content": FOLLOW_UP},
    ]
    follow = create(client, history)
    after = served.stats()
    assert after["conversations"]["reused"] == before["conversations"]["reused"] + 1
    assert after["vision_encodings"] == before["vision_encodings"]  # the image was not encoded again
    assert follow.choices[0].message.content == text2
    assert pairs(follow.choices[0].logprobs.content) == tokens2  # exactly the library's second turn
    assert follow.usage.prompt_tokens == prompt2


def test_edited_history_is_replayed_not_reused(client, served, tiny_gar):
    """The assistant turn a client sends is what the model reads, even if the server never wrote it."""
    edited = "A green frog-shaped slipper."
    [(text, tokens, _)] = library_turns(tiny_gar, MASKS, [FOLLOW_UP], history=[(QUESTION, edited)])
    create(client, [first_message()])
    before = served.stats()
    answer = create(
        client,
        [first_message(), {"role": "assistant", "content": edited}, {"role": "user", "content": FOLLOW_UP}],
    )
    after = served.stats()
    assert after["conversations"]["reused"] == before["conversations"]["reused"]
    assert after["vision_encodings"] == before["vision_encodings"] + 1
    assert (answer.choices[0].message.content, pairs(answer.choices[0].logprobs.content)) == (text, tokens)


def test_other_masks_never_continue_a_held_conversation(client, served, tiny_gar):
    """Same image, same turns, another mask for <Prompt1>: a different conversation."""
    other = [MASKS[0], box_mask(SHAPE, 0, 20, 40, 64)]
    (text1, _, _), _ = library_turns(tiny_gar, MASKS, [QUESTION, FOLLOW_UP])
    [(text2, tokens2, _)] = library_turns(tiny_gar, other, [FOLLOW_UP], history=[(QUESTION, text1)])
    create(client, [first_message()])  # held with MASKS
    before = served.stats()
    answer = create(
        client,
        [
            first_message(other),
            {"role": "assistant", "content": text1},
            {"role": "user", "content": FOLLOW_UP},
        ],
    )
    assert served.stats()["conversations"]["reused"] == before["conversations"]["reused"]
    assert (answer.choices[0].message.content, pairs(answer.choices[0].logprobs.content)) == (text2, tokens2)


def test_region_added_in_a_follow_up(client, served, tiny_gar):
    third = box_mask(SHAPE, 30, 48, 0, 20)
    question = "Is <Prompt2> beside <Prompt0>?"
    session = tiny_gar.chat(IMAGE, MASKS)
    text1 = session.ask(QUESTION, GenerationSettings(max_new_tokens=TOKENS))
    session.masks[2] = third
    text2 = session.ask(question, GenerationSettings(max_new_tokens=TOKENS, logprobs=1))
    create(client, [first_message()])
    before = served.stats()
    follow = {"role": "user", "content": [rle_part(2, third), text_part(question)]}
    answer = create(client, [first_message(), {"role": "assistant", "content": text1}, follow])
    assert served.stats()["conversations"]["reused"] == before["conversations"]["reused"] + 1
    assert answer.choices[0].message.content == text2
    assert pairs(answer.choices[0].logprobs.content) == [
        (t.text, t.logprob) for t in session.turns[-1].tokens
    ]


def test_box_and_png_regions_are_the_masks_they_stand_for(client, tiny_gar):
    from api_helpers import data_url, png_bytes

    [(text, tokens, _)] = library_turns(tiny_gar, MASKS, [QUESTION])
    box = {
        "type": "region",
        "tag": "<Prompt0>",
        "box": [6, 4, 40, 30],
    }  # the server's segmenter: the box itself
    png = {
        "type": "region",
        "tag": "<Prompt1>",
        "mask_url": data_url(png_bytes(MASKS[1].astype(np.uint8) * 255)),
    }
    answer = create(client, [{"role": "user", "content": [image_part(IMAGE), box, png, text_part(QUESTION)]}])
    assert (answer.choices[0].message.content, pairs(answer.choices[0].logprobs.content)) == (text, tokens)


def test_sampling_options_are_honoured(client):
    def sample(seed, **options):
        return create(client, [first_message()], temperature=1.0, seed=seed, **options).choices[0]

    first, again, other = sample(5), sample(5), sample(6)
    assert pairs(first.logprobs.content) == pairs(again.logprobs.content)  # a seed repeats a sample
    assert pairs(first.logprobs.content) != pairs(other.logprobs.content)
    greedy = create(client, [first_message()]).choices[0]
    assert pairs(first.logprobs.content) != pairs(greedy.logprobs.content)  # temperature > 0 samples
    narrow = sample(5, top_p=1e-6).logprobs.content  # top_p that small keeps only the best token: greedy
    assert pairs(narrow) == pairs(greedy.logprobs.content)
    short = create(client, [first_message()], max_tokens=3).choices[0]
    assert len(short.logprobs.content) == 3 and short.finish_reason == "length"


def test_stop_sequences_end_the_answer_streamed_or_not(client):
    full = create(client, [first_message()], max_tokens=16).choices[0].message.content
    stop = full[5:8]
    assert stop and full.find(stop) == 5
    whole = create(client, [first_message()], max_tokens=16, stop=[stop, "never appears"]).choices[0]
    assert whole.message.content == full[:5] and whole.finish_reason == "stop"
    chunks = list(create(client, [first_message()], max_tokens=16, stop=stop, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == full[:5]
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_logprobs_alone_list_no_alternatives(client):
    plain = client.chat.completions.create(model=MODEL, messages=[first_message()], max_tokens=3)
    assert plain.choices[0].logprobs is None
    listed = create(client, [first_message()], max_tokens=3).choices[0].logprobs.content
    assert len(listed) == 3 and all(t.top_logprobs == [] for t in listed)
    assert all(t.bytes == list(t.token.encode()) for t in listed)


def test_eight_concurrent_clients_each_get_their_own_answer(served, tiny_gar):
    """Same image and question, different regions per client: each answer is the one a
    sequential run with that client's regions gives (streaming and not, all at once)."""
    regions = [
        [box_mask(SHAPE, 2 + 3 * k, 24 + 2 * k, 4 + 2 * k, 30 + 3 * k), box_mask(SHAPE, 26, 46, 34 + k, 62)]
        for k in range(8)
    ]
    expected = [library_turns(tiny_gar, masks, [QUESTION])[0][:2] for masks in regions]
    assert len({json.dumps(e) for e in expected}) == 8  # the clients' inputs really give different answers

    def ask(k: int):
        client = served.client()
        if k % 2:
            answer = create(client, [first_message(regions[k])]).choices[0]
            return answer.message.content, pairs(answer.logprobs.content)
        chunks = list(create(client, [first_message(regions[k])], stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        return text, pairs(
            [t for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.content]
        )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert answers == expected


def test_a_stream_the_client_drops_stops_generating(tiny_gar):
    """The answer stops when its reader leaves, and a half-written answer is not held (a
    finished one is)."""
    server = RunningApi(Services(segmenter=RectangleSegmenter(), gar=tiny_gar))
    try:
        body = {"messages": [first_message()], "max_tokens": 4000, "stream": True}
        with httpx.stream("POST", f"{server.url}/chat/completions", json=body, timeout=120) as response:
            for line in response.iter_lines():
                if '"content": "' in line and '"content": ""' not in line:
                    break  # the answer has begun; leaving the block hangs up
        wait_until(lambda: not server.stats()["queued"], "the worker is free")
        assert server.stats()["conversations"]["held"] == 0
        create(server.client(), [first_message()], max_tokens=3)
        assert server.stats()["conversations"]["held"] == 1
    finally:
        server.close()
