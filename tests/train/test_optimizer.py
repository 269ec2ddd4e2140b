"""sam2_jax.train.optimizer vs the official `training/optimizer.py::construct_optimizer`.

The official optimizer is built as the trainer builds it (`Trainer._construct_optimizers`): from
the `trainer.optim` section of sam2.1_hiera_b+_MOSE_finetune.yaml, loaded with OmegaConf, for the
official sam2.1 tiny (12 trunk blocks) with random weights. Its param groups give the expected lr
and weight decay of every official parameter, mapped to our tree path with the converter's
naming rules; its `step` with the YAML's `GradientClipper` gives the expected params.
"""

import copy
import math
from pathlib import Path

import hydra
import jax
import numpy as np
import optax
import pytest
import sam2
import torch
from omegaconf import OmegaConf
from oracle import state_dict_to_params
from training.optimizer import construct_optimizer
from training.utils.train_utils import register_omegaconf_resolvers

from sam2_jax import config as config_lib
from sam2_jax.build import abstract_params
from sam2_jax.checkpoint.naming import official_to_ours
from sam2_jax.train.optimizer import (
    OptimizerConfig,
    clip_by_global_norm_torch,
    global_grad_norm,
    learning_rate,
    lr_scales,
    make_optimizer,
    trainable,
    weight_decays,
)

FINETUNE_YAML = (
    Path(sam2.__file__).parent / "configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml"
)
FROZEN_PATH = "sam_prompt_encoder/pe_layer/positional_encoding_gaussian_matrix"
FROZEN_NAME = FROZEN_PATH.replace("/", ".")  # an official buffer
NUM_OFFICIAL_PARAMS = 470  # sam2.1 tiny named_parameters(); our tree adds the buffer above
# Our lr is f32 (cos, products), the official one a python float (measured 9e-8): ~1 f32 ulp.
LR_RTOL = 3e-7
# Params after the steps, per leaf, relative to max |param| (measured <= 6.8e-7 after step 3 at
# the test's lrs): f32 rounding, and mostly torch's f32 clip norm, ~1e-5 off the exact one over
# these 39M grads, whose clip coefficient changes the Adam update of elements with |g| ~ eps.
PARAM_RTOL = 1e-6
# Update (param change) per leaf relative to max |change| (measured <= 1e-3): the change is
# ~lr * scale ~ 2e-4 for the smallest trunk scales, read back from params up to ~1 whose f32
# ulp is ~1e-7.
DELTA_RTOL = 2e-3
# Clipped gradients and norms: f32 reductions over ~39M elements in different orders.
CLIP_RTOL = 1e-5
TOTAL_STEPS = 1000
# Params that get no gradient in step 2 of `test_steps_match_official` (weight-decayed ones,
# trunk and not, as a batch without boxes leaves the box corner embeddings).
UNUSED = (
    "sam_prompt_encoder.point_embeddings.2.weight",
    "sam_prompt_encoder.point_embeddings.3.weight",
    "image_encoder.trunk.blocks.3.mlp.layers.0.weight",
)


def official_optimizer(model: torch.nn.Module, base_lr: float = 0.0, vision_lr: float = 0.0):
    """(Optimizer, GradientClipper) of the fine-tune YAML; non-zero lrs replace `scratch.*`."""
    if not OmegaConf.has_resolver("divide"):
        register_omegaconf_resolvers()
    cfg = OmegaConf.load(FINETUNE_YAML)
    if base_lr:
        cfg.scratch.base_lr, cfg.scratch.vision_lr = base_lr, vision_lr
    optim = cfg.trainer.optim
    opt = construct_optimizer(model, optim.optimizer, optim.options, optim.param_group_modifiers)
    return opt, hydra.utils.instantiate(optim.gradient_clip)


def flat(tree) -> dict:
    return {
        "/".join(str(k.key) for k in path): v
        for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


@pytest.fixture(scope="module")
def our_params(official_t21):
    """Our param tree of the official tiny model; must have the real model's structure."""
    model, _ = official_t21
    params = state_dict_to_params(model.state_dict())
    cfg = config_lib.load("sam2.1_hiera_t", ("image_size=256",))
    assert jax.tree.structure(params) == jax.tree.structure(abstract_params(cfg))
    return params


def test_param_groups_match_official(official_t21, our_params):
    model, _ = official_t21
    opt, _ = official_optimizer(model)
    name_of = {id(p): n for n, p in model.named_parameters()}
    assert len(name_of) == NUM_OFFICIAL_PARAMS
    scales, decays = flat(lr_scales(our_params)), flat(weight_decays(our_params))
    assert len(scales) == NUM_OFFICIAL_PARAMS + 1
    cfg = OptimizerConfig()
    for where in (0.0, 0.3, 0.999):
        step = round(where * TOTAL_STEPS)
        opt.step_schedulers(where, step)
        group_lr = {v: float(learning_rate(step, TOTAL_STEPS, cfg, v)) for v in (False, True)}
        seen = set()
        for group, schedulers in zip(opt.optimizer.param_groups, opt.schedulers, strict=True):
            for p in group["params"]:
                name = name_of[id(p)]
                path, _ = official_to_ours(name, p.detach().numpy())
                seen.add(path)
                # Same float expression as the official modifier: exactly equal.
                assert scales[path] == schedulers["lr"].mult_val, name
                assert decays[path] == group["weight_decay"], name
                ours = group_lr[path.startswith("image_encoder/")] * scales[path]
                assert ours == pytest.approx(group["lr"], rel=LR_RTOL, abs=0), (name, where)
        assert seen == set(scales) - {FROZEN_PATH}
    assert scales[FROZEN_PATH] == 0.0 and decays[FROZEN_PATH] == 0.0
    assert not flat(trainable(our_params))[FROZEN_PATH]


def test_lr_scales_and_decays_by_hand(our_params):
    """Tiny: 12 blocks, so the modifier's num_layers is 13 and the scale is 0.9 ** (13 - id)."""
    scales, decays = flat(lr_scales(our_params)), flat(weight_decays(our_params))
    trunk = "image_encoder/trunk/"
    assert scales[trunk + "patch_embed/proj/kernel"] == pytest.approx(0.9**13)  # id 0
    assert scales[trunk + "blocks_0/attn/qkv/kernel"] == pytest.approx(0.9**12)  # id 1
    assert scales[trunk + "blocks_11/mlp/layers_1/bias"] == pytest.approx(0.9)  # id 12
    assert scales[trunk + "pos_embed"] == scales[trunk + "pos_embed_window"] == 1.0  # override
    assert scales["image_encoder/neck/convs_0/conv/kernel"] == 1.0  # outside the trunk
    assert decays[trunk + "blocks_0/norm1/scale"] == 0.0  # torch.nn.LayerNorm
    assert decays["sam_mask_decoder/output_upscaling_1/scale"] == 0.1  # LayerNorm2d
    assert decays["memory_encoder/fuser/layers_0/gamma"] == 0.1
    assert decays["sam_mask_decoder/iou_prediction_head/layers_0/bias"] == 0.0
    assert decays[trunk + "pos_embed"] == 0.1


def test_learning_rate_end_hold_and_warmup():
    cfg = OptimizerConfig()
    # where >= 1: the trainer skips the scheduler update, the last lr (step total-1) is kept.
    last = learning_rate(TOTAL_STEPS - 1, TOTAL_STEPS, cfg, False)
    assert float(learning_rate(TOTAL_STEPS, TOTAL_STEPS, cfg, False)) == float(last)
    assert float(learning_rate(5 * TOTAL_STEPS, TOTAL_STEPS, cfg, False)) == float(last)
    # Half way the cosine is at the midpoint of start and end.
    assert float(learning_rate(500, 1000, cfg, True)) == pytest.approx(0.5 * (3e-6 + 3e-7))
    # Linear warmup multiplier (step + 1) / warmup_steps: step 1 of 4 -> 2/4 of the cosine.
    warm = OptimizerConfig(warmup_steps=4)
    cosine = 5e-7 + 0.5 * (5e-6 - 5e-7) * (1 + math.cos(math.pi * 1 / 10))
    assert float(learning_rate(1, 10, warm, False)) == pytest.approx(0.5 * cosine, rel=LR_RTOL)
    assert float(learning_rate(4, 10, warm, False)) == float(learning_rate(4, 10, cfg, False))


@pytest.mark.parametrize("grad_scale", [1.0, 1e-4])  # clipped (norm ~60) and not (~0.006)
def test_clip_matches_torch(grad_scale):
    gen = torch.Generator().manual_seed(3)
    grads = [grad_scale * torch.randn(s, generator=gen) for s in ((64, 32), (32,), (3, 5, 7, 9))]
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm=0.1, norm_type=2)
    tree = {f"g{i}": jax.device_put(g.numpy()) for i, g in enumerate(grads)}
    assert float(global_grad_norm(tree)) == pytest.approx(float(norm), rel=CLIP_RTOL)
    clipped, _ = clip_by_global_norm_torch(0.1).update(tree, optax.EmptyState())
    for i, p in enumerate(params):
        np.testing.assert_allclose(clipped[f"g{i}"], p.grad.numpy(), rtol=CLIP_RTOL, atol=0)


def test_steps_match_official(official_t21, our_params):
    """Three AdamW steps on random grads: a clipped one, an unclipped one (norm < 0.1, where
    Adam's eps matters) and a clipped one; params compared after steps 1 and 3. In step 2 some
    params have no gradient (torch: `.grad` None, ours: zeros): torch leaves them alone (no
    moment decay, no weight decay, their own step count), and so must we.

    The lrs are 200x the recipe's (same layer decay, groups and weight decay) so that each step
    moves params by many f32 ulps and the comparison sees the update, not just the params.
    """
    model = copy.deepcopy(official_t21[0])
    base_lr, vision_lr, total = 1e-3, 6e-4, 10
    opt, clipper = official_optimizer(model, base_lr=base_lr, vision_lr=vision_lr)
    cfg = OptimizerConfig(
        base_lr=base_lr, base_lr_end=base_lr / 10, vision_lr=vision_lr, vision_lr_end=vision_lr / 10
    )
    params = jax.device_put(our_params)
    tx = make_optimizer(params, cfg, total)
    state = jax.jit(tx.init)(params)
    grad_norm = jax.jit(global_grad_norm)

    @jax.jit
    def apply(grads, state, params):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    gen = torch.Generator().manual_seed(1)
    # Per-element grad std; the global norm is ~6e3 x this over ~39M params.
    for step, grad_scale in enumerate((1e-3, 1e-6, 1e-2)):
        before = flat(params)
        grads = {n: grad_scale * torch.randn(t.shape, generator=gen) for n, t in
                 model.state_dict().items()}  # fmt: skip
        unused = UNUSED if step == 1 else ()
        for n in unused:
            grads[n] = torch.zeros_like(grads[n])
        # Ours first: torch clips the same grad tensors in place. Our grads include one for the
        # buffer: it must be ignored (norm and update).
        our_grads = state_dict_to_params(grads)
        # f64: torch's own f32 norm over ~10M-element tensors is off by up to ~1e-3.
        ref_norm = math.sqrt(
            sum(torch.linalg.vector_norm(p, dtype=torch.float64) ** 2 for p in grads.values())
            - torch.linalg.vector_norm(grads[FROZEN_NAME], dtype=torch.float64) ** 2
        )
        assert float(grad_norm(our_grads)) == pytest.approx(ref_norm, rel=CLIP_RTOL)
        params, state = jax.block_until_ready(apply(our_grads, state, params))

        for n, p in model.named_parameters():
            p.grad = None if n in unused else grads[n]
        opt.step_schedulers(step / total, step)
        clipper(model=model)
        opt.optimizer.step()
        if step not in (0, 2):
            continue
        ours, ref = flat(params), flat(state_dict_to_params(model.state_dict()))
        for path, r in ref.items():
            o, b = np.asarray(ours[path]), np.asarray(before[path])
            scale = np.abs(r).max()
            err = np.abs(o - r).max()
            assert err <= PARAM_RTOL * scale, (step, path, err / scale)
            d_ref, d_ours = r - b, o - b
            if path == FROZEN_PATH:
                assert not d_ours.any()
                continue
            d_err = np.abs(d_ours - d_ref).max() / np.abs(d_ref).max()
            assert d_err <= DELTA_RTOL, (step, path, d_err)
