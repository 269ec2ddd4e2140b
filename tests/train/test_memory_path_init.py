"""`memory_path_init`: exactly the documented changes, and the object reaches the
memory-conditioned features (two objects' masks on one frame give features that differ more
than with the plain random init)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam2_jax import build_sam2
from sam2_jax.data.synthetic import synthetic_video
from sam2_jax.models.sam2 import SAM2
from sam2_jax.train import memory_path_init as mpi
from sam2_jax.transforms import IMAGE_MEAN, IMAGE_STD

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


def _object_spread(model, params) -> float:
    """rms over positions of the difference between the memory-conditioned features of frame 1
    for two objects' frame-0 masks, relative to the features' rms."""
    video = synthetic_video(100000, 2, SIZE, SIZE, num_objects=2)
    images = jnp.asarray(((video.frames / 255.0 - IMAGE_MEAN) / IMAGE_STD).astype(np.float32))
    masks = jnp.asarray(np.stack([video.labels[0] == i for i in (1, 2)]), jnp.float32)
    variables = {"params": params}
    apply = lambda *a, **k: model.module.apply(variables, *a, **k)  # noqa: E731
    backbone = apply(images, method=SAM2.forward_image)
    raw = backbone.vision_features
    memory = apply(
        jnp.repeat(raw[:1], 2, 0), masks * 20 - 10, jnp.full((2, 1), 10.0), jnp.zeros(2, bool),
        method=SAM2.encode_memory,
    )  # fmt: skip
    memory = memory.reshape(2, -1, memory.shape[-1])
    pos = apply(method=SAM2.maskmem_pos_enc) + apply(
        jnp.int32(model.config.num_maskmem - 1), method=SAM2.memory_tpos
    )
    conditioned = apply(
        jnp.repeat(raw[1:], 2, 0), backbone.vision_pos_enc[-1][0], memory,
        jnp.broadcast_to(pos, memory.shape), jnp.ones(memory.shape[:2], bool), 0,
        method=SAM2.condition_on_memory,
    )  # fmt: skip
    rms = lambda x: float(jnp.sqrt(jnp.mean(jnp.square(x))))  # noqa: E731
    return rms(conditioned[0] - conditioned[1]) / rms(conditioned)


def test_the_object_reaches_the_conditioned_features(model):
    plain = _object_spread(model, model.params["params"])
    init = _object_spread(model, mpi.memory_path_init(model.params["params"], 1))
    print(f"two objects' conditioned features differ by {plain:.3f} (plain), {init:.3f} (init)")
    assert init > 3 * plain
