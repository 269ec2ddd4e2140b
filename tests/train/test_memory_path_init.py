"""`memory_path_init` changes exactly the documented weights (that the mask then reaches the
memory-conditioned features: tests/train/test_memory_probe.py)."""

import jax
import numpy as np
import pytest

from sam2_jax import build_sam2
from sam2_jax.train import memory_path_init as mpi

SIZE = 128


@pytest.fixture(scope="module")
def model():
    return build_sam2("sam2.1_test_tiny", overrides=[f"image_size={SIZE}"], seed=0)


def _flat(tree) -> dict[str, np.ndarray]:
    return {
        "/".join(str(k.key) for k in path): np.asarray(x)
        for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def test_changes_exactly_the_documented_weights(model):
    before = _flat(model.params["params"])
    after = _flat(mpi.memory_path_init(model.params["params"], memory_attention_heads=1))
    assert _flat(model.params["params"]).keys() == before.keys()  # input untouched
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    encoder, decoder = "memory_encoder/", "sam_mask_decoder/"
    expected = {
        encoder + "pix_feat_proj/kernel",
        encoder + "mask_downsampler/encoder_12/kernel",
        *(f"{decoder}conv_s{i}/kernel" for i in (0, 1)),
        *(f"memory_attention/layers_{i}/cross_attn_image/{p}_proj/bias"
          for i in range(4) for p in ("q", "k")),
        *(f"memory_attention/layers_{i}/{a}/out_proj/kernel"
          for i in range(4) for a in ("cross_attn_image", "self_attn")),
    }  # fmt: skip
    assert changed == expected  # the zero-initialised biases stay zero when scaled
    assert not after[encoder + "pix_feat_proj/kernel"].any()
    name = encoder + "mask_downsampler/encoder_12/kernel"
    np.testing.assert_allclose(after[name], before[name] * mpi.MASK_GAIN, rtol=1e-6)
    name = decoder + "conv_s0/kernel"
    np.testing.assert_allclose(after[name], before[name] * mpi.HIGH_RES_GAIN, rtol=1e-6)
    name = "memory_attention/layers_0/cross_attn_image/out_proj/kernel"
    np.testing.assert_allclose(after[name], before[name] * mpi.CROSS_GAIN, rtol=1e-6)
    assert not after["memory_attention/layers_0/self_attn/out_proj/kernel"].any()
    bias = after["memory_attention/layers_0/cross_attn_image/q_proj/bias"]
    local = np.r_[0:16, 128:144]  # first 8 complex pairs of the x and of the y half (D = 256)
    np.testing.assert_array_equal(bias[local], mpi.LOCAL_BIAS)
    assert not np.delete(bias, local).any()
