"""``image_url`` / ``mask_url`` paths: files inside ``--allow-dir`` are read, nothing else is.

The file outside the allowed folder is a valid image, so any way of reaching it that
worked would answer 200 instead of 400.
"""

from __future__ import annotations

import os

import openai
import pytest
from api_helpers import RunningApi, box_mask, image_part, noise_image, png_bytes, rle_part, text_part

from gar_app.segment import GrabCutSegmenter
from gar_app.workspace import Services

IMAGE = noise_image(3)
MASK = box_mask(IMAGE.shape[:2], 4, 30, 6, 40)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    allowed, outside = root / "allowed", root / "outside"
    (allowed / "sub").mkdir(parents=True)
    outside.mkdir()
    for path in (allowed / "inside.png", allowed / "sub" / "deeper.png", outside / "secret.png"):
        path.write_bytes(png_bytes(IMAGE))
    (allowed / "notes.txt").write_text("not an image")
    os.symlink(outside / "secret.png", allowed / "link-out.png")
    os.symlink(outside, allowed / "dir-out")
    os.symlink(allowed / "inside.png", allowed / "link-in.png")
    return allowed, outside


@pytest.fixture(scope="module")
def served(tiny_gar, folders):
    server = RunningApi(Services(segmenter=GrabCutSegmenter(), gar=tiny_gar), allow_dir=str(folders[0]))
    yield server
    server.close()


def ask(server, url, mask_url=None):
    region = (
        rle_part(0, MASK)
        if mask_url is None
        else {"type": "region", "tag": "<Prompt0>", "mask_url": mask_url}
    )
    content = [image_part(url), region, text_part("What is <Prompt0>?")]
    return server.client().chat.completions.create(
        model=None, messages=[{"role": "user", "content": content}], max_tokens=3
    )


@pytest.mark.parametrize("url", ["inside.png", "sub/deeper.png", "sub/../inside.png", "link-in.png"])
def test_files_inside_the_allowed_folder_are_read(served, url):
    expected = ask(served, image_part(IMAGE)["image_url"]["url"]).choices[0].message.content
    assert ask(served, url).choices[0].message.content == expected


def outside_urls(folders) -> list[str]:
    allowed, outside = folders
    secret = outside / "secret.png"
    return [
        "../outside/secret.png",
        "sub/../../outside/secret.png",
        str(secret),  # absolute
        f"file://{secret}",
        "link-out.png",  # a symbolic link inside that points outside
        "dir-out/secret.png",  # through a linked folder
        f"//{secret}",
        "http://127.0.0.1:1/secret.png",  # the server downloads nothing
        ".",
    ]


def test_nothing_outside_the_allowed_folder_is_readable(served, folders):
    for url in outside_urls(folders):
        for image, mask in ((url, None), ("inside.png", url)):
            with pytest.raises(openai.BadRequestError) as caught:
                ask(served, image, mask)
            message = caught.value.body["message"]
            assert (
                "outside" in message
                or "relative" in message
                or "downloads nothing" in message
                or "only data:" in message
            ), (url, message)


def test_a_file_that_is_not_an_image_is_400(served):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(served, "notes.txt")
    assert "not an image" in caught.value.body["message"]


def test_without_an_allowed_folder_no_path_is_read(tiny_gar, folders):
    server = RunningApi(Services(segmenter=GrabCutSegmenter(), gar=tiny_gar))
    try:
        for url in ["inside.png", *outside_urls(folders)]:
            with pytest.raises(openai.BadRequestError):
                ask(server, url)
        with pytest.raises(openai.BadRequestError) as caught:
            ask(server, "inside.png")
        assert "--allow-dir" in caught.value.body["message"]
    finally:
        server.close()
