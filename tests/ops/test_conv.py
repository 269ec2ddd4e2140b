"""`Conv2d` (dense, depthwise and 1x1 as a matmul, with the cheap kernel gradient) equals
`nn.Conv` (the convolution it replaces): values and gradients, fp32."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam2_jax.ops.conv import Conv2d

TOL = 1e-5  # relative to the largest magnitude: f32 sums in other orders


def _assert_close(ours, ref):
    for o, r in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
        scale = float(jnp.abs(r).max())
        assert scale > 0
        assert float(jnp.abs(o - r).max()) <= TOL * scale


def _check(ours: nn.Module, ref: nn.Module, x: jax.Array) -> None:
    params = ref.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x)) == jax.tree.map(
        jnp.shape, params
    )
    weights = jax.random.normal(jax.random.key(2), ref.apply(params, x).shape)

    def loss(module):
        return lambda p, x: jnp.sum(module.apply(p, x) * weights)

    _assert_close(ours.apply(params, x), ref.apply(params, x))
    _assert_close(
        jax.grad(loss(ours), argnums=(0, 1))(params, x),
        jax.grad(loss(ref), argnums=(0, 1))(params, x),
    )


@pytest.mark.parametrize("kernel, stride, padding", [(7, 1, 3), (3, 1, 1), (3, 1, 0), (3, 2, 1)])
def test_depthwise_conv_equals_grouped_conv(kernel, stride, padding):
    x = jax.random.normal(jax.random.key(1), (2, 9, 11, 16))
    pad = ((padding, padding),) * 2
    ref = nn.Conv(16, (kernel, kernel), strides=stride, padding=pad, feature_group_count=16)
    _check(Conv2d(16, kernel, stride, padding, depthwise=True), ref, x)


# the model's dense convs: mask downsampler (3, 2, 1), patch embed (7, 4, 3), neck lateral
# (1, 1, 0), mask prompt downscaling (2, 2, 0); and odd sizes that leave input rows unread
@pytest.mark.parametrize("kernel, stride, padding", [(3, 2, 1), (7, 4, 3), (1, 1, 0), (2, 2, 0)])
@pytest.mark.parametrize("in_channels", [1, 5])
def test_dense_conv_equals_conv(kernel, stride, padding, in_channels):
    x = jax.random.normal(jax.random.key(1), (2, 13, 10, in_channels))
    ref = nn.Conv(8, (kernel, kernel), strides=stride, padding=((padding, padding),) * 2)
    _check(Conv2d(8, kernel, stride, padding), ref, x)


def test_depthwise_conv_keeps_channels():
    with pytest.raises(ValueError, match="depthwise conv keeps the channels: 16 in, 8 out"):
        Conv2d(8, 3, depthwise=True).init(jax.random.key(0), jnp.zeros((1, 5, 5, 16)))


def test_1x1_conv_is_a_matmul_equal_to_conv():
    x = jax.random.normal(jax.random.key(1), (2, 5, 6, 24))
    _check(Conv2d(12, 1), nn.Conv(12, (1, 1)), x)
    np.testing.assert_array_equal(Conv2d(12, 1).init(jax.random.key(0), x)["params"]["bias"], 0)
    hlo = jax.jit(Conv2d(12, 1).init_with_output).lower(jax.random.key(0), x).as_text()
    assert "convolution" not in hlo
