"""How long a visitor's session lives and what a public app limits: a closed tab or an idle
session is freed (model state, image, export files), exports do not pile up, and the
launch options (login, upload size, queue length) reach Gradio."""

from __future__ import annotations

import os
import time

import gradio as gr
import pytest
from browser import ARTIFACTS, click_at, launch, load, open_page, server_session, sync_api, unique_copy
from conftest import REPO, free_port
from gradio_client import handle_file
from helpers import wait_until

import app as app_module
from components.session import Session

CAT = str(REPO / "assets" / "examples" / "cat.jpg")
GREEDY = ("Greedy (as in the paper)", 0.7, 0.9, 16)


def sessions(demo) -> list[Session]:
    return [
        value
        for state in list(demo.state_holder.session_data.values())
        for value in list(state.state_data.values())
        if isinstance(value, Session)
    ]


class ShortLivedApp:
    """The app with sessions that expire after ``ttl`` idle seconds."""

    def __init__(self, services, ttl: float):
        from components.style import css

        self.demo = app_module.build_demo(services, session_ttl=ttl)
        self.demo.queue(default_concurrency_limit=4)
        _app, self.url, _share = self.demo.launch(
            server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, css=css()
        )

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False)


@pytest.fixture(scope="module")
def short_lived(tiny_gar):
    from gar_app.segment import GrabCutSegmenter
    from gar_app.workspace import Services

    server = ShortLivedApp(Services(segmenter=GrabCutSegmenter(), gar=tiny_gar), ttl=3)
    yield server
    server.demo.close()


def test_an_idle_api_session_is_freed_with_its_model_state_and_files(short_lived):
    client = short_lived.client()
    client.predict(handle_file(CAT), api_name="/load_image")
    client.predict("include", 200, 130, api_name="/mark")
    list(client.submit("What is <Prompt0>?", *GREEDY, api_name="/ask"))
    client.predict(api_name="/export")
    session = next(s for s in sessions(short_lived.demo) if s.workspace.conversation.turns)
    exports = session.export_folder
    assert exports is not None and any(exports.iterdir()) and session.workspace.conversation.chat is not None
    # freed (the delete callback) and dropped from Gradio's states: two steps, so wait for both
    wait_until(
        lambda: session.workspace.image is None and session not in sessions(short_lived.demo),
        "the idle session to be freed",
        timeout=60,
    )
    assert session.workspace.conversation.chat is None and session.workspace.marking is None
    assert not exports.exists(), "its export files are gone"
    assert session not in sessions(short_lived.demo)


def test_exports_replace_the_previous_ones(gar_app_server):
    client = gar_app_server.client()
    client.predict(handle_file(CAT), api_name="/load_image")
    client.predict("include", 200, 130, api_name="/mark")
    client.predict(api_name="/export")
    client.predict(api_name="/new_region")
    client.predict("include", 330, 150, api_name="/mark")
    client.predict(api_name="/export")
    session = next(
        s for s in sessions(gar_app_server.demo) if s.export_folder and len(s.workspace.regions) == 2
    )
    assert sorted(p.name for p in session.export_folder.iterdir()) == ["cat.gar.json", "cat.train.json"]
    assert gar_app_server.demo.delete_cache == app_module.EXPORT_CACHE


@pytest.mark.browser
@pytest.mark.slow
def test_closing_the_tab_frees_its_session(gar_app_server, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api().sync_playwright() as playwright:
        browser = launch(playwright)
        page = open_page(browser, gar_app_server.url)
        cat = unique_copy("cat.jpg", tmp_path)
        load(page, cat)
        click_at(page, 200, 130)
        session = server_session(gar_app_server, cat.name)
        assert session.workspace.image is not None
        page.context.close()
        browser.close()
    wait_until(lambda: session.workspace.image is None, "the closed tab's session to be freed", timeout=90)
    assert session.workspace.marking is None


def test_launch_options_reach_gradio(monkeypatch):
    seen = {}

    def record(name):
        def call(self, **options):
            seen[name] = {**seen.get(name, {}), **options}
            return self

        return call

    monkeypatch.setattr(gr.Blocks, "queue", record("queue"))
    monkeypatch.setattr(gr.Blocks, "launch", record("launch"))
    monkeypatch.delenv("GAR_APP_AUTH", raising=False)
    app_module.main(
        [
            "--no-model",
            "--no-sam-download",
            "--auth",
            "ann:secret",
            "--max-file-size",
            "5mb",
            "--queue-size",
            "7",
            "--port",
            "7999",
        ]
    )
    assert seen["launch"]["auth"] == ("ann", "secret") and seen["launch"]["max_file_size"] == "5mb"
    assert seen["queue"]["max_size"] == 7
    seen.clear()
    monkeypatch.setenv("GAR_APP_AUTH", "bob:pw:with:colons")
    app_module.main(["--no-model", "--no-sam-download"])
    assert seen["launch"]["auth"] == ("bob", "pw:with:colons") and seen["launch"]["max_file_size"] == "50mb"
    assert seen["queue"]["max_size"] == 64
    with pytest.raises(SystemExit, match="USER:PASS"):
        app_module.parse_auth("nobody")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.fixture(scope="module")
def app_process(tiny_gar_dir):
    """The real app in its own process (python app.py, tiny GAR, idle sessions freed after 1 s),
    so its memory is the app's alone."""
    import subprocess
    import sys
    import urllib.request

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "app.py"),
            "--model",
            str(tiny_gar_dir),
            "--device",
            "cpu",
            "--dtype",
            "fp32",
            "--no-sam-download",
            "--port",
            str(port),
            "--session-ttl",
            "1",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        assert server.poll() is None, server.stderr.read().decode()[-2000:]
        try:
            return urllib.request.urlopen(url, timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_until(up, "the app to start", timeout=180)
        yield server, url
    finally:
        server.terminate()
        server.wait(timeout=30)


linux_only = pytest.mark.skipif(
    not os.path.exists("/proc/self/statm"), reason="reads Linux's /proc for the memory use"
)


@pytest.mark.slow
@linux_only
def test_fifty_visitors_one_after_another_keep_the_server_memory_bounded(app_process, tmp_path):
    """50 API visitors one after another, each with a 2048x1536 photo, a region and a chat turn,
    none saying goodbye (so only the idle timeout, 1 s here, frees them). After 10 visitors of
    warm-up the server grows by less than 300 MB over the next 40; kept, they grow it by ~30 MB each."""
    import numpy as np
    from gradio_client import Client
    from PIL import Image

    server, url = app_process
    photo, mask = tmp_path / "photo.jpg", tmp_path / "mask.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1536, 2048, 3), dtype=np.uint8)).save(photo)
    region = np.zeros((1536, 2048), np.uint8)
    region[300:1200, 400:1500] = 255
    Image.fromarray(region).save(mask)
    growth, visitors = [], []
    for visitor in range(50):
        client = Client(url, verbose=False)
        visitors.append(client)  # held open: only the idle timeout can free its session
        client.predict(handle_file(str(photo)), api_name="/load_image")
        client.predict(handle_file(str(mask)), api_name="/upload_mask")
        list(client.submit("What is <Prompt0>?", *GREEDY, api_name="/ask"))
        if visitor == 9:
            start = rss_mb(server.pid)
        if visitor >= 9:
            growth.append(rss_mb(server.pid) - start)
    assert max(growth) < 300, f"the server grew by up to {max(growth):.0f} MB over 40 visitors: {growth}"


def peak_mb(pid: int) -> float:
    """The process's peak resident memory since the last ``reset_peak`` (VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # Linux: VmHWM starts again from the current RSS


@linux_only
@pytest.mark.slow  # starts the app in its own process
def test_a_huge_image_or_video_is_refused_by_the_app_without_decoding_it(app_process, tmp_path):
    """The issue's cases through the running app: a 15000x15000 PNG (675 MB decoded) and a video
    of 16000x16000 frames (768 MB a frame) are refused with a notice that names the size, and
    the server's peak memory rises by less than 200 MB."""
    import io

    from conftest import write_blank_png
    from gradio_client import Client
    from helpers import shown
    from PIL import Image

    from gar_app.tracking.synthetic import write_mjpeg_avi

    server, url = app_process
    big = write_blank_png(tmp_path / "big.png", 15000, 15000)
    buffer = io.BytesIO()
    Image.new("L", (16000, 16000), 128).save(buffer, "JPEG", quality=30)
    huge = write_mjpeg_avi(tmp_path / "huge.avi", [buffer.getvalue()], 16000, 16000)
    del buffer
    client = Client(url, verbose=False)
    before = rss_mb(server.pid)
    reset_peak(server.pid)
    started = time.perf_counter()
    image_notice = client.predict(handle_file(str(big)), api_name="/load_image")[-1]
    middle = time.perf_counter()
    video_notice = client.predict(handle_file(str(huge)), api_name="/load_video")[-1]
    seconds = (middle - started, time.perf_counter() - middle)
    peak = peak_mb(server.pid)
    print(
        f"refused in {seconds[0]:.2f} s and {seconds[1]:.2f} s (upload included); RSS {before:.0f} MB, peak {peak:.0f} MB"
    )
    assert "big.png has 225.0 megapixels" in shown(image_notice), image_notice
    assert "16000x16000 frames" in shown(video_notice), video_notice
    assert peak - before < 200, f"the server's peak rose by {peak - before:.0f} MB (to {peak:.0f} MB)"
    assert peak < 1536, "the issue's bound: under 1.5 GB at its peak, tiny model included"
