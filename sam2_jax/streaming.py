"""Offline (streaming) video tracking: the whole video through `track_chunk`, bank carried.

Only the memory bank and the chunk of frames being processed are held, so memory does not grow
with the video length. Semantics follow the official semi-supervised VOS use of the predictor
(`tools/vos_inference.py`): each object is given a mask on the frames in `mask_prompts`, is not
tracked before its first prompt (its output there is NO_OBJ_SCORE) and is tracked forward
(or backward with `reverse=True`) from it; all objects run together.
"""

from typing import Iterator, Mapping, Optional

import jax.numpy as jnp
import numpy as np

from sam2_jax.build import SAM2Model
from sam2_jax.data.frames import VideoFrames
from sam2_jax.memory_bank import capacity_bucket, empty_bank
from sam2_jax.ops.interpolate import resize
from sam2_jax.tracker import FramePrompt, track_chunk


def prompt_mask_at_model_size(mask: np.ndarray, image_size: int) -> np.ndarray:
    """A video-resolution mask [H, W] -> {0, 1} [S, S] as official `add_new_mask` resizes it."""
    m = np.asarray(mask).astype(bool).astype(np.float32)
    if m.shape != (image_size, image_size):
        m = resize(jnp.asarray(m), (image_size, image_size), "bilinear", antialias=True)
        m = np.asarray(m >= 0.5, np.float32)
    return m


def track_video(
    model: SAM2Model,
    frames: VideoFrames,
    mask_prompts: Mapping[int, Mapping[int, np.ndarray]],
    num_objects: int,
    reverse: bool = False,
    chunk_size: Optional[int] = None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (frame_idx, low-res mask logits [N, s, s], object score logits [N]) per frame.

    mask_prompts: frame_idx -> {object index (0 .. num_objects-1): mask [H, W] at video size}.
    Frames are processed in order from the first prompted frame (or the last, in reverse).
    """
    cfg = model.config
    if not mask_prompts:
        raise ValueError("track_video needs at least one mask prompt")
    num_frames, s = frames.num_frames, cfg.image_size
    for f, objs in mask_prompts.items():
        if not 0 <= f < num_frames:
            raise ValueError(f"prompt on frame {f}, but the video has {num_frames} frames")
        bad = [o for o in objs if not 0 <= o < num_objects]
        if bad:
            raise ValueError(
                f"prompt for object index {bad} on frame {f}: expected 0 .. {num_objects - 1}"
            )
    per_object = np.zeros(num_objects, int)
    for objs in mask_prompts.values():
        for o in objs:
            per_object[o] += 1
    if per_object.max() > cfg.tracking.max_cond_frames:
        raise ValueError(
            f"an object has {per_object.max()} prompted frames; the memory bank holds "
            f"tracking.max_cond_frames={cfg.tracking.max_cond_frames}"
        )
    d = -1 if reverse else 1
    start = max(mask_prompts) if reverse else min(mask_prompts)
    order = list(range(start, -1, -1)) if reverse else list(range(start, num_frames))
    chunk = chunk_size or cfg.tracking.chunk_size
    o_pad = capacity_bucket(num_objects)
    hw = (s // cfg.backbone_stride) ** 2
    bank = empty_bank(
        o_pad,
        capacity_bucket(per_object.max()),
        cfg.num_maskmem - 1,
        cfg.max_obj_ptrs_in_encoder - 1,
        hw,
        cfg.memory_encoder.out_dim,
        cfg.image_encoder.neck.d_model,
        jnp.dtype(cfg.tracking.memory_dtype),
    )
    started = np.zeros(o_pad, bool)
    for begin in range(0, len(order), chunk):
        ids_list = order[begin : begin + chunk]
        n = len(ids_list)
        ids = np.array(ids_list + [ids_list[-1]] * (chunk - n), np.int32)
        valid = np.arange(chunk) < n
        prompts, started = _chunk_prompts(ids, valid, mask_prompts, o_pad, s, started)
        bank, out = track_chunk(
            model.module,
            model.params,
            bank,
            frames.frames(ids),
            prompts,
            ids,
            valid,
            np.int32(num_frames),
            np.int32(d),
        )
        low_res = np.asarray(out.low_res_masks)
        scores = np.asarray(out.object_score_logits)
        for i, f in enumerate(ids_list):
            yield f, low_res[i, :num_objects], scores[i, :num_objects, 0]


def _chunk_prompts(ids, valid, mask_prompts, o_pad, s, started):
    """FramePrompt [L, O] of a chunk and the updated `started` [O] flags."""
    chunk = len(ids)
    has_mask = np.zeros((chunk, o_pad), bool)
    masks = np.zeros((chunk, o_pad, s, s), np.float32)
    track = np.zeros((chunk, o_pad), bool)
    started = started.copy()
    for i, f in enumerate(ids):
        if not valid[i]:
            continue
        for o, m in mask_prompts.get(int(f), {}).items():
            has_mask[i, o] = True
            masks[i, o] = prompt_mask_at_model_size(m, s)
            started[o] = True
        track[i] = started
    points = np.zeros((chunk, o_pad, 1, 2), np.float32)
    labels = -np.ones((chunk, o_pad, 1), np.int32)
    any_mask = bool(has_mask.any())  # chunks without mask prompts skip the mask inputs
    prompts = FramePrompt(
        point_coords=points,
        point_labels=labels,
        is_init_cond=has_mask,
        as_cond=has_mask,
        track=track,
        mask=masks if any_mask else None,
        has_mask=has_mask if any_mask else None,
    )
    return prompts, started
