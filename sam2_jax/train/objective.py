"""The training objective of a batch: the tracked predictions scored by the official loss
(<- `training/loss_fns.py::MultiStepMultiMasksAndIous` applied to `SAM2Train.forward`'s
outputs, as `training/trainer.py` does).

Losses are computed on the high-resolution masks, the low-res logits upsampled to the input size
(bilinear, as `_forward_sam_heads`), one frame at a time under `jax.checkpoint`, so the
full-size masks of every step are never all held at once (they are recomputed for the
gradient).
"""

from typing import Any

import jax
import jax.numpy as jnp

from sam2_jax.models.sam2 import SAM2
from sam2_jax.ops.interpolate import resize
from sam2_jax.train.forward import (
    MASK_OUT_BIAS,
    MASK_OUT_SCALE,
    FramePredictions,
    TrainBatch,
    clip_forward,
)
from sam2_jax.train.losses import LossConfig, frame_losses
from sam2_jax.train.prompts import PromptPlan


def _frame_terms(pred: FramePredictions, target, object_valid, num_objects, config):
    k, n, m, s, _ = pred.masks.shape
    size = target.shape[-1]
    high = resize(pred.masks.reshape(k * n * m, 1, s, s), (size, size), "bilinear")
    high = high.reshape(k, n, m, size, size)
    given = target.astype(jnp.float32) * MASK_OUT_SCALE + MASK_OUT_BIAS
    high = high.at[0, :, 0].set(jnp.where(pred.mask_input, given, high[0, :, 0]))
    return frame_losses(
        high,
        pred.ious,
        pred.object_score_logits,
        pred.valid,
        object_valid,
        target,
        num_objects,
        config,
        multimask=pred.multimask,
    )


def prediction_losses(
    predictions: FramePredictions,
    batch: TrainBatch,
    plan: PromptPlan,
    config: LossConfig,
) -> dict[str, jax.Array]:
    """Loss terms of `clip_forward`'s predictions (leading [T] in processing order), summed over
    frames and steps; divided by the number of real objects (`batch.object_valid`)."""
    b, t, o = batch.masks.shape[:3]
    targets = jnp.moveaxis(batch.masks, 2, 1).reshape(b * o, t, *batch.masks.shape[3:])
    targets = jnp.moveaxis(targets, 1, 0)[jnp.asarray(plan.order)]  # [T, N, S, S] processing
    object_valid = batch.object_valid.reshape(-1)
    num_objects = jnp.sum(object_valid).astype(jnp.float32)
    terms = jax.checkpoint(_frame_terms, static_argnums=(4,))

    def frame(totals, xs):
        pred, target = xs
        out = terms(pred, target, object_valid, num_objects, config)
        return jax.tree.map(jnp.add, totals, out), None

    zero = {k: jnp.zeros((), jnp.float32) for k in ("loss_mask", "loss_dice", "loss_iou",
                                                      "loss_class", "core_loss")}  # fmt: skip
    totals, _ = jax.lax.scan(frame, zero, (predictions, targets))
    return totals


def batch_loss(
    module: SAM2,
    params: Any,
    batch: TrainBatch,
    plan: PromptPlan,
    key: jax.Array,
    max_cond_frames: int,
    config: LossConfig,
    deterministic: bool = False,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(core loss, all terms) of a batch: `clip_forward` then `prediction_losses`."""
    predictions = clip_forward(module, params, batch, plan, key, max_cond_frames, deterministic)
    terms = prediction_losses(predictions, batch, plan, config)
    return terms["core_loss"], terms
