"""``gar-app serve`` and ``python app.py --api --mcp`` started as commands, the way people run them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import httpx
import openai
import pytest
from api_helpers import box_mask, image_part, noise_image, rle_part, text_part
from conftest import REPO, free_port

from gar_app.cli import main
from gar_app.model import GenerationSettings

IMAGE = noise_image(5)
MASK = box_mask(IMAGE.shape[:2], 4, 30, 6, 40)


class Command:
    """A server command in its own process, stopped with SIGTERM (then SIGKILL) at the end."""

    def __init__(self, args: list[str], tmp_path, env: dict | None = None):
        self.log = tmp_path / "server.log"
        environment = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, *args], cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_for(self, url: str, timeout: float = 240) -> httpx.Response:
        """The first answer from ``url`` once the server listens (or fail with its log)."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                if self.process.poll() is not None:
                    pytest.fail(f"the server exited ({self.process.returncode}):\n{self.log.read_text()}")
                try:
                    return httpx.get(url, timeout=5)
                except httpx.TransportError:
                    deadline.wait(0.2)
            pytest.fail(f"the server did not answer {url} in {timeout} s:\n{self.log.read_text()}")
        finally:
            timer.cancel()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.mark.slow
def test_gar_app_serve_answers_like_the_library(tiny_gar_dir, tiny_gar, tmp_path):
    port = free_port()
    server = Command(
        [
            "-m",
            "gar_app.cli",
            "serve",
            "--model",
            str(tiny_gar_dir),
            "--device",
            "cpu",
            "--dtype",
            "fp32",
            "--port",
            str(port),
            "--api-key-env",
            "GAR_TEST_KEY",
        ],
        tmp_path,
        env={"GAR_TEST_KEY": "k3y"},
    )
    try:
        assert server.wait_for(f"http://127.0.0.1:{port}/v1/models").status_code == 401  # the key is required
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k3y", max_retries=0)
        assert [m.id for m in client.models.list()] == [tiny_gar_dir.name]
        question = "What is <Prompt0>?"
        answer = client.chat.completions.create(
            model=tiny_gar_dir.name,
            max_tokens=6,
            messages=[
                {"role": "user", "content": [image_part(IMAGE), rle_part(0, MASK), text_part(question)]}
            ],
        )
        expected = tiny_gar.chat(IMAGE, [MASK]).ask(question, GenerationSettings(max_new_tokens=6))
        assert answer.choices[0].message.content == expected
        follow = client.chat.completions.create(
            model=tiny_gar_dir.name,
            max_tokens=6,
            messages=[
                {"role": "user", "content": [image_part(IMAGE), rle_part(0, MASK), text_part(question)]},
                {"role": "assistant", "content": expected},
                {"role": "user", "content": "And <Prompt0>?"},
            ],
        )
        assert follow.choices[0].message.content
    finally:
        server.stop()
    log = server.log.read_text()
    assert "serving the API on" in log
    assert "continuing a held conversation" in log  # the follow-up said it reused the conversation


def test_serve_refuses_a_key_variable_that_is_not_set(tiny_gar_dir, capsys, monkeypatch):
    monkeypatch.delenv("GAR_TEST_UNSET_KEY", raising=False)
    assert main(["serve", "--model", str(tiny_gar_dir), "--api-key-env", "GAR_TEST_UNSET_KEY"]) == 2
    assert capsys.readouterr().err.strip() == (
        "gar-app: error: --api-key-env GAR_TEST_UNSET_KEY: that environment variable is not set or empty"
    )


@pytest.mark.slow
def test_app_serves_the_api_and_mcp_beside_the_page(tmp_path):
    """Without a model (annotation mode) the page and MCP schema are up and the API says 503."""
    port = free_port()
    app = Command(
        ["app.py", "--no-model", "--no-sam-download", "--api", "--mcp", "--port", str(port)], tmp_path
    )
    try:
        assert app.wait_for(f"http://127.0.0.1:{port}/").status_code == 200
        tools = httpx.get(f"http://127.0.0.1:{port}/gradio_api/mcp/schema").json()
        assert {tool["name"] for tool in tools} == {"describe_region", "ask_about_regions"}
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(
                model=None,
                messages=[
                    {
                        "role": "user",
                        "content": [image_part(IMAGE), rle_part(0, MASK), text_part("What is <Prompt0>?")],
                    }
                ],
            )
        assert caught.value.status_code == 503 and "annotation mode" in caught.value.body["message"]
    finally:
        app.stop()
