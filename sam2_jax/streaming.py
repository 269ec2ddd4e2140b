"""Offline (streaming) video tracking: whole videos through `track_chunk`, banks carried.

Only the memory banks and the chunk of frames being processed are held, so memory does not grow
with the video length. Semantics follow the official semi-supervised VOS use of the predictor
(`tools/vos_inference.py`): each object is given a mask on the frames in its request's
`mask_prompts`, is not tracked before its first prompt (its output there is NO_OBJ_SCORE) and is
tracked forward (or backward with `reverse=True`) from it; all objects of a video run together.

Several videos run in lockstep as a batch axis B, sharded over a mesh's `data` axis with
`shard_map` (one or more videos per device, parameters replicated): each device runs the same
program on its own videos, with no communication, so a video's result does not depend on the
number of devices. Object and conditioning-slot counts are padded to `capacity_bucket`s, so a
whole benchmark compiles a handful of programs.
"""

import dataclasses
import functools
import math
from typing import Iterator, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from sam2_jax.build import SAM2Model
from sam2_jax.data.frames import VideoFrames
from sam2_jax.memory_bank import capacity_bucket, empty_bank, num_recent_slots
from sam2_jax.models.sam2 import SAM2
from sam2_jax.ops.interpolate import resize
from sam2_jax.tracker import FramePrompt, track_chunk_fn

DATA_AXIS = "data"


@dataclasses.dataclass(frozen=True)
class TrackRequest:
    """One video to track.

    mask_prompts: frame index -> {object index (0 .. num_objects-1): mask [H, W] at video size}.
    """

    frames: VideoFrames
    mask_prompts: Mapping[int, Mapping[int, np.ndarray]]
    num_objects: int
    reverse: bool = False

    def order(self) -> list[int]:
        """Frames in processing order: from the first prompted frame (the last, in reverse)."""
        if self.reverse:
            return list(range(max(self.mask_prompts), -1, -1))
        return list(range(min(self.mask_prompts), self.frames.num_frames))

    def max_prompts_per_object(self) -> int:
        counts = np.zeros(self.num_objects, int)
        for objs in self.mask_prompts.values():
            for o in objs:
                counts[o] += 1
        return int(counts.max())

    def check(self, max_cond_frames: int) -> None:
        """Raise ValueError naming what is wrong with the request."""
        if self.num_objects < 1:
            raise ValueError(f"num_objects must be >= 1, got {self.num_objects}")
        if not self.mask_prompts:
            raise ValueError("tracking needs at least one mask prompt")
        num_frames = self.frames.num_frames
        for f, objs in self.mask_prompts.items():
            if not 0 <= f < num_frames:
                raise ValueError(f"prompt on frame {f}, but the video has {num_frames} frames")
            bad = [o for o in objs if not 0 <= o < self.num_objects]
            if bad:
                raise ValueError(
                    f"prompt for object index {bad} on frame {f}: expected "
                    f"0 .. {self.num_objects - 1}"
                )
        if self.max_prompts_per_object() > max_cond_frames:
            raise ValueError(
                f"an object has {self.max_prompts_per_object()} prompted frames; the memory bank "
                f"holds tracking.max_cond_frames={max_cond_frames}"
            )


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
    """Yield (frame_idx, low-res mask logits [N, s, s], object score logits [N]) per frame of one
    video, in processing order (see `TrackRequest`)."""
    request = TrackRequest(frames, mask_prompts, num_objects, reverse)
    for _, f, low_res, scores in track_videos(model, [request], chunk_size=chunk_size):
        yield f, low_res, scores


@functools.cache
def sharded_track_chunk(module: SAM2, mesh: Mesh):
    """`tracker.track_chunk_fn` for B videos sharded over `mesh`'s data axis (jitted, banks
    donated): (params, banks [B], images [L, B], prompts [L, B], ids [L, B], valid [L, B],
    num_frames [B], direction [B]) -> (banks, outputs [L, B, ...])."""
    videos, steps = PartitionSpec(DATA_AXIS), PartitionSpec(None, DATA_AXIS)
    fn = jax.shard_map(
        functools.partial(track_chunk_fn, module),
        mesh=mesh,
        in_specs=(PartitionSpec(), videos, steps, steps, steps, steps, videos, videos),
        out_specs=(videos, steps),
        check_vma=False,  # per-device code only; the skip branch's zeros are not "varying"
    )
    return jax.jit(fn, donate_argnums=(1,))


def default_mesh() -> Mesh:
    """A one-device mesh (the default device) with the `data` axis."""
    return Mesh(np.array(jax.devices()[:1]), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def track_videos(
    model: SAM2Model,
    requests: Sequence[TrackRequest],
    mesh: Optional[Mesh] = None,
    chunk_size: Optional[int] = None,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Track several videos in lockstep; yield (request index, frame_idx, low-res logits
    [N, s, s], object score logits [N]) for every frame of every request.

    Each request's frames come in its processing order; chunks of all requests interleave. The
    batch (padded to a multiple of the `data` axis size with idle videos) is sharded over the
    `data` axis of `mesh` (default: one device). The next chunk is dispatched before the outputs
    of the current one are read, so device compute overlaps host work.
    """
    cfg = model.config
    for r in requests:
        r.check(cfg.tracking.max_cond_frames)
    mesh = mesh or default_mesh()
    data = mesh.shape[DATA_AXIS]
    batch = math.ceil(len(requests) / data) * data
    chunk = chunk_size or cfg.tracking.chunk_size
    orders = [r.order() for r in requests]
    num_chunks = max(math.ceil(len(o) / chunk) for o in orders)
    o_pad = capacity_bucket(max(r.num_objects for r in requests))
    c_pad = capacity_bucket(max(r.max_prompts_per_object() for r in requests))
    s = cfg.image_size
    bank = empty_bank(
        o_pad,
        c_pad,
        num_recent_slots(cfg.num_maskmem, cfg.memory_temporal_stride_for_eval),
        cfg.max_obj_ptrs_in_encoder - 1,
        (s // cfg.backbone_stride) ** 2,
        cfg.memory_encoder.out_dim,
        cfg.image_encoder.neck.d_model,
        jnp.dtype(cfg.tracking.memory_dtype),
    )
    videos, steps = (
        NamedSharding(mesh, PartitionSpec(DATA_AXIS)),
        NamedSharding(mesh, PartitionSpec(None, DATA_AXIS)),
    )
    banks = jax.device_put(
        jax.tree.map(lambda x: np.broadcast_to(x, (batch, *x.shape)), bank), videos
    )
    params = jax.device_put(model.params, NamedSharding(mesh, PartitionSpec()))
    num_frames = np.ones(batch, np.int32)
    direction = np.ones(batch, np.int32)
    for b, r in enumerate(requests):
        num_frames[b] = r.frames.num_frames
        direction[b] = -1 if r.reverse else 1
    num_frames, direction = jax.device_put((num_frames, direction), videos)
    run_chunk = sharded_track_chunk(model.module, mesh)
    started = np.zeros((batch, o_pad), bool)
    pending = None
    for k in range(num_chunks):
        chunk_steps = [o[k * chunk : (k + 1) * chunk] for o in orders]
        xs, started = _chunk_inputs(requests, chunk_steps, chunk, batch, o_pad, s, started)
        banks, out = run_chunk(params, banks, *jax.device_put(xs, steps), num_frames, direction)
        if pending is not None:
            yield from _chunk_outputs(requests, *pending)
        pending = chunk_steps, (out.low_res_masks, out.object_score_logits)
    yield from _chunk_outputs(requests, *pending)


def _chunk_inputs(requests, steps, chunk, batch, o_pad, s, started):
    """(images [L, B, S, S, 3], FramePrompt [L, B, O], ids [L, B], valid [L, B]) of one chunk
    and the updated `started` [B, O] flags."""
    images = np.zeros((chunk, batch, s, s, 3), np.float32)
    ids = np.zeros((chunk, batch), np.int32)
    valid = np.zeros((chunk, batch), bool)
    has_mask = np.zeros((chunk, batch, o_pad), bool)
    masks = np.zeros((chunk, batch, o_pad, s, s), np.float32)
    track = np.zeros((chunk, batch, o_pad), bool)
    started = started.copy()
    for b, frames in enumerate(steps):
        if not frames:
            continue
        n = len(frames)
        images[:n, b] = requests[b].frames.frames(frames)
        ids[:, b] = frames + [frames[-1]] * (chunk - n)
        valid[:n, b] = True
        for i, f in enumerate(frames):
            for o, m in requests[b].mask_prompts.get(f, {}).items():
                has_mask[i, b, o] = True
                masks[i, b, o] = prompt_mask_at_model_size(m, s)
                started[b, o] = True
            track[i, b] = started[b]
    any_mask = bool(has_mask.any())  # chunks without mask prompts skip the mask inputs
    prompts = FramePrompt(
        point_coords=np.zeros((chunk, batch, o_pad, 1, 2), np.float32),
        point_labels=-np.ones((chunk, batch, o_pad, 1), np.int32),
        is_init_cond=has_mask,
        as_cond=has_mask,
        track=track,
        mask=masks if any_mask else None,
        has_mask=has_mask if any_mask else None,
    )
    return (images, prompts, ids, valid), started


def _chunk_outputs(requests, steps, outputs):
    low_res, scores = (np.asarray(x) for x in outputs)
    for b, frames in enumerate(steps):
        n = requests[b].num_objects
        for i, f in enumerate(frames):
            yield b, f, low_res[i, b, :n], scores[i, b, :n, 0]
