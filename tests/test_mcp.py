"""GAR's two MCP tools through Gradio's MCP server: the schema, and real tool calls."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest
from api_helpers import RectangleSegmenter, box_mask, data_url, noise_image, png_bytes
from conftest import REPO, free_port

from gar_app.model import GenerationSettings
from gar_app.rle import mask_to_rle
from gar_app.workspace import Services

IMAGE = noise_image(4)
SHAPE = IMAGE.shape[:2]


@pytest.fixture(scope="module")
def mcp_app(tiny_gar):
    sys.path.insert(0, str(REPO))
    from app import build_demo
    from components import mcp_tools

    services = Services(segmenter=RectangleSegmenter(), gar=tiny_gar)
    demo = build_demo(services)
    mcp_tools.attach(demo, services)
    demo.queue()
    _app, url, _share = demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        mcp_server=True,
    )
    yield url
    demo.close()


def test_schema_lists_both_tools_with_their_argument_types(mcp_app):
    tools = {tool["name"]: tool for tool in httpx.get(f"{mcp_app}gradio_api/mcp/schema").json()}
    assert set(tools) == {"describe_region", "ask_about_regions"}  # the page's own events are not tools
    types = {
        name: {k: v["type"] for k, v in tool["inputSchema"]["properties"].items()}
        for name, tool in tools.items()
    }
    assert types == {
        "describe_region": {"image": "string", "region": "object", "max_new_tokens": "integer"},
        "ask_about_regions": {
            "image": "string",
            "regions": "array",
            "question": "string",
            "max_new_tokens": "integer",
        },
    }
    assert tools["ask_about_regions"]["inputSchema"]["properties"]["regions"]["items"]["type"] == "object"
    assert tools["ask_about_regions"]["inputSchema"]["required"] == ["image", "regions", "question"]
    assert "Describe one region" in tools["describe_region"]["description"]
    assert "<Prompt0>" in tools["ask_about_regions"]["inputSchema"]["properties"]["question"]["description"]


def call_tools(url: str, calls: list[tuple[str, dict]]) -> list:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def run():
        async with (
            streamable_http_client(f"{url}gradio_api/mcp/") as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            listed = {tool.name for tool in (await session.list_tools()).tools}
            return listed, [await session.call_tool(name, arguments) for name, arguments in calls]

    return asyncio.run(run())


def test_tools_answer_as_the_library_does(mcp_app, tiny_gar):
    first, second = box_mask(SHAPE, 4, 30, 6, 40), box_mask(SHAPE, 20, 46, 30, 62)
    settings = GenerationSettings(max_new_tokens=6)
    caption = tiny_gar.describe(IMAGE, first, settings)
    question = "What is <Prompt0> doing next to <Prompt1>?"
    answer = tiny_gar.chat(IMAGE, [first, second]).ask(question, settings)
    image = data_url(png_bytes(IMAGE))
    listed, results = call_tools(
        mcp_app,
        [
            ("describe_region", {"image": image, "region": {"box": [6, 4, 40, 30]}, "max_new_tokens": 6}),
            (
                "ask_about_regions",
                {
                    "image": image,
                    "question": question,
                    "max_new_tokens": 6,
                    "regions": [
                        {"mask": mask_to_rle(first)},
                        {"mask_url": data_url(png_bytes(second.astype("uint8") * 255))},
                    ],
                },
            ),
            (
                "ask_about_regions",
                {"image": image, "question": "Where is <Prompt2>?", "regions": [{"box": [6, 4, 40, 30]}]},
            ),
        ],
    )
    assert {"describe_region", "ask_about_regions"} <= listed
    assert not results[0].isError and results[0].content[0].text == caption
    assert not results[1].isError and results[1].content[0].text == answer
    assert results[2].isError and "<Prompt2>" in results[2].content[0].text  # a readable error, not a crash
