"""2-D convolutions (dense or depthwise) that XLA:CPU runs at the speed of their arithmetic.

XLA:CPU's generic convolution kernels are slow for some of SAM 2's convolutions:
- depthwise (`feature_group_count` = channels): the forward runs at ~1.5 GFLOP/s (58 ms for the
  memory encoder's 7x7 conv at 2 x 32 x 32 x 256, 114 ms at 64 x 64 x 256) and the kernel
  gradient is a dense convolution with a [k, k, C, C] result, C times the work. Here the forward
  is k² shifted products summed in f32, one fused loop (4.6 and 6.3 ms at those shapes), whose
  input gradient is shifted sums too;
- dense, strided or 1x1 with many channels: the kernel gradient is a convolution whose window is
  the whole output map (the mask downsampler's last 3x3 stride-2 conv ran at ~3 GFLOP/s, 5% of a
  512 px training step; the FPN neck's 1x1 lateral conv at 128 x 128, 2%). Here the forward is
  the same `lax.conv_general_dilated` as `nn.Conv` and the input gradient its own transpose.
The kernel gradient of both is products of the strided input windows with the output gradient,
in f32: dK[i, j] = sum_{b, y, x} x_pad[b, s y + i, s x + j] g[b, y, x] (per channel for
depthwise; for dense, an outer product over channels: one matmul over the stacked windows).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _windows(x: jax.Array, k: int, stride: int, padding: int, out_hw: tuple[int, int]):
    """The k² strided windows of x [B, H, W, C] padded by `padding`, each [B, *out_hw, C],
    row-major over the kernel taps (i, j)."""
    x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    rows, cols = stride * (out_hw[0] - 1) + 1, stride * (out_hw[1] - 1) + 1
    return [x[:, i : i + rows : stride, j : j + cols : stride] for i in range(k) for j in range(k)]


def _out_hw(x: jax.Array, k: int, stride: int, padding: int) -> tuple[int, int]:
    return tuple((n + 2 * padding - k) // stride + 1 for n in x.shape[1:3])


def _depthwise(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
    k = kernel.shape[0]
    windows = _windows(x.astype(jnp.float32), k, stride, padding, _out_hw(x, k, stride, padding))
    taps = kernel.astype(jnp.float32).reshape(k * k, -1)
    return sum(w * tap for w, tap in zip(windows, taps)).astype(x.dtype)


def _conv(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
    if kernel.shape[2] != x.shape[-1]:
        return _depthwise(x, kernel, stride, padding)
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        window_strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        dimension_numbers=_DIMENSIONS,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
    """x [B, H, W, C], kernel [k, k, C, F] (dense) or [k, k, 1, C] (depthwise, C > 1) ->
    [B, (H + 2 padding - k) // stride + 1, (W + ...) // stride + 1, F]."""
    return _conv(x, kernel, stride, padding)


def _forward(x, kernel, stride, padding):
    return _conv(x, kernel, stride, padding), (x, kernel)


def _backward(stride, padding, residuals, g):
    x, kernel = residuals
    _, x_vjp = jax.vjp(lambda x: _conv(x, kernel, stride, padding), x)
    (dx,) = x_vjp(g)
    windows = _windows(x.astype(jnp.float32), kernel.shape[0], stride, padding, g.shape[1:3])
    g32 = g.astype(jnp.float32)
    if kernel.shape[2] == x.shape[-1]:  # dense: one matmul over the stacked windows
        dk = jnp.einsum("bhwp,bhwf->pf", jnp.concatenate(windows, axis=-1), g32)
    else:  # depthwise
        dk = jnp.stack([jnp.einsum("bhwc,bhwc->c", w, g32) for w in windows])
    return dx, dk.reshape(kernel.shape).astype(kernel.dtype)


conv2d.defvjp(_forward, _backward)


class Conv2d(nn.Module):
    """`nn.Conv(features, (k, k), strides=stride, padding=padding)` (or, `depthwise`, with
    `feature_group_count=features`) with the same params (`kernel` [k, k, in or 1, features],
    `bias` [features]), computed as above."""

    features: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    depthwise: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> [B, (H + 2 p - k) // s + 1, (W + 2 p - k) // s + 1, features]
        (1x1 stride 1: any [..., C] -> [..., features])."""
        k, c = self.kernel_size, x.shape[-1]
        if self.depthwise and c != self.features:
            raise ValueError(f"a depthwise conv keeps the channels: {c} in, {self.features} out")
        shape = (k, k, 1 if self.depthwise else c, self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        if k == 1 and self.stride == 1 and self.padding == 0 and not self.depthwise:
            return jnp.einsum("...c,cf->...f", x, kernel[0, 0]) + bias
        return conv2d(x, kernel, self.stride, self.padding) + bias
