"""The training forward of a batch of clips (<- `training/model/sam2.py::SAM2Train.forward`,
`forward_tracking`, `track_step`, `_iter_correct_pt_sampling`).

What differs from inference, as in the official trainer: image features of every frame first;
the initial conditioning frames are processed first, then the other frames in order; pointers of
future conditioning frames are attended (the evaluation-only past rule is off); memory is encoded
from the sigmoid of the mask (never binarised) and kept in fp32; on the frames to correct, an
inner loop of decoder passes adds one click at a time (drawn from the error of the previous
prediction, or given) with the previous low-res logits as the mask prompt; dropout and drop path
are active (rng "dropout"). The objects of all clips of the batch form one object axis N, as the
official batch does; every frame decision of the plan is shared by the batch, so the branches
below are real `lax.cond`s. Everything is one `lax.scan` over the processing order, so a batch
is one XLA program; the bank is the inference `MemoryBank`.
"""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from sam2_jax.memory_bank import capacity_bucket, empty_bank, num_recent_slots, write_frame
from sam2_jax.models.sam2 import SAM2
from sam2_jax.ops.interpolate import resize
from sam2_jax.tracker import condition_on_bank, memory_stride, use_multimask
from sam2_jax.train.prompts import PAD_LABEL, PromptPlan, sample_error_points

MASK_OUT_SCALE, MASK_OUT_BIAS = 20.0, -10.0  # `_use_mask_as_output`


class TrainBatch(flax.struct.PyTreeNode):
    """images [B, T, S, S, 3] f32 normalised; masks [B, T, O, S, S] bool; object_valid [B, O]."""

    images: jax.Array
    masks: jax.Array
    object_valid: jax.Array


class FramePredictions(flax.struct.PyTreeNode):
    """Every prediction of one frame for the loss, K = 1 + C steps (first pass, corrections).

    masks [K, N, 3, s, s] low-res logits (a single-mask step in slot 0, zeros after);
    ious [K, N, 3]; object_score_logits [K, N, 1]; multimask [K] bool (3 masks count, else
    only slot 0); valid [K] bool (steps that ran); mask_input [] bool: the frame's output is
    its ground-truth mask prompt (`_use_mask_as_output`), whose high-res logits are the mask
    scaled to +-10 at full size rather than the upsampled low-res ones.
    """

    masks: jax.Array
    ious: jax.Array
    object_score_logits: jax.Array
    multimask: jax.Array
    valid: jax.Array
    mask_input: jax.Array


class _Heads(flax.struct.PyTreeNode):
    """One decoder pass: the loss view (multi [N, 3, s, s], ious [N, 3], multimask []) and the
    chosen prediction (low_res [N, s, s], obj_ptr [N, C], score [N, 1])."""

    multi: jax.Array
    ious: jax.Array
    multimask: jax.Array
    low_res: jax.Array
    obj_ptr: jax.Array
    score: jax.Array


def _single(masks: jax.Array, ious: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One mask [N, s, s] and its IoU [N] into the 3-slot loss view."""
    multi = jnp.zeros((masks.shape[0], 3, *masks.shape[1:]), masks.dtype).at[:, 0].set(masks)
    return multi, jnp.zeros((ious.shape[0], 3), ious.dtype).at[:, 0].set(ious)


def _sam_heads(module, params, pix, coords, labels, prev, has_prev, high_res, is_init, rng):
    """`_forward_sam_heads` with the official multimask rule for these points."""
    num_points = jnp.sum(labels[0] >= 0)
    multimask = use_multimask(module.cfg, num_points, is_init)
    out = module.apply(
        params,
        pix,
        coords,
        labels,
        prev,
        jnp.broadcast_to(has_prev, prev.shape[:1]),
        high_res,
        jnp.broadcast_to(multimask, prev.shape[:1]),
        False,
        method=SAM2.track_sam_heads,
        rngs={"dropout": rng},
    )
    single_multi, single_ious = _single(out.all_masks[:, 0], out.all_ious[:, 0])
    multi = jnp.where(multimask, out.all_masks[:, 1:], single_multi)
    ious = jnp.where(multimask, out.all_ious[:, 1:], single_ious)
    return _Heads(multi, ious, multimask, out.low_res_masks, out.obj_ptr, out.object_score_logits)


def _mask_heads(module, params, raw, high_res, gt) -> _Heads:
    """`_use_mask_as_output` of the ground-truth masks gt [N, S, S]."""
    out = module.apply(params, raw, high_res, gt, method=SAM2.use_mask_as_output)
    multi, ious = _single(out.low_res_masks[:, 0], out.ious[:, 0])
    return _Heads(multi, ious, jnp.array(False), out.low_res_masks[:, 0], out.obj_ptr,
                  out.object_score_logits)  # fmt: skip


def clip_forward(
    module: SAM2,
    params: Any,
    batch: TrainBatch,
    plan: PromptPlan,
    key: jax.Array,
    max_cond_frames: int,
    deterministic: bool = False,
) -> FramePredictions:
    """Track every object of the batch through its clip with the plan's prompts.

    `max_cond_frames` bounds the conditioning frames of the plan (the bank's capacity, see
    `PromptConfig.max_cond_frames`). Returns the predictions stacked in processing order:
    FramePredictions with leading [T] (frame `plan.order[i]` at index i).
    `deterministic=True` turns dropout and drop path off.
    """
    cfg = module.cfg
    plan = jax.tree.map(jnp.asarray, plan)
    b, num_frames, s = batch.images.shape[:3]
    num_objects = batch.masks.shape[2]
    n = b * num_objects
    clicks = plan.sample_from_gt.shape[1]
    image_key, key = jax.random.split(key)
    bb = module.apply(
        params,
        batch.images.reshape(b * num_frames, s, s, 3),
        deterministic,
        method=SAM2.forward_image,
        rngs={"dropout": image_key},
    )

    def per_object(x: jax.Array, f: jax.Array) -> jax.Array:  # [B*T, ...] -> [N, ...] at f
        x = x.reshape(b, num_frames, *x.shape[1:])[:, f]
        return jnp.repeat(x, num_objects, axis=0)

    pos = bb.vision_pos_enc[-1][0]
    gt_all = jnp.moveaxis(batch.masks, 2, 1).reshape(b * num_objects, num_frames, s, s)
    h = bb.vision_features.shape[1]
    stride = memory_stride(cfg, deterministic)
    # A frame uses the memories and pointers of at most the T - 1 other frames: the attention
    # runs over that many slots (`max_memories`). Frame 0 is always a conditioning frame, so
    # at most T - 1 frames reach the recent rings, and frames 1 .. T - 1 take distinct slots of
    # rings of T - 1: no memory in reach is overwritten.
    clip_slots = max(num_frames - 1, 1)
    num_recent = num_recent_slots(cfg.num_maskmem, stride)
    bank = empty_bank(
        n,
        capacity_bucket(max_cond_frames),
        min(num_recent, clip_slots) if stride == 1 else num_recent,
        min(cfg.max_obj_ptrs_in_encoder - 1, clip_slots),
        h * h,
        cfg.memory_encoder.out_dim,
        cfg.image_encoder.neck.d_model,
        jnp.float32,
    )
    frames = jnp.int32(num_frames)

    def step(bank, i):
        f = plan.order[i]
        k_mem, k_heads, k_clicks, k_enc = jax.random.split(jax.random.fold_in(key, i), 4)
        raw = per_object(bb.vision_features, f)
        high_res = (per_object(bb.backbone_fpn[0], f), per_object(bb.backbone_fpn[1], f))
        gt = gt_all[:, f]
        is_init = plan.is_init_cond[f]
        pix = jax.lax.cond(
            is_init,
            lambda: module.apply(params, raw, method=SAM2.add_no_mem_embed),
            lambda: module.apply(
                params,
                bank,
                raw,
                pos,
                f,
                frames,
                jnp.int32(1),
                deterministic,
                max_memories=clip_slots,
                method=condition_on_bank,
                rngs={"dropout": k_mem},
            ),  # fmt: skip
        )
        with_points = is_init & plan.use_points
        coords = jnp.zeros((n, 2 + clicks, 2), jnp.float32).at[:, :2].set(plan.point_coords[f])
        labels = jnp.full((n, 2 + clicks), PAD_LABEL, jnp.int32)
        labels = labels.at[:, :2].set(jnp.where(with_points, plan.point_labels[f], PAD_LABEL))
        prev = jnp.zeros((n, 4 * h, 4 * h), jnp.float32)
        first = jax.lax.cond(
            is_init & ~plan.use_points,
            lambda: _mask_heads(module, params, raw, high_res, gt),
            lambda: _sam_heads(
                module, params, pix, coords, labels, prev, False, high_res, is_init, k_heads
            ),
        )

        def correct(carry, c):
            coords, labels, heads = carry
            pred = resize(heads.low_res[:, None], (s, s), "bilinear")[:, 0] > 0
            pred = jnp.where(plan.sample_from_gt[f, c], False, pred)
            if plan.correction_coords is None:
                point, label = sample_error_points(jax.random.fold_in(k_clicks, c), gt, pred)
            else:
                point, label = plan.correction_coords[f, c], plan.correction_labels[f, c]
            slot = jnp.sum(labels[0] >= 0)
            at = jnp.arange(labels.shape[1]) == slot
            coords = jnp.where(at[None, :, None], point[:, None], coords)
            labels = jnp.where(at[None], label[:, None], labels)
            heads = _sam_heads(
                module, params, pix, coords, labels, heads.low_res, True, high_res, is_init,
                jax.random.fold_in(k_heads, c + 1),
            )  # fmt: skip
            return (coords, labels, heads), heads

        def corrections():
            _, steps = jax.lax.scan(correct, (coords, labels, first), jnp.arange(clicks))
            return steps, jnp.ones(clicks, bool)

        def no_corrections():
            zeros = jax.tree.map(lambda x: jnp.zeros((clicks, *x.shape), x.dtype), first)
            return zeros, jnp.zeros(clicks, bool)

        steps, ran = jax.lax.cond(plan.correct[f], corrections, no_corrections)
        last = jax.tree.map(lambda a, z: jnp.where(plan.correct[f], z[-1], a), first, steps)
        high_res_mask = jnp.where(
            is_init & ~plan.use_points,
            gt * MASK_OUT_SCALE + MASK_OUT_BIAS,
            resize(last.low_res[:, None], (s, s), "bilinear")[:, 0],
        )
        mem = module.apply(
            params, raw, high_res_mask, last.score, jnp.zeros(n, bool), deterministic,
            method=SAM2.encode_memory, rngs={"dropout": k_enc},
        )  # fmt: skip
        bank = write_frame(
            bank,
            f,
            mem.reshape(n, -1, mem.shape[-1]),
            last.obj_ptr,
            jnp.broadcast_to(plan.as_cond[f], (n,)),
            jnp.ones(n, bool),
            stride,
        )
        all_steps = jax.tree.map(lambda a, z: jnp.concatenate([a[None], z]), first, steps)
        return bank, FramePredictions(
            masks=all_steps.multi,
            ious=all_steps.ious,
            object_score_logits=all_steps.score,
            multimask=all_steps.multimask,
            valid=jnp.concatenate([jnp.ones(1, bool), ran]),
            mask_input=is_init & ~plan.use_points,
        )

    _, predictions = jax.lax.scan(jax.checkpoint(step), bank, jnp.arange(num_frames))
    return predictions
