"""`memory_probe`: the read-out and targets are what they say, and on the untrained model of
`train.py` the probe finds what README reports: the mask in the memory, and decoded from it by
`memory_path_init` with the fitted decoder read-out, not by the plain random init."""

import numpy as np

from sam2_jax import config as config_lib
from sam2_jax.eval.run import SYNTHETIC_VAL_SEEDS
from sam2_jax.train import memory_probe as mp
from sam2_jax.train import static_frame
from sam2_jax.train.run import DEFAULT_CONFIG, initial_model

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
    fractions = static_frame.sub_block_fractions(masks, grid=2)
    expected = np.zeros((1, 8, 8))
    expected[0, 0, 0], expected[0, 7, 7] = 0.5, 1.0
    np.testing.assert_array_equal(fractions, expected)


def test_the_untrained_model_decodes_the_mask_from_memory():
    small = [f"clip.image_size={SIZE}", "init_read_out_clips=4"]
    model_size = (
        f"model_overrides=('image_size={SIZE}', 'tracking.memory_dtype=float32', "
        "'multimask_output_for_tracking=False')"
    )
    models = {
        scheme: initial_model(cfg, cfg.model_overrides)
        for scheme in ("memory_path", "")
        for cfg in [config_lib.load(DEFAULT_CONFIG, [*small, model_size, f"init_scheme={scheme}"])]
    }
    stages = static_frame.static_stages(
        models[""], np.zeros((SIZE, SIZE, 3), np.uint8), np.ones((2, SIZE, SIZE), bool)
    )
    h = SIZE // 16
    assert stages.memory.shape[:3] == stages.conditioned.shape[:3] == (2, h, h)
    assert stages.decoder_src.shape[:3] == (2, h, h)
    assert stages.upscaled.shape[:3] == stages.logits.shape == (2, 4 * h, 4 * h)
    result = mp.probe(models["memory_path"], SEEDS)
    print(f"probe J, untrained default model: {result}")
    # measured: memory 0.71, decoder 0.26, block average 0.62 (128 px, 8 x 8 tokens); the plain
    # random init: memory 0.21, decoder 0.0 (README, Training)
    assert result["memory"] > result["block average"] > 0  # finer than the token grid
    assert result["decoder"] > 0.15
