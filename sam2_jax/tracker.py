"""Tracking: one pure per-frame step and its `lax.scan` over a chunk of frames.

(<- `SAM2Base.track_step` / `_track_step` / `_prepare_memory_conditioned_features` /
`_encode_new_memory` and the per-frame loop of `SAM2VideoPredictor.propagate_in_video`.)

All objects of a video are a batch axis O; the image features of a frame are computed once and
shared. Prompts are data with per-object presence flags, so prompted and tracked frames, forward
and reverse, any frame index and any video length run through the same compiled program.
"""

from typing import Optional

import flax.struct
import jax
import jax.numpy as jnp

from sam2_jax.memory_bank import (
    MemoryBank,
    MemoryLayout,
    clear_radius,
    forget_recent,
    memory_layout,
    write_frame,
)
from sam2_jax.models.sam2 import NO_OBJ_SCORE, SAM2, BackboneOutput
from sam2_jax.ops.interpolate import resize


class FramePrompt(flax.struct.PyTreeNode):
    """Per-object inputs of one frame (O objects, P point slots, S = image size, s = S / 4).

    point_coords [O, P, 2] model-input pixels and point_labels [O, P]: user points first (a box
    is the label-2/3 corners), then -1 padding slots;
    is_init_cond [O]: prompted frame not tracked before (no memory attention);
    as_cond [O]: store this frame's memory as a conditioning frame;
    track [O]: run this object on this frame (False: output NO_OBJ_SCORE, bank unchanged);
    mask [O, S, S] {0, 1} mask prompt where has_mask [O] (None: no mask prompts);
    prev_logits [O, s, s] previous low-res logits as the dense prompt where has_prev [O] (None:
    no such input);
    forget_recent [O]: before this frame, drop the recent memories within
    `clear_non_cond_mem_around_input`'s radius (None: never).
    """

    point_coords: jax.Array
    point_labels: jax.Array
    is_init_cond: jax.Array
    as_cond: jax.Array
    track: jax.Array
    mask: Optional[jax.Array] = None
    has_mask: Optional[jax.Array] = None
    prev_logits: Optional[jax.Array] = None
    has_prev: Optional[jax.Array] = None
    forget_recent: Optional[jax.Array] = None


class FrameOutput(flax.struct.PyTreeNode):
    """low_res_masks [O, s, s] logits; obj_ptr [O, C]; object_score_logits [O, 1];
    mem_feats [O, h, w, D] in the bank's storage dtype (or None when not requested)."""

    low_res_masks: jax.Array
    obj_ptr: jax.Array
    object_score_logits: jax.Array
    mem_feats: Optional[jax.Array] = None


def tracking_prompt(track: jax.Array, num_points: int = 1) -> FramePrompt:
    """Prompts that only track: track [..., O] bool (any leading axes, e.g. [L, O])."""
    false = jnp.zeros(track.shape, bool)
    return FramePrompt(
        point_coords=jnp.zeros((*track.shape, num_points, 2), jnp.float32),
        point_labels=-jnp.ones((*track.shape, num_points), jnp.int32),
        is_init_cond=false,
        as_cond=false,
        track=jnp.asarray(track, bool),
    )


def _first_used(use: jax.Array, count: int | None, *slots: jax.Array) -> tuple[jax.Array, ...]:
    """The first `count` used slots: use [O, N] and each of `slots` [O, N, ...] -> [O, count, ...]
    (used slots in slot order, then unused ones); unchanged when `count` is None or >= N."""
    if count is None or count >= use.shape[1]:
        return use, *slots
    index = jnp.argsort(~use, axis=1, stable=True)[:, :count]

    def take(x: jax.Array) -> jax.Array:
        return jnp.take_along_axis(x, index.reshape(index.shape + (1,) * (x.ndim - 2)), axis=1)

    return take(use), *map(take, slots)


def _assemble_memory(
    model: SAM2, bank: MemoryBank, layout: MemoryLayout, max_memories: int | None = None
):
    """[cond | recent] frame memories then pointer tokens, with positions and validity.

    `max_memories` (static) bounds the frames whose memories (and, separately, pointers) frame t
    can use; the attention then runs over that many slots, the used ones, instead of the whole
    bank (exact: unused slots are masked out). Returns memory/memory_pos [O, M, D] f32, valid
    [O, M] bool, number of pointer tokens.
    """
    c = model.cfg
    o, nc, hw, dm = bank.cond_feats.shape
    use, feats, tpos = _first_used(
        jnp.concatenate([layout.cond_use, layout.recent_use], axis=1),
        max_memories,
        jnp.concatenate([bank.cond_feats, bank.recent_feats], axis=1),
        jnp.concatenate([layout.cond_tpos, layout.recent_tpos], axis=1),
    )
    n = feats.shape[1]
    tpos = jnp.clip(tpos, 0, c.num_maskmem - 1)
    pos = model.maskmem_pos_enc()[None, None] + model.memory_tpos(tpos)[:, :, None, :]
    memory = feats.astype(jnp.float32).reshape(o, n * hw, dm)
    memory_pos = pos.reshape(o, n * hw, dm)
    valid = jnp.repeat(use, hw, axis=1)
    if not c.use_obj_ptrs_in_encoder:
        return memory, memory_pos, valid, 0
    ptr_use, ptrs, ptr_pos = _first_used(
        jnp.concatenate([layout.cond_ptr_use, layout.ptr_use], axis=1),
        max_memories,
        jnp.concatenate([bank.cond_ptr, bank.ptr], axis=1),  # [O, Np, C]
        jnp.concatenate([layout.cond_ptr_pos, layout.ptr_pos], axis=1),
    )
    split = ptrs.shape[-1] // dm  # each pointer is `split` tokens of mem_dim, pointer-major
    ptr_tokens = ptrs.reshape(o, -1, dm)
    ptr_pe = jnp.repeat(model.obj_ptr_pos(ptr_pos, layout.max_ptrs), split, axis=1)
    return (
        jnp.concatenate([memory, ptr_tokens], axis=1),
        jnp.concatenate([memory_pos, ptr_pe], axis=1),
        jnp.concatenate([valid, jnp.repeat(ptr_use, split, axis=1)], axis=1),
        ptr_tokens.shape[1],
    )


def use_multimask(cfg, num_points: jax.Array, is_init_cond: jax.Array) -> jax.Array:
    """`SAM2Base._use_multimask`: num_points, is_init_cond [...] -> [...] bool."""
    return (
        cfg.multimask_output_in_sam
        & (is_init_cond | cfg.multimask_output_for_tracking)
        & (num_points >= cfg.multimask_min_pt_num)
        & (num_points <= cfg.multimask_max_pt_num)
    )


def memory_stride(cfg, deterministic: bool) -> int:
    """Frames between strided memories: the official `1 if self.training else
    memory_temporal_stride_for_eval` (training runs non-deterministic)."""
    return cfg.memory_temporal_stride_for_eval if deterministic else 1


def condition_on_bank(
    model: SAM2,
    bank: MemoryBank,
    vision_features: jax.Array,
    vision_pos: jax.Array,
    t: jax.Array,
    num_frames: jax.Array,
    direction: jax.Array,
    deterministic: bool,
    max_memories: int | None = None,
) -> jax.Array:
    """Memory attention of frame t over what the bank holds for it (`SAM2.apply` method).

    vision_features [O, h, w, C], vision_pos [h, w, C] -> [O, h, w, C]. Pointers of future
    conditioning frames are used in training and dropped in evaluation (deterministic), as the
    official `only_obj_ptrs_in_the_past_for_eval`. `max_memories`: see `_assemble_memory`.
    """
    c = model.cfg
    layout = memory_layout(
        bank,
        t,
        num_frames,
        direction,
        num_maskmem=c.num_maskmem,
        max_obj_ptrs=c.max_obj_ptrs_in_encoder,
        max_cond_frames=c.max_cond_frames_in_attn,
        signed_ptr_pos=c.use_signed_tpos_enc_to_obj_ptrs,
        only_past_ptrs=c.only_obj_ptrs_in_the_past_for_eval and deterministic,
        stride=memory_stride(c, deterministic),
    )
    memory, memory_pos, memory_valid, n_ptr = _assemble_memory(model, bank, layout, max_memories)
    return model.condition_on_memory(
        vision_features, vision_pos, memory, memory_pos, memory_valid, n_ptr, deterministic
    )


def _track_step(
    model: SAM2,
    bank: MemoryBank,
    image: jax.Array,
    prompt: FramePrompt,
    t: jax.Array,
    num_frames: jax.Array,
    direction: jax.Array,
    frame_valid: jax.Array,
    return_memory: bool,
    deterministic: bool,
) -> tuple[FrameOutput, MemoryBank]:
    """One frame for all objects; runs inside `SAM2.apply` (see `track_frame`)."""
    bb = model.forward_image(image[None], deterministic=deterministic)
    return _track_features(
        model, bank, bb, prompt, t, num_frames, direction, frame_valid, return_memory, deterministic
    )


def _track_features(
    model: SAM2,
    bank: MemoryBank,
    bb: BackboneOutput,
    prompt: FramePrompt,
    t: jax.Array,
    num_frames: jax.Array,
    direction: jax.Array,
    frame_valid: jax.Array,
    return_memory: bool,
    deterministic: bool,
) -> tuple[FrameOutput, MemoryBank]:
    """`_track_step` on precomputed image features `bb` (batch 1)."""
    c = model.cfg
    o = prompt.track.shape[0]
    stride = memory_stride(c, deterministic)
    if prompt.forget_recent is not None:
        radius = clear_radius(c.num_maskmem, stride)
        bank = forget_recent(bank, t, radius, prompt.forget_recent & frame_valid)
    raw = jnp.broadcast_to(bb.vision_features, (o, *bb.vision_features.shape[1:]))
    high_res = tuple(jnp.broadcast_to(f, (o, *f.shape[1:])) for f in bb.backbone_fpn[:2])

    conditioned = condition_on_bank(
        model, bank, raw, bb.vision_pos_enc[-1][0], t, num_frames, direction, deterministic
    )
    no_mem = model.add_no_mem_embed(raw)
    pix = jnp.where(prompt.is_init_cond[:, None, None, None], no_mem, conditioned)

    num_points = jnp.sum(prompt.point_labels >= 0, axis=1)
    multimask = use_multimask(c, num_points, prompt.is_init_cond)
    if prompt.prev_logits is None:
        s = 4 * raw.shape[1]
        prev, has_prev = jnp.zeros((o, s, s), jnp.float32), jnp.zeros((o,), bool)
    else:
        prev, has_prev = prompt.prev_logits, prompt.has_prev
    heads = model.track_sam_heads(
        pix,
        prompt.point_coords,
        prompt.point_labels,
        prev,
        has_prev,
        high_res,
        multimask,
        deterministic,
    )
    low_res, obj_ptr, score = heads.low_res_masks, heads.obj_ptr, heads.object_score_logits
    has_mask = jnp.zeros((o,), bool) if prompt.mask is None else prompt.has_mask
    if prompt.mask is not None and c.use_mask_input_as_output_without_sam:
        use_mask = prompt.has_mask & prompt.track
        masked = model.use_mask_as_output(raw, high_res, prompt.mask)
        low_res = jnp.where(use_mask[:, None, None], masked.low_res_masks[:, 0], low_res)
        obj_ptr = jnp.where(use_mask[:, None], masked.obj_ptr, obj_ptr)
        score = jnp.where(use_mask[:, None], masked.object_score_logits, score)

    # Memory of this frame from the chosen mask upsampled to the model size (prompted frames are
    # binarised under `binarize_mask_from_pts_for_mem_enc`, as the official preflight does).
    high_res_mask = resize(low_res[:, None], (c.image_size, c.image_size), "bilinear")[:, 0]
    prompted = (num_points > 0) | has_mask
    binarize = prompted & c.binarize_mask_from_pts_for_mem_enc & deterministic
    mem = model.encode_memory(raw, high_res_mask, score, binarize, deterministic)
    mem = mem.astype(bank.cond_feats.dtype)
    write = prompt.track & frame_valid
    mem_tokens = mem.reshape(o, -1, mem.shape[-1])
    bank = write_frame(bank, t, mem_tokens, obj_ptr, prompt.as_cond, write, stride)
    out = FrameOutput(
        low_res_masks=jnp.where(prompt.track[:, None, None], low_res, NO_OBJ_SCORE),
        obj_ptr=obj_ptr,
        object_score_logits=jnp.where(prompt.track[:, None], score, NO_OBJ_SCORE),
        mem_feats=mem if return_memory else None,
    )
    return out, bank


def track_frame(
    module: SAM2,
    params,
    bank: MemoryBank,
    image: jax.Array,
    prompt: FramePrompt,
    t: jax.Array,
    num_frames: jax.Array,
    direction: jax.Array,
    frame_valid: jax.Array = True,
    return_memory: bool = False,
    deterministic: bool = True,
    rngs: Optional[dict] = None,
) -> tuple[FrameOutput, MemoryBank]:
    """Track all objects on frame t: image [S, S, 3] (normalised), prompt for O objects.

    Returns this frame's outputs and the bank with frame t written (where tracked and valid).
    """
    return module.apply(
        params,
        bank,
        image,
        prompt,
        jnp.asarray(t, jnp.int32),
        jnp.asarray(num_frames, jnp.int32),
        jnp.asarray(direction, jnp.int32),
        jnp.asarray(frame_valid, bool),
        return_memory,
        deterministic,
        method=_track_step,
        rngs=rngs,
    )


def track_chunk_fn(
    module: SAM2,
    params,
    banks: MemoryBank,
    images: jax.Array,
    prompts: FramePrompt,
    frame_ids: jax.Array,
    frame_valid: jax.Array,
    num_frames: jax.Array,
    direction: jax.Array,
    return_memory: bool = False,
) -> tuple[MemoryBank, FrameOutput]:
    """`track_frame` of B videos in lockstep under `lax.scan` over a chunk of L steps.

    banks: one bank per video, leading axis [B]; images [L, B, S, S, 3]; prompts with leading
    [L, B] axes; frame_ids, frame_valid [L, B]; num_frames, direction [B]. A video's padded
    frames (frame_valid False) leave its bank unchanged. A step where no video has a valid frame
    is skipped, and the mask-prompt path runs only on steps with a mask prompt; both decisions
    are taken for the whole batch (under `vmap` a per-video predicate would turn `lax.cond` into
    computing both branches, with the parameters broadcast per video).
    Returns the banks after the chunk and the stacked outputs [L, B, ...].
    """
    per_video = jax.vmap(
        lambda bank, image, prompt, t, n, d, valid: track_frame(
            module, params, bank, image, prompt, t, n, d, valid, return_memory
        )
    )

    def step(banks, xs):
        image, prompt, t, valid = xs

        def run(banks, prompt):
            out, banks = per_video(banks, image, prompt, t, num_frames, direction, valid)
            return banks, out

        def run_valid(banks):
            if prompt.mask is None:
                return run(banks, prompt)
            return jax.lax.cond(
                jnp.any(prompt.has_mask & prompt.track & valid[:, None]),
                lambda banks: run(banks, prompt),
                lambda banks: run(banks, prompt.replace(mask=None, has_mask=None)),
                banks,
            )

        def skip(banks):  # padding step: no compute, banks unchanged
            shapes = jax.eval_shape(run_valid, banks)[1]
            return banks, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)

        return jax.lax.cond(jnp.any(valid), run_valid, skip, banks)

    return jax.lax.scan(step, banks, (images, prompts, frame_ids, frame_valid))


def track_frame_features(
    module: SAM2,
    params,
    bank: MemoryBank,
    features: BackboneOutput,
    prompt: FramePrompt,
    t: jax.Array,
    num_frames: jax.Array,
    direction: jax.Array,
) -> tuple[FrameOutput, MemoryBank]:
    """`track_frame` on precomputed `SAM2.forward_image` features of one frame (batch 1)."""
    return module.apply(
        params,
        bank,
        features,
        prompt,
        jnp.asarray(t, jnp.int32),
        jnp.asarray(num_frames, jnp.int32),
        jnp.asarray(direction, jnp.int32),
        jnp.asarray(True),
        False,
        True,
        method=_track_features,
    )


track_chunk = jax.jit(
    track_chunk_fn, static_argnames=("module", "return_memory"), donate_argnames=("banks",)
)
