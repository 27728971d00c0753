"""The LLM judge against a fake OpenAI-compatible server on loopback: verdicts, retries, errors."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import eval_cli
from PIL import Image
from pycocotools import mask as mask_utils

from gar_app.errors import GarAppError, InputError
from gar_app.eval.judge import JudgeClient, JudgeError, endpoint, judge_records, parse_verdict


class FakeJudge:
    """Answers like a chat-completions server; the prediction text picks the behaviour.

    ``SLOW`` sleeps past the client's timeout, ``FAIL500`` always returns 500, ``FLAKY`` returns
    503 on its first request, ``UNSURE`` answers neither True nor False; otherwise the verdict
    is whether the prediction equals the reference (Simple) or names the predicate (Detailed).
    """

    def __init__(self, status: int | None = None):
        self.requests: list[dict] = []
        self.status = status
        self.seen: set[str] = set()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                judge.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                code, reply = judge.answer(body)
                data = json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": reply}}]}
                ).encode()
                if code != 200:
                    data = b'{"error": "boom"}'
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def answer(self, body: dict) -> tuple[int, str]:
        question = body["messages"][-1]["content"][-1]["text"]
        if self.status:
            return self.status, ""
        if "SLOW" in question:
            time.sleep(0.6)
        if "FAIL500" in question:
            return 500, ""
        if "FLAKY" in question and question not in self.seen:
            self.seen.add(question)
            return 503, ""
        if "UNSURE" in question:
            return 200, "It depends."
        if "Reference answer:" in question:
            reference = question.split("Reference answer: ")[1].split("\n")[0]
            prediction = question.split("Model prediction: ")[1].split("\n")[0]
            return 200, "True" if prediction.strip(". ") == reference.strip(". ") else "**False**."
        return 200, "Answer: True" if "riding" in question else "false"


@pytest.fixture
def fake_judge():
    judges: list[FakeJudge] = []

    def start(status: int | None = None) -> FakeJudge:
        judge = FakeJudge(status)
        threading.Thread(target=judge.server.serve_forever, args=(0.05,), daemon=True).start()
        judges.append(judge)
        return judge

    yield start
    for judge in judges:
        judge.server.shutdown()
        judge.server.server_close()


def rle(mask: np.ndarray) -> dict:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": encoded["size"], "counts": encoded["counts"].decode()}


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "bench"
    (folder / "images").mkdir(parents=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
        folder / "images" / "a.png"
    )
    return folder


def masks() -> list[dict]:
    left, right = np.zeros((48, 64), bool), np.zeros((48, 64), bool)
    left[10:30, 5:20] = True
    right[20:40, 30:60] = True
    return [rle(left), rle(right)]


def simple(name: str, prediction: str, answer: str = "<Prompt1> is on <Prompt0>.") -> dict:
    return {
        "id": name,
        "image": "images/a.png",
        "mask_rles": masks(),
        "question": "Relation of <Prompt1> and <Prompt0>?",
        "answer": answer,
        "model_output": prediction,
    }


def detailed(name: str, prediction: str) -> dict:
    return {
        "id": name,
        "image": "images/a.png",
        "mask_rles": masks(),
        "subject_name": "person",
        "object_name": "horse",
        "predicate_name": "riding",
        "model_output": prediction,
    }


def client(judge: FakeJudge, **options) -> JudgeClient:
    settings = {"timeout": 0.3, "attempts": 3, "backoff": 0.01, **options}
    return JudgeClient(judge.url, "fake-judge", **settings)


def test_endpoint_accepts_base_urls_with_or_without_v1():
    assert endpoint("http://localhost:8000") == "http://localhost:8000/v1/chat/completions"
    assert endpoint("http://localhost:8000/v1/") == "http://localhost:8000/v1/chat/completions"
    assert endpoint("https://x.ai/api/openai") == "https://x.ai/api/openai/chat/completions"
    assert endpoint("http://h/v1/chat/completions") == "http://h/v1/chat/completions"


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("True", True),
        ("false", False),
        ("**False**.", False),
        ("Answer: True", True),
        (" TRUE\n", True),
        ("<think>true or false? it is false</think>True", True),
        ("False. It is not true that...", False),
    ],
)
def test_verdicts_parse_robustly(reply, verdict):
    assert parse_verdict(reply) is verdict


@pytest.mark.parametrize("reply", ["", "Maybe.", "It could be true, or false."])
def test_unclear_replies_are_errors_not_verdicts(reply):
    with pytest.raises(JudgeError):
        parse_verdict(reply)


def test_simple_verdicts_retries_and_errors(fake_judge, images):
    judge = fake_judge()
    records = [
        ("s1", simple("s1", "<Prompt1> is on <Prompt0>")),
        ("s2", simple("s2", "<Prompt0> is on <Prompt1>.")),
        ("s3", simple("s3", "SLOW")),
        ("s4", simple("s4", "FAIL500")),
        ("s5", simple("s5", "FLAKY", answer="FLAKY")),
        ("s6", simple("s6", "UNSURE")),
    ]
    verdicts, errors = judge_records(records, "simple", client(judge), images_dir=images, progress=False)
    assert verdicts == [("s1", True), ("s2", False), ("s5", True)]
    assert [name for name, _ in errors] == ["s3", "s4", "s6"]
    reasons = dict(errors)
    assert "timed out" in reasons["s3"] and "3 attempts" in reasons["s3"]
    assert "HTTP 500" in reasons["s4"] and "3 attempts" in reasons["s4"]
    assert "neither True nor False" in reasons["s6"]
    paths = [r["path"] for r in judge.requests]
    assert set(paths) == {"/v1/chat/completions"}
    assert sum("FAIL500" in json.dumps(r["body"]) for r in judge.requests) == 3


def test_request_shows_image_crop_and_mask_per_region_at_temperature_0(fake_judge, images):
    judge = fake_judge()
    judge_records(
        [("d1", detailed("d1", "A person riding a horse."))],
        "detailed",
        client(judge, api_key="sk-test"),
        images_dir=images,
        progress=False,
    )
    (request,) = judge.requests
    body = request["body"]
    assert body["model"] == "fake-judge" and body["temperature"] == 0 and request["auth"] == "Bearer sk-test"
    system, user = body["messages"]
    assert system["role"] == "system" and "True or False" in system["content"]
    parts = user["content"]
    pictures = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(pictures) == 1 + 2 * 2 and all(url.startswith("data:image/jpeg;base64,") for url in pictures)
    labels = [p["text"] for p in parts if p["type"] == "text"]
    assert labels[:5] == [
        "The image:",
        "<Prompt0> crop:",
        "<Prompt0> mask view:",
        "<Prompt1> crop:",
        "<Prompt1> mask view:",
    ]
    assert "person" in labels[-1] and "horse" in labels[-1] and "riding" in labels[-1]


def test_connection_refused_is_retried_then_reported(images):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = JudgeClient(f"http://127.0.0.1:{port}", "m", timeout=0.3, attempts=2, backoff=0.01)
    verdicts, errors = judge_records(
        [("d1", detailed("d1", "x"))], "detailed", closed, images_dir=images, progress=False
    )
    assert verdicts == [] and "connection failed" in errors[0][1] and "2 attempts" in errors[0][1]


def test_backoff_doubles_between_attempts(fake_judge, images):
    waits: list[float] = []
    judge = fake_judge()
    slept = client(judge, attempts=4, backoff=0.5, max_backoff=1.5, sleep=waits.append)
    with pytest.raises(JudgeError):
        slept.complete([{"role": "user", "content": [{"type": "text", "text": "FAIL500"}]}])
    assert waits == [0.5, 1.0, 1.5]


def test_a_rejected_key_stops_scoring_at_once(fake_judge, images):
    judge = fake_judge(status=401)
    with pytest.raises(InputError, match="HTTP 401"):
        judge_records(
            [("d1", detailed("d1", "x"))], "detailed", client(judge), images_dir=images, progress=False
        )
    assert len(judge.requests) == 1


def test_a_judge_that_is_down_stops_after_errors_in_a_row(fake_judge, images):
    judge = fake_judge(status=500)
    records = [(f"d{k}", detailed(f"d{k}", "x")) for k in range(4)]
    with pytest.raises(GarAppError, match="3 items in a row"):
        judge_records(
            records,
            "detailed",
            client(judge, attempts=1),
            images_dir=images,
            progress=False,
            max_errors_in_a_row=3,
        )


def test_cli_scores_judged_items_and_reports_errors_and_unsupported(
    fake_judge, images, tmp_path, capsys, monkeypatch
):
    judge = fake_judge()
    preds = tmp_path / "preds.json"
    unsupported = {k: v for k, v in simple("s9", "").items() if k != "model_output"}
    records = [
        simple("s1", "<Prompt1> is on <Prompt0>."),
        simple("s2", "no"),
        simple("s3", "FAIL500"),
        dict(unsupported, unsupported="needs 9 regions, model supports 5"),
        simple("s1", "<Prompt1> is on <Prompt0>."),  # repeated: judged and counted once
    ]
    preds.write_text(json.dumps(records))
    argv = ["eval", "score", "simple", str(preds), "--judge-url", judge.url, "--judge-model", "fake-judge"]
    argv += ["--judge-attempts", "2", "--judge-backoff", "0", "--judge-timeout", "2", "--no-progress"]
    argv += ["--images", str(images)]
    assert eval_cli([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["overall"] == {"correct": 1, "total": 2, "accuracy": 50.0}
    assert [e["item"] for e in result["judge_errors"]] == ["s3"]
    assert result["verdicts"] == {"s1": True, "s2": False}
    assert result["unsupported"] == [{"item": "s9", "reason": "needs 9 regions, model supports 5"}]
    assert result["duplicates"] == ["s1"] and len(judge.requests) == 4  # s1, s2, s3 twice (one retry)
    assert eval_cli(argv) == 0
    text = capsys.readouterr().out
    assert "judge errors: 1" in text and "s3: HTTP 500" in text and "unsupported: 1" in text
    monkeypatch.delenv("MY_JUDGE_KEY", raising=False)
    with pytest.raises(InputError, match="MY_JUDGE_KEY"):
        eval_cli([*argv, "--judge-key-env", "MY_JUDGE_KEY"])
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-from-env")
    eval_cli([*argv, "--judge-key-env", "MY_JUDGE_KEY"])
    assert judge.requests[-1]["auth"] == "Bearer sk-from-env"


def test_cli_finds_images_recorded_by_eval_run(fake_judge, images, tmp_path, capsys):
    judge = fake_judge()
    preds = tmp_path / "preds.json"
    record = dict(detailed("d1", "A person riding a horse."), image_path=str(images / "images" / "a.png"))
    preds.write_text(json.dumps([record]))
    argv = ["eval", "score", "detailed", str(preds), "--judge-url", judge.url, "--judge-model", "m", "--json"]
    assert eval_cli([*argv, "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["correct"] == 1
    preds.write_text(json.dumps([detailed("d1", "x")]))
    with pytest.raises(InputError, match="pass --images"):
        eval_cli(argv)
