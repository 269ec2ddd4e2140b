"""Memory encoder: fuse a frame's features with its predicted mask into memory features.

<- sam2/modeling/memory_encoder.py (`MaskDownSampler`, `CXBlock`, `Fuser`, `MemoryEncoder`).

Channels-last: features [B, h, w, C], masks [B, H, W, 1].
"""

import math
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from sam2_jax.models.layers import LayerNorm2d, gelu
from sam2_jax.models.position_encoding import sine_position_encoding
from sam2_jax.ops.conv import Conv2d

Dtype = Any


def drop_path(x: jax.Array, rate: float, rng: Optional[jax.Array]) -> jax.Array:
    """`sam2_utils.DropPath` (scale_by_keep): drop whole samples of x [B, ...] with prob `rate`.

    Identity when `rng` is None or rate is 0.
    """
    if rng is None or rate == 0.0:
        return x
    keep_prob = 1.0 - rate
    keep = jax.random.bernoulli(rng, keep_prob, (x.shape[0],) + (1,) * (x.ndim - 1))
    scale = 1.0 / keep_prob if keep_prob > 0.0 else 1.0
    return x * (keep.astype(x.dtype) * jnp.asarray(scale, x.dtype))


class MaskDownSampler(nn.Module):
    """`MaskDownSampler`: log_stride(total_stride) × [conv (stride), LayerNorm2d, act], 1×1 conv.

    Channels grow 1 -> stride² -> stride⁴ ...; submodules keep the official nn.Sequential
    indices: `encoder_{3i}` conv, `encoder_{3i+1}` LayerNorm2d, then `encoder_{3n}` the final conv.
    """

    embed_dim: int = 256
    kernel_size: int = 3
    stride: int = 2
    padding: int = 1
    total_stride: int = 16
    activation: Callable[[jax.Array], jax.Array] = gelu
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, 1] -> [B, H / total_stride, W / total_stride, embed_dim]."""
        num_layers = int(math.log2(self.total_stride) // math.log2(self.stride))
        if self.stride**num_layers != self.total_stride:
            raise ValueError(f"total_stride {self.total_stride} is not a power of {self.stride}")
        k, p = self.kernel_size, self.padding
        channels = 1
        for i in range(num_layers):
            channels *= self.stride**2
            x = Conv2d(channels, k, self.stride, p, dtype=self.dtype, name=f"encoder_{3 * i}")(x)
            x = LayerNorm2d(name=f"encoder_{3 * i + 1}")(x)
            x = self.activation(x)
        final = Conv2d(self.embed_dim, 1, dtype=self.dtype, name=f"encoder_{3 * num_layers}")
        return final(x)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise conv, LayerNorm2d, pointwise MLP (GELU), layer scale, residual.

    Submodules `dwconv`, `norm`, `pwconv1`, `pwconv2`; raw param `gamma` [dim] when
    layer_scale_init_value > 0. Drop path only when not deterministic (rng 'dropout').
    """

    dim: int = 256
    kernel_size: int = 7
    padding: int = 3
    drop_path: float = 0.0
    layer_scale_init_value: float = 1e-6
    use_dwconv: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        """x: [B, H, W, dim] -> [B, H, W, dim]."""
        p, k = self.padding, self.kernel_size
        y = Conv2d(
            self.dim, k, padding=p, depthwise=self.use_dwconv, dtype=self.dtype, name="dwconv"
        )(x)
        y = LayerNorm2d(eps=1e-6, name="norm")(y)
        y = gelu(nn.Dense(4 * self.dim, dtype=self.dtype, name="pwconv1")(y))
        y = nn.Dense(self.dim, dtype=self.dtype, name="pwconv2")(y)
        if self.layer_scale_init_value > 0:
            init = nn.initializers.constant(self.layer_scale_init_value)
            gamma = self.param("gamma", init, (self.dim,), jnp.float32)
            y = gamma.astype(y.dtype) * y
        use_drop_path = self.drop_path > 0.0 and not deterministic
        rng = self.make_rng("dropout") if use_drop_path else None
        return x + drop_path(y, self.drop_path, rng)


class Fuser(nn.Module):
    """`Fuser`: optional 1×1 input conv `proj`, then `num_layers` CXBlocks `layers_{i}`."""

    num_layers: int = 2
    dim: int = 256
    kernel_size: int = 7
    padding: int = 3
    drop_path: float = 0.0
    layer_scale_init_value: float = 1e-6
    use_dwconv: bool = True
    input_projection: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        """x: [B, H, W, dim] -> [B, H, W, dim]."""
        if self.input_projection:
            x = Conv2d(self.dim, 1, dtype=self.dtype, name="proj")(x)
        for i in range(self.num_layers):
            x = CXBlock(
                self.dim,
                self.kernel_size,
                self.padding,
                self.drop_path,
                self.layer_scale_init_value,
                self.use_dwconv,
                dtype=self.dtype,
                name=f"layers_{i}",
            )(x, deterministic)
        return x


class MemoryEncoder(nn.Module):
    """`MemoryEncoder`: mask_downsampler(mask) + pix_feat_proj(features) -> fuser -> out_proj.

    `mask_*` fields are the `MaskDownSampler` hyperparameters, `fuser_*` the `Fuser` ones (both
    work at `in_dim` channels, as the official modules must). `out_proj` (1×1 conv) exists only
    when out_dim != in_dim. The position encoding is `PositionEmbeddingSine(pos_num_feats)`.
    """

    out_dim: int = 64
    in_dim: int = 256
    mask_kernel_size: int = 3
    mask_stride: int = 2
    mask_padding: int = 1
    mask_total_stride: int = 16
    fuser_num_layers: int = 2
    fuser_kernel_size: int = 7
    fuser_padding: int = 3
    fuser_drop_path: float = 0.0
    fuser_layer_scale_init_value: float = 1e-6
    fuser_use_dwconv: bool = True
    fuser_input_projection: bool = False
    pos_num_feats: int = 64
    pos_temperature: float = 10000.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        pix_feat: jax.Array,
        masks: jax.Array,
        skip_mask_sigmoid: bool = False,
        deterministic: bool = True,
    ) -> tuple[jax.Array, jax.Array]:
        """pix_feat: [B, h, w, in_dim], masks: [B, h * s, w * s, 1] (s = mask_total_stride).

        Returns (vision_features [B, h, w, out_dim], vision_pos_enc [B, h, w, pos_num_feats]),
        both in the features' dtype. `skip_mask_sigmoid` (static): masks are already
        probabilities / scaled logits.
        """
        if not skip_mask_sigmoid:
            masks = jax.nn.sigmoid(masks.astype(jnp.float32))
        masks = MaskDownSampler(
            self.in_dim,
            self.mask_kernel_size,
            self.mask_stride,
            self.mask_padding,
            self.mask_total_stride,
            dtype=self.dtype,
            name="mask_downsampler",
        )(masks)
        x = Conv2d(self.in_dim, 1, dtype=self.dtype, name="pix_feat_proj")(pix_feat)
        x = Fuser(
            self.fuser_num_layers,
            self.in_dim,
            self.fuser_kernel_size,
            self.fuser_padding,
            self.fuser_drop_path,
            self.fuser_layer_scale_init_value,
            self.fuser_use_dwconv,
            self.fuser_input_projection,
            dtype=self.dtype,
            name="fuser",
        )(x + masks, deterministic)
        if self.out_dim != self.in_dim:
            x = Conv2d(self.out_dim, 1, dtype=self.dtype, name="out_proj")(x)
        b, h, w, _ = x.shape
        pos = sine_position_encoding(h, w, self.pos_num_feats, self.pos_temperature)
        pos = jnp.broadcast_to(pos.astype(x.dtype), (b, h, w, self.pos_num_feats))
        return x, pos
