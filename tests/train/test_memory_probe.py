"""`memory_probe`: the read-out and targets are what they say, and on the untrained default
model the probe finds what README reports: the mask in the memory, carried past the memory
attention by `memory_path_init` and not by the plain random init."""

import dataclasses

import numpy as np

from sam2_jax import build_sam2
from sam2_jax.eval.run import SYNTHETIC_VAL_SEEDS
from sam2_jax.train import memory_probe as mp
from sam2_jax.train.memory_path_init import memory_path_init

SIZE = 128
SEEDS = SYNTHETIC_VAL_SEEDS[:4]


def test_ridge_read_out_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x_fit, x = rng.normal(size=(400, 6)) * 3 + 1, rng.normal(size=(50, 6)) * 3 + 1
    w, b = rng.normal(size=(6, 2)), rng.normal(size=2)
    pred = mp.ridge_read_out(x_fit, x_fit @ w + b, x)
    np.testing.assert_allclose(pred, x @ w + b, atol=1e-3)


def test_sub_block_fractions_average_each_sub_block():
    masks = np.zeros((1, 32, 32), bool)  # grid 2: an 8 x 8 map of 4 x 4 pixel sub-blocks
    masks[0, :4, :2] = True  # half of sub-block (0, 0)
    masks[0, 28:, 28:] = True  # all of sub-block (7, 7)
    fractions = mp.sub_block_fractions(masks, grid=2)
    expected = np.zeros((1, 8, 8))
    expected[0, 0, 0], expected[0, 7, 7] = 0.5, 1.0
    np.testing.assert_array_equal(fractions, expected)


def test_the_init_carries_the_mask_past_the_memory_attention():
    plain = build_sam2("sam2.1_test_tiny", None, [f"image_size={SIZE}"], seed=0)
    stages = mp.static_stages(
        plain, np.zeros((SIZE, SIZE, 3), np.uint8), np.ones((2, SIZE, SIZE), bool)
    )
    h = SIZE // 16
    assert stages.memory.shape[:3] == stages.conditioned.shape[:3] == (2, h, h)
    assert stages.upscaled.shape[:3] == stages.logits.shape == (2, 4 * h, 4 * h)
    heads = plain.config.memory_attention.layer.cross_attention.num_heads
    init = dataclasses.replace(
        plain, params={"params": memory_path_init(plain.params["params"], heads)}
    )
    with_init, without = mp.probe(init, SEEDS), mp.probe(plain, SEEDS)
    print(f"probe J, memory_path init: {with_init}\nplain init: {without}")
    # measured: memory 0.72 / 0.21, conditioned 0.57 / 0.06, block average 0.62 (128 px)
    assert with_init["memory"] > with_init["block average"] > 0  # finer than the token grid
    assert with_init["memory"] > without["memory"] + 0.3
    assert with_init["conditioned"] > without["conditioned"] + 0.3
