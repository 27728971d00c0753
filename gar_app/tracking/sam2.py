"""SAM 2's video predictor (transformers) behind the ``Tracker`` interface, frames decoded lazily.

transformers' inference session normally holds the whole video preprocessed (12 MB a frame
at 1024 px in float32). Here its frame store is a lazy mapping: a frame is decoded and
preprocessed on the CPU when the model first asks for it, and only the frame in use is
kept; the session's feature cache holds one frame's image features. Outputs older than the
model's memory reaches (``num_maskmem`` masks, ``max_object_pointers_in_encoder`` pointers)
are dropped as a run goes, so its memory does not grow with the clip's length.

Each run is its own session: the keyframe's mask goes in as the mask prompt (SAM 2 takes a
mask prompt as the frame's output), then the session propagates one way. So whatever made
the keyframe's mask (any canvas tool, the image segmenter, an upload) is what is tracked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch

from gar_app.errors import InputError
from gar_app.segment.base import Prompt, check_prompt
from gar_app.segment.sampling import spread_points
from gar_app.tracking.base import FrameMasks, Run, Tracker
from gar_app.tracking.sam2_checkpoint import Sam2Checkpoint
from gar_app.video import Clip


def preprocess(processor, rgb: np.ndarray) -> torch.Tensor:
    """One frame as SAM 2's video processor prepares it (3 x S x S, normalised)."""
    frames = rgb[None].copy()  # writable: torch refuses to wrap read-only arrays
    return processor.video_processor(videos=[frames], return_tensors="pt").pixel_values_videos[0, 0]


class LazyFrames(Mapping):
    """Clip positions -> preprocessed frames, decoded when asked for (in run order when possible)."""

    def __init__(self, clip: Clip, processor, dtype: torch.dtype, order: Sequence[int] = ()):
        self._clip, self._processor, self._dtype = clip, processor, dtype
        self._order = list(order)
        self._stream = clip.frames(self._order)
        self._next = 0
        self._current: tuple[int, torch.Tensor] | None = None
        self.decoded = 0  # frames decoded so far (tests check nothing is decoded twice)

    def __len__(self) -> int:
        return len(self._clip)

    def __iter__(self):
        return iter(range(len(self._clip)))

    def __getitem__(self, position: int) -> torch.Tensor:
        if self._current is not None and self._current[0] == position:
            return self._current[1]
        if self._next < len(self._order) and self._order[self._next] == position:
            _, rgb = next(self._stream)
            self._next += 1
        else:
            rgb = self._clip.frame(position)
        self.decoded += 1
        self._current = (position, preprocess(self._processor, rgb).to(self._dtype))
        return self._current[1]


class Sam2Tracker(Tracker):
    """A loaded SAM 2 / EdgeTAM video model; ``name`` says which checkpoint is in use."""

    def __init__(self, checkpoint: Sam2Checkpoint):
        self.checkpoint = checkpoint
        self.model = checkpoint.model
        self.processor = checkpoint.processor
        self.name = f"{checkpoint.kind} video tracker ({checkpoint.source})"
        config = self.model.config
        self.memory_frames = max(config.num_maskmem, config.max_object_pointers_in_encoder)
        self.session = None  # the inference session of the run in progress (None between runs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def _session(self, frames: Mapping, height: int, width: int):
        session = self.checkpoint.session_class(
            video_height=height,
            video_width=width,
            inference_device=self.device,
            inference_state_device=self.device,
            video_storage_device="cpu",
            dtype=self.dtype,
        )
        session.processed_frames = frames
        return session

    def _masks(self, output, height: int, width: int) -> list[np.ndarray | None]:
        """Per object: its mask at the video's size, None when SAM 2 says it is not there."""
        masks = self.processor.post_process_masks(
            [output.pred_masks], original_sizes=[[height, width]], binarize=True
        )[0]
        present = (output.object_score_logits.reshape(-1) > 0).tolist()
        out = []
        for mask, here in zip(masks[:, 0].cpu().numpy(), present, strict=True):
            out.append(mask if here and mask.any() else None)
        return out

    def segment(self, frame: np.ndarray, prompt: Prompt) -> np.ndarray:
        """SAM 2 on one frame: clicks and box as they are, an open scribble as up to 8 clicks,
        a lasso as its box with the mask kept inside it (the image segmenter's rules)."""
        height, width = frame.shape[:2]
        checked = check_prompt(width, height, prompt.points, prompt.labels, prompt.box, prompt.scribble)
        points, labels = checked.points.tolist(), checked.labels.tolist()
        box = None if checked.box is None else checked.box.tolist()
        if checked.lasso is not None and box is None:
            ys, xs = np.nonzero(checked.lasso)
            box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        elif checked.stroke is not None and checked.lasso is None:
            extra = spread_points(checked.stroke).tolist()
            points, labels = points + extra, labels + [1] * len(extra)
        session = self._session({0: preprocess(self.processor, frame).to(self.dtype)}, height, width)
        self.processor.add_inputs_to_inference_session(
            session,
            frame_idx=0,
            obj_ids=1,
            input_points=[[points]] if points else None,
            input_labels=[[labels]] if points else None,
            input_boxes=[[box]] if box is not None else None,
        )
        with torch.inference_mode():
            mask = self._masks(self.model(inference_session=session, frame_idx=0), height, width)[0]
        if mask is not None and checked.lasso is not None:
            mask = mask & checked.lasso
        if mask is None or not mask.any():
            raise InputError(
                "SAM 2 found no object at these marks; click on the object or drag a box around it"
            )
        return mask

    def track(
        self, clip: Clip, run: Run, masks: Mapping[int, np.ndarray]
    ) -> Iterator[tuple[int, FrameMasks]]:
        regions = list(masks)  # (transformers keeps and empties the list it is given: pass copies)
        height, width = clip.info.height, clip.info.width
        frames = LazyFrames(clip, self.processor, self.dtype, [run.start, *run.positions])
        self.session = session = self._session(frames, height, width)
        try:
            self.processor.add_inputs_to_inference_session(
                session,
                frame_idx=run.start,
                obj_ids=list(regions),
                input_masks=[np.ascontiguousarray(masks[r], bool) for r in regions],
            )
            with torch.inference_mode():
                self.model(inference_session=session, frame_idx=run.start)
            # inference mode per step, never across a yield: a run paused by Cancel goes on later,
            # maybe in another thread, and must not leave this one in inference mode
            steps = self.model.propagate_in_video_iterator(
                session, start_frame_idx=run.start, max_frame_num_to_track=len(run), reverse=run.step < 0
            )
            for output in steps:
                if output.frame_idx == run.start:
                    continue
                with torch.inference_mode():
                    found = dict(zip(output.object_ids, self._masks(output, height, width), strict=True))
                    self._forget(session, output.frame_idx, run.step)
                yield output.frame_idx, {region: found[region] for region in regions}
        finally:
            self.session = None

    def _forget(self, session, frame_idx: int, step: int) -> None:
        """Drop what the model will not look at again: outputs beyond its memory, and the
        full-size mask logits kept with every output (used only while encoding its memory)."""
        for outputs in session.output_dict_per_obj.values():
            tracked = outputs["non_cond_frame_outputs"]
            for old in [f for f in tracked if (frame_idx - f) * step >= self.memory_frames]:
                del tracked[old]
            for output in tracked.values():
                output.pop("high_res_masks", None)
