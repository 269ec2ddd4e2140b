"""Loss and gradient parity with the official trainer (`SAM2Train` + `MultiStepMultiMasksAndIous`,
run as OFFICIAL_SAM2_NOTES §9 describes): same random weights, same clip, same prompts.

The official decisions come from its `np.random.default_rng(42)`; ours from the same generator
through `sample_plan`, so the plans agree. Clicks and boxes (torch's RNG in the official) are
drawn by us and fed to the official by patching the samplers `training.model.sam2` imported.
Dropout is 0 on both sides. Reduced Hiera (sam2.1 test_tiny = tiny yaml with stages 1,1,2,1) at
128 px, 3 frames, 2 objects.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from oracle import build_official, save_official_checkpoint
from train_oracle import (
    NO_DROPOUT,
    TEST_TINY,
    official_batch,
    official_criterion,
    official_train_overrides,
    patch_official_samplers,
    synthetic_clip,
)

from sam2_jax import build_sam2
from sam2_jax.train.forward import TrainBatch
from sam2_jax.train.losses import LossConfig
from sam2_jax.train.objective import batch_loss
from sam2_jax.train.prompts import PromptConfig, sample_plan

SIZE, FRAMES, CLICKS = 128, 3, 3
TOL_REL = 1e-4  # fp32 on both sides; near-zero logits can flip a few pixels of the IoU target
CASES = {
    "mask": PromptConfig(prob_to_use_pt_input=0.0, num_init_cond_frames=1),
    "click": PromptConfig(prob_to_use_pt_input=1.0, prob_to_use_box_input=0.0),
    "box": PromptConfig(prob_to_use_pt_input=1.0, prob_to_use_box_input=1.0),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Official SAM2Train per case (same weights) and our model from its checkpoint."""
    official = {
        name: build_official(
            "sam2.1_hiera_t",
            image_size=SIZE,
            apply_postprocessing=False,
            extra_overrides=official_train_overrides(cfg, NO_DROPOUT + TEST_TINY),
            object_score_bias=None,
        )
        for name, cfg in CASES.items()
    }
    path = tmp_path_factory.mktemp("ckpt") / "t.pt"
    save_official_checkpoint(official["mask"], path)
    ours = build_sam2(
        "sam2.1_test_tiny", path, [f"image_size={SIZE}", *NO_DROPOUT], apply_postprocessing=False
    )
    return official, ours


@pytest.fixture(scope="module")
def loss_and_grad(models):
    _, ours = models
    cfg = CASES["click"]

    def loss(params, batch, plan):
        return batch_loss(
            ours.module, params, batch, plan, jax.random.key(0),
            cfg.max_cond_frames(FRAMES), LossConfig(), deterministic=True,
        )  # fmt: skip

    return jax.jit(jax.value_and_grad(loss, has_aux=True))


@pytest.mark.parametrize("case", list(CASES))
def test_loss_terms_and_gradient_norm_equal_the_official_trainer(
    case, models, loss_and_grad, monkeypatch
):
    official_models, ours = models
    official = official_models[case]
    official.load_state_dict(official_models["mask"].state_dict())
    config = CASES[case]
    images, masks = synthetic_clip(5, FRAMES, SIZE, 2)
    plan = sample_plan(np.random.default_rng(42), np.random.default_rng(7), masks, config)
    rng = np.random.default_rng(3)
    shape = (FRAMES, config.num_correction_pt_per_frame, masks.shape[1])
    plan = plan.replace(
        correction_coords=rng.uniform(0, SIZE - 1, (*shape, 2)).round().astype(np.float32),
        correction_labels=rng.integers(0, 2, shape).astype(np.int32),
    )
    queue = patch_official_samplers(monkeypatch.setattr, plan, config)

    official.train()
    outputs = official(official_batch(images, masks))
    assert not queue, "the official trainer consumed fewer clicks than planned"
    ref = official_criterion()(outputs, torch.from_numpy(masks))
    ref["core_loss"].backward()
    ref_norm = torch.sqrt(
        sum(p.grad.pow(2).sum() for p in official.parameters() if p.grad is not None)
    )

    batch = TrainBatch(images[None], masks[None], np.ones((1, masks.shape[1]), bool))
    (_, terms), grads = loss_and_grad(ours.params, batch, plan)
    norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))
    for key in ("loss_mask", "loss_dice", "loss_iou", "loss_class", "core_loss"):
        ours_v, ref_v = float(terms[key]), float(ref[key])
        print(f"{case} {key}: ours {ours_v:.6f} official {ref_v:.6f}")
        assert abs(ours_v - ref_v) <= TOL_REL * max(abs(ref_v), 1e-6), key
    print(f"{case} grad norm: ours {float(norm):.6f} official {float(ref_norm):.6f}")
    assert float(ref_norm) > 0
    assert abs(float(norm) - float(ref_norm)) <= TOL_REL * float(ref_norm)
