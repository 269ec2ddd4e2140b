"""`memory_path_init` changes exactly the documented weights, into the documented structure
(that the untrained model then tracks: tests/train/test_memory_probe.py)."""

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
        *(encoder + n for n in ("pix_feat_proj/kernel", "mask_downsampler/encoder_12/kernel",
                                "out_proj/kernel")),
        *(f"{decoder}conv_s{i}/kernel" for i in (0, 1)),
        *(f"memory_attention/layers_{i}/cross_attn_image/{p}"
          for i in range(4) for p in ("q_proj/kernel", "q_proj/bias", "k_proj/kernel",
                                      "k_proj/bias", "v_proj/kernel", "out_proj/kernel")),
        *(f"memory_attention/layers_{i}/self_attn/out_proj/kernel" for i in range(4)),
    }  # fmt: skip
    assert changed == expected  # the zero-initialised biases stay zero when scaled
    name = decoder + "conv_s0/kernel"
    np.testing.assert_allclose(after[name], before[name] * mpi.HIGH_RES_GAIN, rtol=1e-6)
    name = "memory_attention/layers_0/cross_attn_image/out_proj/kernel"
    np.testing.assert_allclose(after[name], before[name] * mpi.CROSS_GAIN, rtol=1e-6)
    assert not after["memory_attention/layers_0/self_attn/out_proj/kernel"].any()


def test_memory_is_image_half_then_mask_half(model):
    before = _flat(model.params["params"])
    after = _flat(mpi.memory_path_init(model.params["params"], memory_attention_heads=1))
    image = after["memory_encoder/pix_feat_proj/kernel"][0, 0]  # [C, C]
    name = "memory_encoder/mask_downsampler/encoder_12/kernel"
    mask = after[name][0, 0]
    out = after["memory_encoder/out_proj/kernel"][0, 0]  # [C, D]
    c, d = out.shape
    np.testing.assert_array_equal(
        image[:, : c // 2], before["memory_encoder/pix_feat_proj/kernel"][0, 0, :, : c // 2]
    )
    assert not image[:, c // 2 :].any() and not mask[:, : c // 2].any()
    np.testing.assert_allclose(
        mask[:, c // 2 :], before[name][0, 0, :, c // 2 :] * mpi.MASK_GAIN, rtol=1e-6
    )
    assert not out[c // 2 :, : d // 2].any() and not out[: c // 2, d // 2 :].any()


def test_cross_attention_compares_appearance_on_the_slow_rope_pairs(model):
    after = _flat(mpi.memory_path_init(model.params["params"], memory_attention_heads=1))
    image = after["memory_encoder/pix_feat_proj/kernel"][0, 0, :, :128]  # P_a [C, C/2]
    out = after["memory_encoder/out_proj/kernel"][0, 0, :128, :32]  # O_a [C/2, D/2]
    layer = "memory_attention/layers_2/cross_attn_image/"
    q, k, v = (after[f"{layer}{p}_proj/kernel"] for p in "qkv")
    slow = np.r_[64:128, 192:256]  # the last 32 complex pairs of the x and of the y half
    # q(x) . k(memory of f) = gain (x K) . (f K) on the slow dims, K normalised
    key = image @ out @ k[:32, slow]
    np.testing.assert_allclose(q[:, slow], mpi.APPEARANCE_GAIN * key, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.mean(np.sum(key**2, axis=0)), 1.0, rtol=1e-4)
    assert not k[32:, slow].any() and not np.delete(q, slow, axis=1).any()
    assert not v[:32].any() and v[32:].any()  # values read the mask half
    for p in "qk":
        bias = after[f"{layer}{p}_proj/bias"]
        local = np.r_[0:16, 128:144]  # first 8 complex pairs of the x and of the y half
        np.testing.assert_array_equal(bias[local], mpi.LOCAL_BIAS)
        assert not np.delete(bias, local).any()


def test_rope_dims_index_pairs_of_each_axis_half_of_each_head():
    np.testing.assert_array_equal(mpi.rope_dims(2, 8, 1, 1), [2, 3, 6, 7, 10, 11, 14, 15])
