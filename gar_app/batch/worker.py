"""One GAR loaded once, answering work items: in this process, or as a Ray actor."""

from __future__ import annotations

from dataclasses import dataclass

from gar_app.batch.coco import segmentation_mask
from gar_app.errors import GarAppError, InputError


@dataclass(frozen=True)
class BatchOptions:
    """The model and decoding options of ``gar-app describe`` that batch runs take."""

    model: str
    device: str | None = None
    dtype: str | None = None
    decode: str = "auto"
    max_new_tokens: int = 1024
    instruction: str | None = None  # instead of "Describe this masked region in detail."


class Worker:
    """Caption or answer items with one loaded model; a bad item gives an error, not a crash."""

    def __init__(self, options: BatchOptions):
        from gar_app.model import GenerationSettings, load_gar

        self.options = options
        self.gar = load_gar(options.model, device=options.device, dtype=options.dtype, decode=options.decode)
        self.settings = GenerationSettings(max_new_tokens=options.max_new_tokens)
        self._image = (None, None)  # (path, image): items come grouped by image

    def _load(self, path: str):
        from gar_app.images import load_image

        if self._image[0] != path:
            self._image = (path, load_image(path))
        return self._image[1]

    def __call__(self, item: dict) -> dict:
        """``{"key", "record"}`` with the output line, or ``{"key", "error"}`` saying what is wrong."""
        try:
            return {"key": item["key"], "record": self._answer(item)}
        except GarAppError as error:
            return {"key": item["key"], "error": str(error)}

    def _answer(self, item: dict) -> dict:
        image = self._load(item["path"])
        height, width = item["size"]
        if image.size != (width, height):
            raise InputError(
                f"{item['path']} is {image.width}x{image.height} but the COCO file says {width}x{height}"
            )
        masks = [segmentation_mask(s, height, width) for s in item["segmentations"]]
        if "question" in item:
            if len(masks) > self.gar.prompt_numbers:
                raise InputError(
                    f"image {item['image_id']} has {len(masks)} regions; this model tells apart at "
                    f"most {self.gar.prompt_numbers}"
                )
            answer = self.gar.chat(image, masks).ask(item["asked"], self.settings)
            return {
                "image_id": item["image_id"],
                "question": item["question"],
                "answer": answer,
                "annotation_ids": item["annotation_ids"],
                "model": self.gar.model_id,
            }
        if not masks[0].any():
            raise InputError(f"annotation {item['annotation_id']} has an empty mask")
        caption = self.gar.describe(image, masks[0], self.settings, self.options.instruction)
        return {
            "annotation_id": item["annotation_id"],
            "image_id": item["image_id"],
            "caption": caption,
            "model": self.gar.model_id,
        }
