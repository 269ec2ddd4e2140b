"""The jitted train step: sharded over 8 devices (data x fsdp x model) equals one device; a
non-finite loss never reaches the parameters; frozen modules keep their weights."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec
from train_oracle import NO_DROPOUT

from sam2_jax import build_sam2
from sam2_jax.data.synthetic import synthetic_video
from sam2_jax.train.forward import TrainBatch
from sam2_jax.train.losses import LossConfig
from sam2_jax.train.prompts import PromptConfig, sample_plan
from sam2_jax.train.sharding import batch_sharding, make_mesh, partition_specs, shardings
from sam2_jax.train.step import init_state, jit_train_step

SIZE, FRAMES, CLIPS = 128, 2, 4
TOL = 2e-5  # fp32; the sharded program sums gradients in another order
PROMPTS = PromptConfig(
    prob_to_use_pt_input=1.0, num_init_cond_frames=1, num_frames_to_correct=2,
    rand_frames_to_correct=False, num_correction_pt_per_frame=2,
)  # fmt: skip


@pytest.fixture(scope="module")
def setup():
    # No dropout: micro-batches (accumulation) would draw other dropout masks.
    model = build_sam2("sam2.1_test_tiny", overrides=[f"image_size={SIZE}", *NO_DROPOUT], seed=1)
    # Plain SGD: Adam's first step is ~sign(g), which turns fp32 noise in near-zero gradients
    # into lr-sized parameter differences; SGD keeps the comparison at gradient precision.
    tx = optax.sgd(1e-4)
    clips = [synthetic_video(s, FRAMES, SIZE, SIZE, num_objects=1) for s in range(CLIPS)]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    images = np.stack([(c.frames / 255.0 - mean) / std for c in clips]).astype(np.float32)
    masks = np.stack([(c.labels == 1)[:, None] for c in clips])  # [B, T, 1, S, S]
    batch = TrainBatch(images, masks, np.ones((CLIPS, 1), bool))
    flat = np.moveaxis(masks, 2, 1).reshape(CLIPS, FRAMES, SIZE, SIZE).swapaxes(0, 1)
    plan = sample_plan(np.random.default_rng(0), np.random.default_rng(1), flat, PROMPTS)
    return model, tx, batch, plan


@pytest.fixture(scope="module")
def single(setup):
    """The single-device step (compiled once per plan structure) and the initial state."""
    model, tx, _, _ = setup
    step = jit_train_step(model.module, tx, LossConfig(), PROMPTS.max_cond_frames(FRAMES))
    return step, init_state(model.params["params"], tx, seed=0)


def test_sharded_step_equals_single_device(setup, single):
    model, tx, batch, plan = setup
    args = (model.module, tx, LossConfig(), PROMPTS.max_cond_frames(FRAMES))
    single, state0 = single
    ref_state, ref_metrics = single(jax.tree.map(jnp.copy, state0), batch, plan)

    mesh = make_mesh(data=2, fsdp=2, model=2)
    specs = partition_specs(state0, mesh, fsdp_min_size=2**12)
    leaves = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, PartitionSpec))
    assert any("fsdp" in tuple(s) for s in leaves)
    state_sharding = shardings(state0, mesh, fsdp_min_size=2**12)
    sharded = jit_train_step(*args, state_sharding, batch_sharding(mesh))
    state = jax.device_put(jax.tree.map(jnp.copy, state0), state_sharding)
    new_state, metrics = sharded(state, jax.device_put(batch, batch_sharding(mesh)), plan)

    for key in ("core_loss", "loss_mask", "grad_norm"):
        ref, got = float(ref_metrics[key]), float(metrics[key])
        print(f"{key}: single {ref:.6f} sharded {got:.6f}")
        assert abs(ref - got) <= TOL * abs(ref), key
    diffs = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), ref_state.params,
                         new_state.params)  # fmt: skip
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), ref_state.params,
                         state0.params)  # fmt: skip
    print("max param difference", max(jax.tree.leaves(diffs)))
    assert max(jax.tree.leaves(moved)) > 1e-3, "the step did not move the parameters"
    assert max(jax.tree.leaves(diffs)) <= 1e-6
    assert int(new_state.step) == 1


def test_non_finite_loss_skips_the_update(setup, single):
    _, _, batch, plan = setup
    step, state0 = single
    bad = batch.replace(images=np.full_like(batch.images, np.nan))
    state, metrics = step(jax.tree.map(jnp.copy, state0), bad, plan)
    assert not bool(metrics["finite"])
    same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), state.params, state0.params)
    assert all(jax.tree.leaves(same)) and int(state.step) == 1


def _explicit_clicks(plan, seed: int = 3):
    """The plan with its correction clicks given (micro-batches draw them with other keys)."""
    rng = np.random.default_rng(seed)
    shape = (FRAMES, PROMPTS.num_correction_pt_per_frame, CLIPS)
    return plan.replace(
        correction_coords=rng.uniform(0, SIZE - 1, (*shape, 2)).round().astype(np.float32),
        correction_labels=rng.integers(0, 2, shape).astype(np.int32),
    )


@pytest.fixture(scope="module")
def reference(setup, single):
    """The single-device fp32 step on the plan with explicit clicks: (state, metrics)."""
    _, _, batch, plan = setup
    step, state0 = single
    return step(jax.tree.map(jnp.copy, state0), batch, _explicit_clicks(plan))


def test_gradient_accumulation_equals_the_full_batch(setup, single, reference):
    model, tx, batch, plan = setup
    full, full_metrics = reference
    step = jit_train_step(
        model.module, tx, LossConfig(), PROMPTS.max_cond_frames(FRAMES), accum_steps=2
    )
    accum, accum_metrics = step(jax.tree.map(jnp.copy, single[1]), batch, _explicit_clicks(plan))
    for key in ("core_loss", "loss_mask", "loss_dice", "loss_iou"):
        ref, got = float(full_metrics[key]), float(accum_metrics[key])
        assert abs(ref - got) <= TOL * abs(ref), (key, ref, got)
    diffs = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), full.params, accum.params)
    assert max(jax.tree.leaves(diffs)) <= 1e-6


def test_bfloat16_compute_keeps_fp32_params_and_state(setup, single, reference):
    """dtype=bfloat16: params and optimizer state stay fp32; loss and update stay close to the
    fp32 step's (bf16 has 8 mantissa bits: ~1% on the loss, update direction cosine > 0.9)."""
    _, tx, batch, plan = setup
    ref, ref_metrics = reference
    state0 = single[1]
    bf16 = build_sam2(
        "sam2.1_test_tiny", overrides=[f"image_size={SIZE}", "dtype=bfloat16", *NO_DROPOUT],
        seed=1,
    )  # fmt: skip
    step = jit_train_step(bf16.module, tx, LossConfig(), PROMPTS.max_cond_frames(FRAMES))
    new, metrics = step(jax.tree.map(jnp.copy, state0), batch, _explicit_clicks(plan))
    assert {x.dtype for x in jax.tree.leaves(new)} <= {jnp.dtype("float32"), jnp.dtype("int32"),
                                                       jnp.dtype("uint32")}  # fmt: skip
    loss, ref_loss = float(metrics["core_loss"]), float(ref_metrics["core_loss"])
    assert abs(loss - ref_loss) <= 0.02 * ref_loss, (loss, ref_loss)
    flat = lambda s: jnp.concatenate(  # noqa: E731
        [(a - b).ravel() for a, b in zip(jax.tree.leaves(s.params), jax.tree.leaves(state0.params))]
    )
    d, d_ref = flat(new), flat(ref)
    cosine = float(d @ d_ref / (jnp.linalg.norm(d) * jnp.linalg.norm(d_ref)))
    assert cosine > 0.9, cosine


def test_frozen_modules_keep_their_weights(setup, reference):
    """frozen=("image_encoder",): same loss, the image encoder bitwise unchanged under AdamW
    (weight decay included), every other module updated."""
    model, _, batch, plan = setup
    tx = optax.adamw(1e-3, weight_decay=0.1)
    state0 = init_state(model.params["params"], tx, seed=0)
    step = jit_train_step(
        model.module, tx, LossConfig(), PROMPTS.max_cond_frames(FRAMES), frozen=("image_encoder",)
    )
    state, metrics = step(jax.tree.map(jnp.copy, state0), batch, _explicit_clicks(plan))
    assert float(metrics["core_loss"]) == pytest.approx(float(reference[1]["core_loss"]), rel=TOL)
    for name, params in state.params.items():
        same = jax.tree.map(jnp.array_equal, params, state0.params[name])
        if name == "image_encoder":
            assert all(jax.tree.leaves(same)), name
        else:
            assert not all(jax.tree.leaves(same)), name
