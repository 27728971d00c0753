"""The API's pieces on their own: stop sequences over streamed pieces, held conversations."""

from __future__ import annotations

import itertools

from gar_app.serve.conversations import Conversations, conversation_key
from gar_app.serve.stops import StopScanner


def run(pieces, stops):
    scanner = StopScanner(stops)
    sent = []
    for piece in pieces:
        text, hit = scanner.push(piece)
        sent.append(text)
        if hit:
            return sent, True
    sent.append(scanner.flush())
    return sent, False


def splits(text):
    """``text`` cut into pieces at every combination of up to two cut points."""
    for a, b in itertools.combinations_with_replacement(range(len(text) + 1), 2):
        yield [text[:a], text[a:b], text[b:]]


def test_stop_sequences_cut_the_answer_wherever_the_pieces_break():
    text = "The cat sat. On the mat."
    for pieces in splits(text):
        sent, hit = run(pieces, [". On", "zzz"])
        assert hit and "".join(sent) == "The cat sat", pieces
        sent, hit = run(pieces, ["mat!", "cat sat.."])  # almost-matches are sent in the end
        assert not hit and "".join(sent) == text, pieces


def test_text_that_may_start_a_stop_is_held_back_not_taken_back():
    scanner = StopScanner(["</end>"])
    assert scanner.push("answer </e") == ("answer ", False)
    assert scanner.push("nd") == ("", False)
    assert scanner.push("> more") == ("", True)
    assert scanner.text == "answer "
    scanner = StopScanner(["</end>"])
    assert scanner.push("a </e") == ("a ", False)
    assert scanner.push("x") == ("</ex", False)


class FakeSession:
    def __init__(self):
        self.released = False

    def release_cache(self):
        self.released = True


def test_held_conversations_are_bounded_least_recently_used_first():
    store = Conversations(limit=2)
    first, second, third = FakeSession(), FakeSession(), FakeSession()
    store.keep("a", first)
    store.keep("b", second)
    assert store.take("a") is first  # taken out while it answers...
    store.keep("a2", first)  # ...and kept again under its new key: now the most recent
    store.keep("c", third)
    assert second.released and not first.released  # "b" was the least recently used
    assert store.take("b") is None and store.take("a2") is first
    assert store.stats() == {"held": 1, "limit": 2, "reused": 2, "started": 1, "dropped": 1}


def test_conversation_keys_change_with_every_input():
    base = conversation_key("img", {0: "mask:1", 1: "box:1,2,3,4"}, [("user", "q"), ("assistant", "a")])
    variants = [
        conversation_key("img2", {0: "mask:1", 1: "box:1,2,3,4"}, [("user", "q"), ("assistant", "a")]),
        conversation_key("img", {0: "mask:2", 1: "box:1,2,3,4"}, [("user", "q"), ("assistant", "a")]),
        conversation_key("img", {0: "mask:1"}, [("user", "q"), ("assistant", "a")]),
        conversation_key("img", {0: "mask:1", 1: "box:1,2,3,4"}, [("user", "q"), ("assistant", "a.")]),
        conversation_key("img", {0: "mask:1", 1: "box:1,2,3,4"}, [("user", "q")]),
        conversation_key("img", {1: "mask:1", 0: "box:1,2,3,4"}, [("user", "q"), ("assistant", "a")]),
    ]
    assert base not in variants and len(set(variants)) == len(variants)
    assert base == conversation_key(
        "img", {1: "box:1,2,3,4", 0: "mask:1"}, [("user", "q"), ("assistant", "a")]
    )
