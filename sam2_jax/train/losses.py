"""SAM 2 training loss on padded arrays.

Counterpart: `training/loss_fns.py` of the official trainer (`sigmoid_focal_loss`, `dice_loss`,
`iou_loss`, `MultiStepMultiMasksAndIous`), with the defaults of
`sam2/configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml`.

The official loss reads Python lists: one dict per frame, holding one [N, M, H, W] tensor per
prediction step. M is 3 for a multimask step and 1 otherwise. Here the same data are padded
arrays, so the loss runs under `jit`:

- steps: a K axis with `step_valid` [K] bool. K is 1 + the number of correction clicks
  (1 + 7 in the recipe). Padded steps add nothing.
- masks per step: one M axis for all steps. `multimask` [K] bool says whether all M masks of
  a step are real predictions (a multimask step). When it is False only slot 0 is real (the
  official M = 1 tensor), and slots 1..M-1 are ignored. `multimask=None` means every step
  uses all M slots. With M = 1 the flag has no effect.
- objects: an N axis with `object_valid` [N] bool. Padded objects add nothing, and no class
  loss either.
- frames (`clip_losses`): a T axis with `frame_valid` [T] bool.

Padded entries may hold any finite values; they get zero loss and zero gradient.

Per step, object and mask slot (all divided by `num_objects`):
- focal: mean over pixels of BCE * (1 - p_t)^gamma * alpha_t;
- dice: 1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1) with p = sigmoid(logits);
- IoU: |pred_iou - IoU(logits > 0, target)| (squared with `iou_use_l1_loss=False`), the
  union clamped to >= 1.
A multimask step keeps focal and dice at argmin over M of weight_mask * focal + weight_dice *
dice (first index on ties, as `torch.argmin`), and the IoU loss averaged over M
(`supervise_all_iou`) or at that argmin. With `pred_obj_scores`, the three losses are gated by
1[target non-empty] and the class loss is the sigmoid focal loss (alpha -1: no alpha_t) of the
object score against that indicator, averaged over its last axis (size 1), divided by
`num_objects`. It is not gated. Every term is summed over objects, steps and frames;
`core_loss` = sum of weight * term over the terms with a non-zero weight.

`num_objects` is clamped to >= 1, as in `MultiStepMultiMasksAndIous.forward`. The official
value is the per-rank object count (the second axis of the targets) averaged over ranks; with
one process it is the number of objects in the batch.
"""

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss weights and options. The defaults are the official sam2.1 MOSE fine-tune YAML."""

    weight_mask: float = 20.0
    weight_dice: float = 1.0
    weight_iou: float = 1.0
    weight_class: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    supervise_all_iou: bool = True
    iou_use_l1_loss: bool = True
    pred_obj_scores: bool = True
    focal_gamma_obj_score: float = 0.0
    focal_alpha_obj_score: float = -1.0

    def weights(self) -> dict[str, float]:
        """The official `weight_dict`: loss key -> weight."""
        return {
            "loss_mask": self.weight_mask,
            "loss_dice": self.weight_dice,
            "loss_iou": self.weight_iou,
            "loss_class": self.weight_class,
        }


def _focal_elementwise(
    logits: jax.Array, targets: jax.Array, alpha: float, gamma: float
) -> jax.Array:
    """Unreduced sigmoid focal loss; logits and targets (in [0, 1]) broadcast together."""
    bce = jax.nn.softplus(logits) - logits * targets  # BCE with logits, stable form
    if gamma == 0:
        loss = bce  # (1 - p_t)^0 = 1, also where 1 - p_t = 0 (torch: 0 ** 0 = 1)
    else:
        prob = jax.nn.sigmoid(logits)
        one_minus_p_t = 1 - (prob * targets + (1 - prob) * (1 - targets))
        exponent = int(gamma) if float(gamma).is_integer() else gamma
        loss = bce * one_minus_p_t**exponent
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def sigmoid_focal_loss(
    logits: jax.Array,
    targets: jax.Array,
    num_objects: jax.Array | float,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> jax.Array:
    """Focal loss per mask, averaged over pixels and divided by `num_objects`.

    The official `sigmoid_focal_loss(..., loss_on_multimask=True)`.
    logits: [..., H, W] f32; targets: [..., H, W] in {0, 1}, broadcastable to logits.
    Returns [...] f32.
    """
    loss = _focal_elementwise(logits, targets, alpha, gamma)
    return jnp.mean(loss, axis=(-2, -1)) / num_objects


def dice_loss(logits: jax.Array, targets: jax.Array, num_objects: jax.Array | float) -> jax.Array:
    """Dice loss per mask, divided by `num_objects`.

    The official `dice_loss(..., loss_on_multimask=True)`.
    logits: [..., H, W] f32; targets: [..., H, W] in {0, 1}, broadcastable to logits.
    Returns [...] f32.
    """
    prob = jax.nn.sigmoid(logits)
    targets = jnp.broadcast_to(targets, prob.shape)
    numerator = 2 * jnp.sum(prob * targets, axis=(-2, -1))
    denominator = jnp.sum(prob, axis=(-2, -1)) + jnp.sum(targets, axis=(-2, -1))
    return (1 - (numerator + 1) / (denominator + 1)) / num_objects


def iou_loss(
    logits: jax.Array,
    targets: jax.Array,
    pred_ious: jax.Array,
    num_objects: jax.Array | float,
    use_l1_loss: bool = False,
) -> jax.Array:
    """IoU-prediction loss per mask, divided by `num_objects`.

    The official `iou_loss(..., loss_on_multimask=True)`. The actual IoU is that of
    (logits > 0) and (targets > 0), with the union clamped to >= 1; no gradient reaches
    `logits`.
    logits: [..., H, W] f32; targets: [..., H, W], broadcastable to logits;
    pred_ious: [...] f32. Returns [...] f32, |pred - actual| or (pred - actual)^2.
    """
    pred = logits > 0
    gt = targets > 0
    area_i = jnp.sum(pred & gt, axis=(-2, -1)).astype(jnp.float32)
    area_u = jnp.sum(pred | gt, axis=(-2, -1)).astype(jnp.float32)
    actual_ious = area_i / jnp.maximum(area_u, 1.0)
    diff = pred_ious - actual_ious
    loss = jnp.abs(diff) if use_l1_loss else jnp.square(diff)
    return loss / num_objects


def _reduce(losses: dict[str, jax.Array], config: LossConfig) -> jax.Array:
    """`MultiStepMultiMasksAndIous.reduce_loss`: weighted sum over the non-zero weights."""
    core = jnp.zeros((), jnp.float32)
    for key, weight in config.weights().items():
        if weight != 0:
            core = core + losses[key] * weight
    return core


def frame_losses(
    pred_masks: jax.Array,
    pred_ious: jax.Array,
    object_score_logits: jax.Array,
    step_valid: jax.Array,
    object_valid: jax.Array,
    target_masks: jax.Array,
    num_objects: jax.Array | float,
    config: LossConfig = LossConfig(),
    multimask: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Losses of one frame, summed over its valid prediction steps (`_forward`).

    pred_masks: [K, N, M, H, W] f32 mask logits (high-res); pred_ious: [K, N, M] f32 predicted
    IoUs; object_score_logits: [K, N, 1] f32; step_valid: [K] bool; object_valid: [N] bool;
    target_masks: [N, H, W] bool; num_objects: scalar, clamped to >= 1; multimask: [K] bool,
    whether all M slots of a step are predictions (False: only slot 0), None = all True.
    Returns f32 scalars "loss_mask", "loss_dice", "loss_iou", "loss_class", "core_loss".
    """
    pred_masks = jnp.asarray(pred_masks, jnp.float32)
    if pred_masks.ndim != 5:
        raise ValueError(f"pred_masks must be [K, N, M, H, W], got shape {pred_masks.shape}")
    pred_ious = jnp.asarray(pred_ious, jnp.float32)
    object_score_logits = jnp.asarray(object_score_logits, jnp.float32)
    num_slots = pred_masks.shape[2]
    num_objects = jnp.maximum(jnp.asarray(num_objects, jnp.float32), 1.0)
    step_valid = jnp.asarray(step_valid, bool)
    object_valid = jnp.asarray(object_valid, bool)
    multimask = jnp.ones(step_valid.shape, bool) if multimask is None else jnp.asarray(multimask)
    target_masks = jnp.asarray(target_masks) > 0
    targets = target_masks.astype(jnp.float32)[None, :, None]  # [1, N, 1, H, W]

    focal = sigmoid_focal_loss(
        pred_masks, targets, num_objects, config.focal_alpha, config.focal_gamma
    )  # [K, N, M]
    dice = dice_loss(pred_masks, targets, num_objects)
    iou = iou_loss(pred_masks, targets, pred_ious, num_objects, config.iou_use_l1_loss)

    # Slots that hold a prediction: all M on multimask steps, slot 0 otherwise.
    real_slot = multimask[:, None, None] | (jnp.arange(num_slots) == 0)  # [K, 1, M]
    combo = jnp.where(real_slot, focal * config.weight_mask + dice * config.weight_dice, jnp.inf)
    best = jnp.argmin(combo, axis=-1)[..., None]  # [K, N, 1], first minimum as torch
    loss_mask = jnp.take_along_axis(focal, best, axis=-1)[..., 0]  # [K, N]
    loss_dice = jnp.take_along_axis(dice, best, axis=-1)[..., 0]
    loss_iou = jnp.take_along_axis(iou, best, axis=-1)[..., 0]
    if config.supervise_all_iou and num_slots > 1:
        loss_iou = jnp.where(multimask[:, None], jnp.mean(iou, axis=-1), loss_iou)

    valid = step_valid[:, None] & object_valid[None, :]  # [K, N]
    if config.pred_obj_scores:
        target_obj = jnp.any(target_masks, axis=(-2, -1))  # [N]
        gate = valid & target_obj[None, :]
        class_elem = _focal_elementwise(
            object_score_logits,
            target_obj.astype(jnp.float32)[None, :, None],
            config.focal_alpha_obj_score,
            config.focal_gamma_obj_score,
        )  # [K, N, 1]
        loss_class = jnp.sum(jnp.where(valid, jnp.mean(class_elem, axis=-1), 0.0)) / num_objects
    else:
        gate = valid
        loss_class = jnp.zeros((), jnp.float32)

    losses = {
        "loss_mask": jnp.sum(jnp.where(gate, loss_mask, 0.0)),
        "loss_dice": jnp.sum(jnp.where(gate, loss_dice, 0.0)),
        "loss_iou": jnp.sum(jnp.where(gate, loss_iou, 0.0)),
        "loss_class": loss_class,
    }
    losses["core_loss"] = _reduce(losses, config)
    return losses


def clip_losses(
    pred_masks: jax.Array,
    pred_ious: jax.Array,
    object_score_logits: jax.Array,
    step_valid: jax.Array,
    object_valid: jax.Array,
    target_masks: jax.Array,
    frame_valid: jax.Array,
    num_objects: jax.Array | float,
    config: LossConfig = LossConfig(),
    multimask: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Losses of a clip, summed over its valid frames (`MultiStepMultiMasksAndIous.forward`).

    pred_masks: [T, K, N, M, H, W] f32; pred_ious: [T, K, N, M] f32; object_score_logits:
    [T, K, N, 1] f32; step_valid: [T, K] bool; object_valid: [N] bool; target_masks:
    [T, N, H, W] bool; frame_valid: [T] bool; num_objects: scalar, clamped to >= 1;
    multimask: [T, K] bool or None (see `frame_losses`).
    Returns the `frame_losses` keys, each an f32 scalar summed over the valid frames.
    """
    if jnp.ndim(pred_masks) != 6:
        shape = jnp.shape(pred_masks)
        raise ValueError(f"pred_masks must be [T, K, N, M, H, W], got shape {shape}")
    step_valid = jnp.asarray(step_valid, bool)
    multimask = jnp.ones(step_valid.shape, bool) if multimask is None else jnp.asarray(multimask)

    def one_frame(masks, ious, scores, steps, targets, multi):
        return frame_losses(
            masks, ious, scores, steps, object_valid, targets, num_objects, config, multi
        )

    per_frame = jax.vmap(one_frame)(
        pred_masks, pred_ious, object_score_logits, step_valid, target_masks, multimask
    )
    frame_valid = jnp.asarray(frame_valid, bool)
    return {k: jnp.sum(jnp.where(frame_valid, v, 0.0)) for k, v in per_frame.items()}
