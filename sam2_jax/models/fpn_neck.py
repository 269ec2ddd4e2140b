"""FPN neck of the image encoder (<- sam2/modeling/backbones/image_encoder.py::FpnNeck).

Lateral convs are `convs_{i}/conv` (official `convs.{i}.conv`, an nn.Sequential holding one
Conv2d); `convs_0` takes the lowest-resolution trunk output, as official.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sam2_jax.models.position_encoding import sine_position_encoding
from sam2_jax.ops.conv import Conv2d

Dtype = Any


def upsample2x(x: jax.Array, mode: str) -> jax.Array:
    """torch `F.interpolate(x, scale_factor=2.0, mode, align_corners=False)`, no antialias.

    x: [B, H, W, C] -> [B, 2H, 2W, C]. "nearest" repeats pixels; "bilinear" uses half-pixel
    centres with the source coordinate clamped at 0, which for an exact x2 upsampling equals
    `jax.image.resize(..., "linear")` (its edge renormalisation gives the same border values).
    """
    b, h, w, c = x.shape
    if mode == "nearest":
        return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    if mode == "bilinear":
        return jax.image.resize(x, (b, 2 * h, 2 * w, c), method="linear", antialias=False)
    raise ValueError(f"fpn_interp_model {mode!r} is not supported (use 'nearest' or 'bilinear')")


class LateralConv(nn.Module):
    """One official `convs[i]` (nn.Sequential holding `conv`): [B, h, w, C_in] -> [B, h, w, d]."""

    d_model: int
    kernel_size: int = 1
    stride: int = 1
    padding: int = 0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        p = self.padding
        return Conv2d(
            self.d_model, self.kernel_size, self.stride, p, dtype=self.dtype, name="conv"
        )(x)


class FpnNeck(nn.Module):
    """`FpnNeck`: lateral 1x1 convs, top-down fusion on `fpn_top_down_levels`, sine positions.

    `backbone_channel_list` is low resolution first (official order); inputs are high
    resolution first. `pos_num_feats` is `PositionEmbeddingSine.num_pos_feats` (the total
    channel count; defaults to d_model).
    """

    d_model: int
    backbone_channel_list: tuple[int, ...]
    fpn_top_down_levels: tuple[int, ...] | None = None
    fpn_interp_model: str = "nearest"
    fuse_type: str = "sum"
    kernel_size: int = 1
    stride: int = 1
    padding: int = 0
    pos_num_feats: int | None = None
    pos_temperature: float = 10000.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, xs: list[jax.Array]) -> tuple[list[jax.Array], list[jax.Array]]:
        """xs: [B, h_i, w_i, C_i] high resolution first -> (features, pos), each [B, h_i, w_i, d].

        Level i gets the top-down sum only when i is in `fpn_top_down_levels` (the x2 upsample
        of the previous, lower-resolution output, in fp32); otherwise it is lateral only.
        """
        if self.fuse_type not in ("sum", "avg"):
            raise ValueError(f"fuse_type must be 'sum' or 'avg', got {self.fuse_type!r}")
        n = len(self.backbone_channel_list) - 1
        if len(xs) != n + 1:
            raise ValueError(f"expected {n + 1} feature maps, got {len(xs)}")
        top_down_levels = (
            range(n + 1) if self.fpn_top_down_levels is None else self.fpn_top_down_levels
        )
        num_pos_feats = self.d_model if self.pos_num_feats is None else self.pos_num_feats
        out: list[jax.Array | None] = [None] * (n + 1)
        pos: list[jax.Array | None] = [None] * (n + 1)
        prev = None
        for i in range(n, -1, -1):
            lateral = LateralConv(
                self.d_model,
                self.kernel_size,
                self.stride,
                self.padding,
                dtype=self.dtype,
                name=f"convs_{n - i}",
            )(xs[i])
            if i in top_down_levels and prev is not None:
                top_down = upsample2x(prev.astype(jnp.float32), self.fpn_interp_model)
                prev = lateral + top_down
                if self.fuse_type == "avg":
                    prev = prev / 2
            else:
                prev = lateral
            out[i] = prev
            b, h, w, _ = prev.shape
            pe = sine_position_encoding(h, w, num_pos_feats, self.pos_temperature)
            pos[i] = jnp.broadcast_to(pe[None], (b, h, w, num_pos_feats)).astype(prev.dtype)
        return out, pos
