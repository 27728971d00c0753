"""GAR as two MCP tools (``python app.py --mcp``): describe a region, ask about regions.

Gradio's MCP server offers every public API endpoint as a tool, its JSON schema derived
from the function's type hints and its descriptions from the docstring (the text before
``Args:`` describes the tool, each ``name: ...`` line a parameter). The page's own events
take the browser session's state and mean nothing to an MCP client, so ``attach`` hides
them from the API listing (the page still calls them) and adds these two tools. Images and
regions are read by the same code as the HTTP API (``gar_app.serve``): data URLs only.
"""

from __future__ import annotations

import gradio as gr

from components.common import on_gpu
from gar_app.errors import GarAppError
from gar_app.model.settings import GenerationSettings
from gar_app.serve.errors import ApiError
from gar_app.serve.media import MediaReader
from gar_app.serve.request import parse_region, resolve_regions
from gar_app.tags import tag
from gar_app.workspace import Services

TOOLS = ("describe_region", "ask_about_regions")


def _data_url(image: str) -> str:
    """A data URL as is; bare base64 gets the prefix (Pillow finds the format from the bytes)."""
    return image if image.startswith("data:") else f"data:image/png;base64,{image}"


class GarTools:
    """The tools' implementations over the app's shared model and segmenter."""

    def __init__(self, services: Services):
        self.services = services
        self.media = MediaReader()

    def _regions(self, image: str, regions: list[dict]):
        gar = self.services.gar
        if gar is None:
            raise gr.Error(f"no GAR model is loaded ({self.services.gar_problem or 'annotation mode'})")
        if not isinstance(regions, list) or not regions or not all(isinstance(r, dict) for r in regions):
            raise gr.Error('regions must be a non-empty list of objects like {"box": [x1, y1, x2, y2]}')
        try:
            parts = [
                parse_region({**r, "tag": tag(k)}, 0, f"regions[{k}]", gar.prompt_numbers)
                for k, r in enumerate(regions)
            ]
            resolved = resolve_regions(_data_url(image), "image", parts, self.media)
            masks = [resolved.mask(k, self.services.segment) for k in range(len(parts))]
        except (ApiError, GarAppError) as error:
            raise gr.Error(str(error)) from None
        return gar, resolved.image, masks

    def describe_region(self, image: str, region: dict, max_new_tokens: int = 256) -> str:
        """Describe one region of an image in detail with GAR (Grasp Any Region).

        Args:
            image: the image as a data URL (data:image/png;base64,...) or bare base64 of a PNG / JPEG / WebP file.
            region: the region, one of {"box": [x1, y1, x2, y2]} in pixels (segmented on the server), {"mask": {"size": [height, width], "counts": "..."}} (COCO RLE) or {"mask_url": "data:image/png;base64,..."} (non-zero pixels are inside).
            max_new_tokens: the longest description, in tokens.
        Returns:
            GAR's description of the region.
        """
        gar, picture, masks = self._regions(image, [region])
        try:
            return gar.describe(picture, masks[0], GenerationSettings(max_new_tokens=int(max_new_tokens)))
        except GarAppError as error:
            raise gr.Error(str(error)) from None

    def ask_about_regions(
        self, image: str, regions: list[dict], question: str, max_new_tokens: int = 256
    ) -> str:
        """Answer a question about one or more regions of an image with GAR (Grasp Any Region).

        Args:
            image: the image as a data URL (data:image/png;base64,...) or bare base64 of a PNG / JPEG / WebP file.
            regions: the regions in order: regions[k] is <Promptk>. Each is {"box": [x1, y1, x2, y2]} in pixels, {"mask": {"size": [height, width], "counts": "..."}} (COCO RLE) or {"mask_url": "data:image/png;base64,..."}.
            question: the question, naming regions as <Prompt0>, <Prompt1>, ... e.g. "What is <Prompt0> doing with <Prompt1>?"
            max_new_tokens: the longest answer, in tokens.
        Returns:
            GAR's answer.
        """
        gar, picture, masks = self._regions(image, regions)
        try:
            return gar.chat(picture, masks).ask(
                question, GenerationSettings(max_new_tokens=int(max_new_tokens))
            )
        except GarAppError as error:
            raise gr.Error(str(error)) from None


def attach(demo: gr.Blocks, services: Services) -> None:
    """Offer the two tools on ``demo`` and hide the page's events from the API listing."""
    for function in demo.fns.values():
        if function.api_name not in TOOLS:
            function.api_visibility = "undocumented"
    tools = GarTools(services)
    with demo:
        for tool in (tools.describe_region, tools.ask_about_regions):
            gr.api(on_gpu(tool), api_name=tool.__name__, concurrency_limit=1, concurrency_id="gar")
