"""sam2_jax.train.losses vs the official `training/loss_fns.py::MultiStepMultiMasksAndIous`.

The official loss runs on the official output format (a list over frames of dicts holding one
[N, M, H, W] tensor per prediction step, M = 3 on multimask steps and 1 otherwise), built from
the same random numbers as our padded arrays. Our arrays add a padded frame, a padded object,
padded steps and unused mask slots, all filled with finite garbage that must not count.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from training.loss_fns import MultiStepMultiMasksAndIous

from sam2_jax.train.losses import (
    LossConfig,
    clip_losses,
    dice_loss,
    frame_losses,
    sigmoid_focal_loss,
)

LOSS_RTOL = 1e-5  # fp32; the two sides differ only in summation order and sigmoid/BCE rounding
GRAD_RTOL = 1e-4  # elementwise, fp32 gradients through sigmoid, focal modulation, dice ratios
KEYS = ("loss_mask", "loss_dice", "loss_iou", "loss_class", "core_loss")

H = W = 32
K = 8  # 1 initial prediction + 7 correction clicks
M = 3
N_REAL = 3
N = N_REAL + 1  # one padded object
# Per real frame, the mask count of each step, as SAM2Train produces them:
#   frame 0: one click (multimask), then 7 corrections (single mask);
#   frame 1: tracked frame (multimask_output_for_tracking: one multimask step);
#   frame 2: mask input (`_use_mask_as_output`: one single-mask step);
#   frame 3: box input (2 points: single mask), then 7 corrections.
FRAME_STEPS = ((3, 1, 1, 1, 1, 1, 1, 1), (3,), (1,), (1, 1, 1, 1, 1, 1, 1, 1))
T_REAL = len(FRAME_STEPS)
T = T_REAL + 1  # one padded frame
# (frame, object) pairs whose target is empty: gates mask/dice/iou, class target 0.
EMPTY = ((0, 2), (1, 1), (3, 1), (3, 2))


@dataclasses.dataclass(frozen=True)
class Case:
    """Padded inputs of `clip_losses` (NumPy) and their official counterparts (torch)."""

    pred_masks: np.ndarray  # [T, K, N, M, H, W] f32
    pred_ious: np.ndarray  # [T, K, N, M] f32
    scores: np.ndarray  # [T, K, N, 1] f32
    step_valid: np.ndarray  # [T, K] bool
    multimask: np.ndarray  # [T, K] bool
    object_valid: np.ndarray  # [N] bool
    targets: np.ndarray  # [T, N, H, W] bool
    frame_valid: np.ndarray  # [T] bool


def make_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    targets = np.zeros((T, N, H, W), bool)
    for t in range(T):
        for n in range(N):
            cy, cx = rng.uniform(6, H - 6, 2)
            ry, rx = rng.uniform(3, 10, 2)
            targets[t, n] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    for t, n in EMPTY:
        targets[t, n] = False
    # Logits loosely following the target with a random sharpness per mask, so the best mask
    # differs between objects and steps, plus a few saturated pixels (|logit| = 60).
    sign = np.where(targets, 1.0, -1.0)[:, None, :, None]
    sharpness = rng.uniform(-1.0, 3.0, (T, K, N, M, 1, 1))
    pred_masks = sign * sharpness + rng.normal(0.0, 2.0, (T, K, N, M, H, W))
    saturated = rng.random(pred_masks.shape) < 0.01
    pred_masks = np.where(saturated, 60.0 * rng.choice([-1.0, 1.0], pred_masks.shape), pred_masks)
    pred_ious = rng.uniform(0.0, 1.0, (T, K, N, M))
    scores = rng.normal(0.0, 3.0, (T, K, N, 1))
    step_valid = np.zeros((T, K), bool)
    multimask = np.zeros((T, K), bool)
    for t, steps in enumerate(FRAME_STEPS):
        step_valid[t, : len(steps)] = True
        multimask[t, : len(steps)] = np.array(steps) > 1
    return Case(
        pred_masks=pred_masks.astype(np.float32),
        pred_ious=pred_ious.astype(np.float32),
        scores=scores.astype(np.float32),
        step_valid=step_valid,
        multimask=multimask,
        object_valid=np.arange(N) < N_REAL,
        targets=targets,
        frame_valid=np.arange(T) < T_REAL,
    )


def official_inputs(case: Case, requires_grad: bool = False):
    """`outs_batch` (list over frames of `multistep_*` dicts) and `targets_batch` [T, N, H, W]."""
    outs, leaves = [], []
    for t, steps in enumerate(FRAME_STEPS):
        masks, ious, scores = [], [], []
        for k, m in enumerate(steps):
            leaf = torch.tensor(case.pred_masks[t, k, :N_REAL, :m], requires_grad=requires_grad)
            leaves.append(((t, k, m), leaf))
            masks.append(leaf)
            ious.append(torch.tensor(case.pred_ious[t, k, :N_REAL, :m]))
            scores.append(torch.tensor(case.scores[t, k, :N_REAL]))
        outs.append(
            {
                "multistep_pred_multimasks_high_res": masks,
                "multistep_pred_ious": ious,
                "multistep_object_score_logits": scores,
            }
        )
    targets = torch.tensor(case.targets[:T_REAL, :N_REAL])
    return outs, targets, leaves


def official_loss(config: LossConfig) -> MultiStepMultiMasksAndIous:
    return MultiStepMultiMasksAndIous(
        weight_dict=config.weights(),
        focal_alpha=config.focal_alpha,
        focal_gamma=config.focal_gamma,
        supervise_all_iou=config.supervise_all_iou,
        iou_use_l1_loss=config.iou_use_l1_loss,
        pred_obj_scores=config.pred_obj_scores,
        focal_gamma_obj_score=config.focal_gamma_obj_score,
        focal_alpha_obj_score=config.focal_alpha_obj_score,
    )


def ours(case: Case, config: LossConfig, pred_masks=None) -> dict[str, jax.Array]:
    return clip_losses(
        case.pred_masks if pred_masks is None else pred_masks,
        case.pred_ious,
        case.scores,
        case.step_valid,
        case.object_valid,
        case.targets,
        case.frame_valid,
        N_REAL,
        config,
        multimask=case.multimask,
    )


def assert_losses_close(got: dict, want: dict) -> None:
    for key in KEYS:
        expected = float(want[key])
        assert expected != 0.0, key  # every term is exercised
        np.testing.assert_allclose(float(got[key]), expected, rtol=LOSS_RTOL, err_msg=key)


CONFIGS = {
    "mose_yaml": LossConfig(),
    # Argmin IoU, MSE, other focal parameters, focal class loss with alpha and gamma.
    "variant": LossConfig(
        weight_mask=5.0,
        weight_dice=2.0,
        weight_iou=0.5,
        weight_class=3.0,
        focal_alpha=0.6,
        focal_gamma=1.5,
        supervise_all_iou=False,
        iou_use_l1_loss=False,
        focal_gamma_obj_score=2.0,
        focal_alpha_obj_score=0.25,
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_clip_losses_match_official(name):
    config = CONFIGS[name]
    case = make_case(seed=0)
    outs, targets, _ = official_inputs(case)
    with torch.no_grad():
        want = official_loss(config)(outs, targets)
    assert_losses_close(ours(case, config), want)


def test_no_object_scores_matches_official():
    # pred_obj_scores=False: no gating and a zero class loss (the official `loss_class` tensor).
    config = LossConfig(pred_obj_scores=False)
    case = make_case(seed=1)
    outs, targets, _ = official_inputs(case)
    with torch.no_grad():
        want = official_loss(config)(outs, targets)
    got = ours(case, config)
    assert float(want["loss_class"]) == 0.0 and float(got["loss_class"]) == 0.0
    for key in ("loss_mask", "loss_dice", "loss_iou", "core_loss"):
        np.testing.assert_allclose(float(got[key]), float(want[key]), rtol=LOSS_RTOL, err_msg=key)


@pytest.mark.parametrize("frame", [0, 1, 2, 3])
def test_frame_losses_match_official_forward_of_one_frame(frame):
    config = LossConfig()
    case = make_case(seed=2)
    outs, targets, _ = official_inputs(case)
    with torch.no_grad():
        want = official_loss(config)._forward(outs[frame], targets[frame], float(N_REAL))
    got = frame_losses(
        case.pred_masks[frame],
        case.pred_ious[frame],
        case.scores[frame],
        case.step_valid[frame],
        case.object_valid,
        case.targets[frame],
        N_REAL,
        config,
        multimask=case.multimask[frame],
    )
    for key in KEYS:
        np.testing.assert_allclose(float(got[key]), float(want[key]), rtol=LOSS_RTOL, err_msg=key)


def test_multimask_steps_pick_different_masks():
    # The case must exercise the argmin: on multimask steps the best slot is not always 0.
    case = make_case(seed=0)
    config = LossConfig()
    logits = jnp.asarray(case.pred_masks)
    tgt = jnp.asarray(case.targets, jnp.float32)[:, None, :, None]
    focal = sigmoid_focal_loss(logits, tgt, N_REAL, config.focal_alpha, config.focal_gamma)
    combo = config.weight_mask * focal + config.weight_dice * dice_loss(logits, tgt, N_REAL)
    best = np.asarray(jnp.argmin(combo, axis=-1))[case.multimask][:, :N_REAL]
    assert set(best.ravel().tolist()) == {0, 1, 2}


def test_gradient_matches_official_autograd():
    config = LossConfig()
    case = make_case(seed=3)
    outs, targets, leaves = official_inputs(case, requires_grad=True)
    official_loss(config)(outs, targets)["core_loss"].backward()
    want = np.zeros_like(case.pred_masks)
    for (t, k, m), leaf in leaves:
        want[t, k, :N_REAL, :m] = leaf.grad.numpy()

    got = np.asarray(jax.grad(lambda pm: ours(case, config, pm)["core_loss"])(case.pred_masks))
    # Padded frames, steps, objects and unused slots get exactly zero gradient.
    assert np.all(got[want == 0] == 0)
    assert np.count_nonzero(want) > 0
    np.testing.assert_allclose(got, want, rtol=GRAD_RTOL, atol=0.0)


def test_jit_matches_eager_and_grad_is_finite():
    config = LossConfig()
    case = make_case(seed=4)
    args = (
        case.pred_masks,
        case.pred_ious,
        case.scores,
        case.step_valid,
        case.object_valid,
        case.targets,
        case.frame_valid,
        jnp.float32(N_REAL),  # traced, e.g. object_valid.sum() inside a train step
    )
    jitted = jax.jit(clip_losses, static_argnames="config")
    got = jitted(*args, config=config, multimask=case.multimask)
    want = clip_losses(*args, config=config, multimask=case.multimask)
    for key in KEYS:
        np.testing.assert_allclose(float(got[key]), float(want[key]), rtol=1e-6, err_msg=key)
    grads = jax.jit(jax.grad(lambda *a: clip_losses(*a, config, case.multimask)["core_loss"]))(
        *args
    )
    assert np.isfinite(np.asarray(grads)).all()


def test_num_objects_is_clamped_and_divides_every_term():
    # Official forward: num_objects = clamp(mean over ranks of N, min=1); every term is a sum of
    # per-object values divided by it, so doubling it halves every term.
    case = make_case(seed=5)
    config = LossConfig()
    base = clip_losses(
        case.pred_masks, case.pred_ious, case.scores, case.step_valid, case.object_valid,
        case.targets, case.frame_valid, 1.0, config, multimask=case.multimask,
    )  # fmt: skip
    for num_objects, factor in ((0.0, 1.0), (0.5, 1.0), (2.0, 0.5)):
        got = clip_losses(
            case.pred_masks, case.pred_ious, case.scores, case.step_valid, case.object_valid,
            case.targets, case.frame_valid, num_objects, config, multimask=case.multimask,
        )  # fmt: skip
        for key in KEYS:
            np.testing.assert_allclose(
                float(got[key]), factor * float(base[key]), rtol=1e-6, err_msg=key
            )


def test_multimask_none_uses_every_slot():
    # multimask=None: every step's M slots are predictions, the official M = 3 on every step.
    case = make_case(seed=6)
    case = dataclasses.replace(case, multimask=np.ones((T, K), bool))
    outs, targets, _ = official_inputs(case)
    for t in range(T_REAL):
        n_steps = len(FRAME_STEPS[t])
        outs[t]["multistep_pred_multimasks_high_res"] = [
            torch.tensor(case.pred_masks[t, k, :N_REAL]) for k in range(n_steps)
        ]
        outs[t]["multistep_pred_ious"] = [
            torch.tensor(case.pred_ious[t, k, :N_REAL]) for k in range(n_steps)
        ]
    config = LossConfig()
    with torch.no_grad():
        want = official_loss(config)(outs, targets)
    got = clip_losses(
        case.pred_masks, case.pred_ious, case.scores, case.step_valid, case.object_valid,
        case.targets, case.frame_valid, N_REAL, config,
    )  # fmt: skip
    assert_losses_close(got, want)


def test_wrong_rank_is_a_value_error():
    case = make_case(seed=0)
    with pytest.raises(ValueError, match="pred_masks"):
        ours(case, LossConfig(), case.pred_masks[0])
