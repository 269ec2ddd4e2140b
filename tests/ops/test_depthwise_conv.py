"""The depthwise convolution with the cheap kernel gradient and `Conv1x1` equal `nn.Conv` (the
grouped / 1x1 convolution they replace): values and gradients, fp32."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam2_jax.models.layers import Conv1x1
from sam2_jax.ops.depthwise_conv import DepthwiseConv

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


@pytest.mark.parametrize("kernel, padding", [(7, 3), (3, 1), (3, 0)])
def test_depthwise_conv_equals_grouped_conv(kernel, padding):
    x = jax.random.normal(jax.random.key(1), (2, 9, 11, 16))
    ref = nn.Conv(16, (kernel, kernel), padding=((padding, padding),) * 2, feature_group_count=16)
    _check(DepthwiseConv(kernel, padding), ref, x)


def test_conv1x1_equals_conv():
    x = jax.random.normal(jax.random.key(1), (2, 5, 6, 24))
    _check(Conv1x1(12), nn.Conv(12, (1, 1)), x)
    np.testing.assert_array_equal(Conv1x1(12).init(jax.random.key(0), x)["params"]["bias"], 0)
