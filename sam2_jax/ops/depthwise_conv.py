"""Depthwise 2-D convolution whose kernel gradient costs what the convolution costs.

XLA lowers the kernel gradient of a grouped convolution (`feature_group_count` = channels) as a
dense convolution with a [k, k, C, C] result: C times the work (on CPU, the memory encoder's 7x7
depthwise convs took 90% of a training step). Here the forward is the same
`lax.conv_general_dilated` as `nn.Conv(feature_group_count=C)`, the input gradient its own
transpose, and the kernel gradient k² shifted products: dK[i, j, c] = sum_{b, y, x}
x_pad[b, y + i, x + j, c] * g[b, y, x, c], accumulated in f32.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(1, 1),
        padding=((padding, padding), (padding, padding)),
        dimension_numbers=_DIMENSIONS,
        feature_group_count=x.shape[-1],
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def depthwise_conv2d(x: jax.Array, kernel: jax.Array, padding: int) -> jax.Array:
    """x [B, H, W, C], kernel [k, k, 1, C] -> [B, H', W', C] (stride 1, symmetric `padding`)."""
    return _conv(x, kernel, padding)


def _forward(x, kernel, padding):
    return _conv(x, kernel, padding), (x, kernel)


def _backward(padding, residuals, g):
    x, kernel = residuals
    _, x_vjp = jax.vjp(lambda x: _conv(x, kernel, padding), x)
    (dx,) = x_vjp(g)
    k = kernel.shape[0]
    height, width = g.shape[1:3]
    x_pad = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    x_pad, g32 = x_pad.astype(jnp.float32), g.astype(jnp.float32)
    rows = [
        jnp.stack(
            [
                jnp.einsum("bhwc,bhwc->c", x_pad[:, i : i + height, j : j + width], g32)
                for j in range(k)
            ]
        )
        for i in range(k)
    ]
    return dx, jnp.stack(rows)[:, :, None].astype(kernel.dtype)


depthwise_conv2d.defvjp(_forward, _backward)


class DepthwiseConv(nn.Module):
    """`nn.Conv(features=C, kernel_size=(k, k), feature_group_count=C, padding=p)` with the same
    params (`kernel` [k, k, 1, C], `bias` [C]) and the cheap kernel gradient above."""

    kernel_size: int
    padding: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> [B, H + 2 p - k + 1, W + 2 p - k + 1, C]."""
        c, k = x.shape[-1], self.kernel_size
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, 1, c), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (c,), jnp.float32)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        return depthwise_conv2d(x, kernel, self.padding) + bias
