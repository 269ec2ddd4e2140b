"""`read_out_init`: the ridge fit and the index bookkeeping of the written decoder read-out
(that the untrained decoder's masks then follow the memory: tests/train/test_memory_probe.py)."""

import jax.numpy as jnp
import numpy as np

from sam2_jax.models.layers import gelu
from sam2_jax.models.mask_decoder import ConvTranspose2x2
from sam2_jax.train import read_out_init as roi


def test_fit_read_out_recovers_a_linear_map_through_a_constant_feature():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(500, 7)), np.ones((500, 1))], 1)
    w = rng.normal(size=(8, 3))
    np.testing.assert_allclose(roi.fit_read_out(x, x @ w + 0.5, l2=1e-6), w, atol=1e-4)


def test_the_upscalings_carry_each_sub_block_read_out_to_its_pixels():
    """Through both transposed convs and their GELUs (the LayerNorm aside), channel 0 minus
    channel 1 at pixel (4i + r, 4j + c) is src[i, j] @ w[:, 4r + c]."""
    rng = np.random.default_rng(1)
    c, h = 32, 3
    decoder = {
        "output_upscaling_0": {"kernel": jnp.asarray(rng.normal(size=(2, 2, c, c // 4))),
                               "bias": jnp.ones(c // 4)},
        "output_upscaling_3": {"kernel": jnp.asarray(rng.normal(size=(2, 2, c // 4, c // 8))),
                               "bias": jnp.ones(c // 8)},
    }  # fmt: skip
    w = rng.normal(size=(c, 16)) * 0.3
    roi._write_upscaling(decoder, w)
    src = jnp.asarray(rng.normal(size=(1, h, h, c)))
    x = gelu(ConvTranspose2x2(c // 4).apply({"params": decoder["output_upscaling_0"]}, src))
    x = gelu(ConvTranspose2x2(c // 8).apply({"params": decoder["output_upscaling_3"]}, x))
    read = np.asarray(x[0, ..., 0] - x[0, ..., 1])  # [4h, 4h]
    expected = np.einsum("ijc,ck->ijk", np.asarray(src[0]), w).reshape(h, h, 4, 4)
    np.testing.assert_allclose(
        read, expected.transpose(0, 2, 1, 3).reshape(4 * h, 4 * h), atol=1e-5
    )
