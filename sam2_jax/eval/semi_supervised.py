"""Semi-supervised video object segmentation over a dataset (<- `tools/vos_inference.py`).

Each object is prompted with its ground-truth mask on the frame where it first appears (every
object of frame 0 for davis/mose/sav; each object's first non-empty annotation for ytvos, as
`vos_separate_inference_per_object`) and tracked forward to the end. All objects of a video are
tracked together, several videos in lockstep (`streaming.track_videos`, sharded over a mesh's
`data` axis). Outputs are the official ones: low-res logits upsampled to the video size
(bilinear), the non-overlap rule for the label formats (the official `non_overlap_masks=true`
override there), `logits > score_thresh`; frames before an object's first prompt are empty.
"""

import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Optional

import jax
import numpy as np
from jax.sharding import Mesh

from sam2_jax.build import SAM2Model
from sam2_jax.data.frames import load_video_frames
from sam2_jax.eval.formats import Video, write_prediction
from sam2_jax.ops.fill_holes import fill_holes_in_mask_scores
from sam2_jax.ops.interpolate import resize
from sam2_jax.ops.non_overlap import apply_non_overlapping_constraints
from sam2_jax.streaming import TrackRequest, track_videos


@functools.partial(jax.jit, static_argnames=("size", "non_overlap"))
def video_resolution_masks(
    low_res: jax.Array, size: tuple[int, int], non_overlap: bool, score_thresh: float
) -> jax.Array:
    """Low-res logits [N, s, s] -> masks [N, H, W] bool at the video size (H, W)."""
    logits = resize(low_res[:, None], size, "bilinear")
    if non_overlap:
        logits = apply_non_overlapping_constraints(logits)
    return logits[:, 0] > score_thresh


def video_request(video: Video, image_size: int) -> tuple[TrackRequest, tuple[int, ...]]:
    """The tracking request of a video and its object ids (object index i <-> ids[i])."""
    initial = video.initial_masks()
    object_ids = tuple(sorted(initial))
    prompts: dict[int, dict[int, np.ndarray]] = {}
    for i, object_id in enumerate(object_ids):
        t, mask = initial[object_id]
        prompts.setdefault(t, {})[i] = mask
    frames = load_video_frames(video.frames_dir, image_size)
    if frames.num_frames != video.num_frames:
        raise ValueError(
            f"video '{video.name}': the frame loader found {frames.num_frames} frames in "
            f"'{video.frames_dir}', the dataset index {video.num_frames}"
        )
    return TrackRequest(frames, prompts, len(object_ids)), object_ids


def predict_videos(
    model: SAM2Model,
    videos: Sequence[Video],
    pred_root: str | Path,
    mesh: Optional[Mesh] = None,
    score_thresh: float = 0.0,
    on_frame: Callable[[], None] = lambda: None,
) -> Iterator[Video]:
    """Track `videos` together and write their predictions under `pred_root`.

    Yields each video as soon as its PNGs are all written; `on_frame` is called after each
    written frame.
    """
    cfg = model.config
    requests, object_ids = zip(*(video_request(v, cfg.image_size) for v in videos))
    remaining = [len(r.order()) for r in requests]
    for b, r in enumerate(requests):  # frames before the first prompt: no object yet
        for t in sorted(set(range(videos[b].num_frames)) - set(r.order())):
            write_prediction(pred_root, videos[b], t, {k: _empty(videos[b]) for k in object_ids[b]})
    for b, t, low_res, _ in track_videos(model, requests, mesh):
        video = videos[b]
        if cfg.fill_hole_area > 0:
            low_res = fill_holes_in_mask_scores(low_res, cfg.fill_hole_area)
        masks = np.asarray(
            video_resolution_masks(
                low_res, (video.height, video.width), cfg.non_overlap_masks, score_thresh
            )
        )
        write_prediction(pred_root, video, t, dict(zip(object_ids[b], masks)))
        on_frame()
        remaining[b] -= 1
        if remaining[b] == 0:
            yield video


def _empty(video: Video) -> np.ndarray:
    return np.zeros((video.height, video.width), bool)
