"""`init_params`: random params depend on the seed only, not on the image size or compute dtype
(so one compiled init serves them all)."""

import jax
import numpy as np

from sam2_jax import config as config_lib
from sam2_jax.build import init_params


def test_params_depend_on_neither_image_size_nor_compute_dtype():
    def params(seed: int, *overrides: str):
        return init_params(config_lib.load("sam2.1_test_tiny", overrides), seed)

    small = params(2, "image_size=128")
    large_bf16 = params(2, "image_size=256", "dtype=bfloat16")
    same = jax.tree.map(lambda a, b: a.dtype == b.dtype == np.float32 and np.array_equal(a, b),
                        small, large_bf16)  # fmt: skip
    assert all(jax.tree.leaves(same))
    other_seed = params(3, "image_size=128")
    assert not np.array_equal(other_seed["sam_mask_decoder"]["iou_token"]["embedding"],
                              small["sam_mask_decoder"]["iou_token"]["embedding"])  # fmt: skip
