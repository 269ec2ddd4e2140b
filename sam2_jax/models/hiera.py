"""Hiera trunk of the image encoder (<- sam2/modeling/backbones/hieradet.py, backbones/utils.py).

Channels-last throughout: the official trunk also works in [B, H, W, C] and only returns NCHW
stage outputs; ours returns them as [B, h, w, C]. Parameter names follow the official attribute
names (`patch_embed/proj`, `blocks_{i}/{norm1,attn/qkv,attn/proj,norm2,mlp/layers_{0,1},proj}`,
raw `pos_embed` [1, bh, bw, C] and `pos_embed_window` [1, ws, ws, C]).

Input size: the official code only works when the patch-embedding map, ceil(H / 4) x ceil(W / 4),
is a multiple of `window_spec[0]` (the window position embedding is tiled over it) and of
`q_stride ** q_pool` (every q-pooling halves the map exactly; otherwise the windowed q-pool block
unpartitions with the wrong padding and the FPN top-down sum misaligns). For the shipped configs
(window 8, three 2x2 poolings) both mean ceil(side / 4) % 8 == 0, i.e. image sides that are
multiples of 32 (32k - 3 ... 32k are accepted too, as the stride-4 conv rounds up).
"""

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from einops import rearrange

from sam2_jax.models.attention import dot_product_attention
from sam2_jax.models.layers import MLP, gelu, layer_norm
from sam2_jax.ops.conv import Conv2d

Dtype = Any

_PATCH_KERNEL, _PATCH_STRIDE, _PATCH_PADDING = 7, 4, 3
_NORM_EPS = 1e-6
_CUBIC_A = -0.75


# ----------------------------------------------------------------------------- bicubic (torch)


def _cubic_coefficients(t: np.ndarray, a: float = _CUBIC_A) -> np.ndarray:
    """Keys cubic weights of the 4 taps at offsets -1, 0, 1, 2 for fractions t [N] -> [N, 4]."""

    def near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def bicubic_weight_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] matrix of torch's 1-D bicubic resampling (align_corners=False).

    As `aten/src/ATen/native/cpu/UpSampleKernel.cpp` (HelperInterpCubic): half-pixel source
    index `(o + 0.5) * in / out - 0.5` (not clamped), base index `min(floor(src), in - 1)`,
    fraction clamped to [0, 1], Keys cubic with A = -0.75, tap indices clamped to the border,
    no antialiasing.
    """
    scale = in_size / out_size
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    base = np.minimum(np.floor(src), in_size - 1)
    frac = np.clip(src - base, 0.0, 1.0)
    taps = np.clip(base[:, None].astype(np.int64) + np.arange(-1, 3), 0, in_size - 1)
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_size)[:, None], taps.shape)
    np.add.at(weights, (rows, taps), _cubic_coefficients(frac))
    return weights


def bicubic_resize(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """torch `F.interpolate(x, size, mode="bicubic", align_corners=False)`, channels-last.

    x: [B, H, W, C] -> [B, size[0], size[1], C], computed in fp32.
    """
    wh = jnp.asarray(bicubic_weight_matrix(x.shape[1], size[0]), jnp.float32)
    ww = jnp.asarray(bicubic_weight_matrix(x.shape[2], size[1]), jnp.float32)
    return jnp.einsum(
        "oh,pw,bhwc->bopc", wh, ww, x.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST
    )


# ----------------------------------------------------------------------------- windows


def padded_size(size: int, window_size: int) -> int:
    """`size` rounded up to a multiple of `window_size`."""
    return size + (window_size - size % window_size) % window_size


def window_partition(x: jax.Array, window_size: int) -> tuple[jax.Array, tuple[int, int]]:
    """`backbones/utils.window_partition`: zero-pad bottom/right, cut into windows.

    x: [B, H, W, C] -> (windows [B * nH * nW, ws, ws, C], padded (Hp, Wp)).
    """
    _, h, w, _ = x.shape
    hp, wp = padded_size(h, window_size), padded_size(w, window_size)
    x = jnp.pad(x, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)))
    windows = rearrange(
        x, "b (nh wh) (nw ww) c -> (b nh nw) wh ww c", wh=window_size, ww=window_size
    )
    return windows, (hp, wp)


def window_unpartition(
    windows: jax.Array, window_size: int, pad_hw: tuple[int, int], hw: tuple[int, int]
) -> jax.Array:
    """`backbones/utils.window_unpartition`: [B * nH * nW, ws, ws, C] -> [B, H, W, C] (cropped)."""
    hp, wp = pad_hw
    x = rearrange(
        windows,
        "(b nh nw) wh ww c -> b (nh wh) (nw ww) c",
        nh=hp // window_size,
        nw=wp // window_size,
    )
    return x[:, : hw[0], : hw[1], :]


def max_pool(x: jax.Array, stride: tuple[int, int] | None) -> jax.Array:
    """`do_pool` with `MaxPool2d(stride, stride, ceil_mode=False)`: [B, H, W, C] -> [B, H', W', C].

    `stride` None means no pooling.
    """
    if stride is None:
        return x
    return nn.max_pool(x, window_shape=stride, strides=stride, padding="VALID")


# ----------------------------------------------------------------------------- structure


class BlockConfig(NamedTuple):
    """Static configuration of one `MultiScaleBlock`."""

    dim: int
    dim_out: int
    num_heads: int
    window_size: int
    q_stride: tuple[int, int] | None
    drop_path: float


def stage_ends(stages: tuple[int, ...]) -> list[int]:
    """Index of the last block of every stage (official `Hiera.stage_ends`)."""
    return [sum(stages[: i + 1]) - 1 for i in range(len(stages))]


def block_configs(
    embed_dim: int,
    num_heads: int,
    stages: tuple[int, ...],
    global_att_blocks: tuple[int, ...],
    window_spec: tuple[int, ...],
    drop_path_rate: float,
    q_pool: int,
    q_stride: tuple[int, int],
    dim_mul: float,
    head_mul: float,
) -> list[BlockConfig]:
    """Per-block dims, heads, window and q-stride, as the loop of official `Hiera.__init__`.

    The window lags by a block: the first block of stage s + 1 takes its dims, heads and
    q-stride from stage s + 1 but its window size from stage s. Blocks in `global_att_blocks`
    get window 0 (global attention). Drop-path rates grow linearly from 0 to `drop_path_rate`.
    """
    if len(stages) != len(window_spec):
        raise ValueError(f"stages {stages} and window_spec {window_spec} differ in length")
    ends = stage_ends(stages)
    if not 0 <= q_pool <= len(ends) - 1:
        raise ValueError(f"q_pool={q_pool} must lie in [0, {len(ends) - 1}]")
    q_pool_blocks = [e + 1 for e in ends[:-1]][:q_pool]
    depth = sum(stages)
    rates = np.linspace(0.0, drop_path_rate, depth, dtype=np.float32)
    configs, cur_stage = [], 1
    for i in range(depth):
        dim_out = embed_dim
        window_size = 0 if i in global_att_blocks else window_spec[cur_stage - 1]
        if i - 1 in ends:
            dim_out = int(embed_dim * dim_mul)
            num_heads = int(num_heads * head_mul)
            cur_stage += 1
        stride = tuple(q_stride) if i in q_pool_blocks else None
        configs.append(
            BlockConfig(embed_dim, dim_out, num_heads, window_size, stride, float(rates[i]))
        )
        embed_dim = dim_out
    return configs


# ----------------------------------------------------------------------------- modules


class PatchEmbed(nn.Module):
    """`backbones/utils.PatchEmbed`: 7x7 conv, stride 4, padding 3.

    [B, H, W, 3] -> [B, ceil(H / 4), ceil(W / 4), C].
    """

    embed_dim: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        p = _PATCH_PADDING
        return Conv2d(
            self.embed_dim, _PATCH_KERNEL, _PATCH_STRIDE, p, dtype=self.dtype, name="proj"
        )(x)


class MultiScaleAttention(nn.Module):
    """`hieradet.MultiScaleAttention`: attention inside each window, optional q max-pooling.

    qkv = Linear(dim, 3 * dim_out) split as [q | k | v], each head-contiguous; q is max-pooled
    over the window with all heads as channels before attending to the full-window k/v.
    """

    dim_out: int
    num_heads: int
    q_stride: tuple[int, int] | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, dim] -> [B, H', W', dim_out] (H' = H // q_stride when pooling)."""
        qkv = nn.Dense(3 * self.dim_out, dtype=self.dtype, name="qkv")(x)
        q, k, v = jnp.split(qkv, 3, axis=-1)
        q = max_pool(q, self.q_stride)
        h = q.shape[1]
        q, k, v = (rearrange(t, "b h w (n d) -> b n (h w) d", n=self.num_heads) for t in (q, k, v))
        out, _ = dot_product_attention(q, k, v)
        out = rearrange(out, "b n (h w) d -> b h w (n d)", h=h)
        return nn.Dense(self.dim_out, dtype=self.dtype, name="proj")(out)


class MultiScaleBlock(nn.Module):
    """`hieradet.MultiScaleBlock`: pre-norm windowed attention + MLP, with stage-change pooling.

    At a stage change (dim != dim_out) the shortcut is maxpool(proj(norm1(x))). Windows are cut
    from norm1(x) padded with zeros (padded tokens are keys/values too) and the output is cropped.
    """

    dim: int
    dim_out: int
    num_heads: int
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    q_stride: tuple[int, int] | None = None
    window_size: int = 0
    dtype: Dtype = jnp.float32

    def _drop_path(self, x: jax.Array, deterministic: bool) -> jax.Array:
        """`sam2_utils.DropPath` (scale_by_keep): drop whole samples, rescale the kept ones."""
        if deterministic or self.drop_path == 0.0:
            return x
        keep_prob = 1.0 - self.drop_path
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        keep = jax.random.bernoulli(self.make_rng("dropout"), keep_prob, shape)
        scale = 1.0 / keep_prob if keep_prob > 0.0 else 1.0
        return x * (keep * scale).astype(x.dtype)

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        """x: [B, H, W, dim] -> [B, H', W', dim_out]."""
        shortcut = x
        x = layer_norm(_NORM_EPS, "norm1")(x)
        if self.dim != self.dim_out:
            proj = nn.Dense(self.dim_out, dtype=self.dtype, name="proj")
            shortcut = max_pool(proj(x), self.q_stride)

        h, w = x.shape[1:3]
        if self.window_size > 0:
            x, pad_hw = window_partition(x, self.window_size)
        x = MultiScaleAttention(
            self.dim_out, self.num_heads, self.q_stride, dtype=self.dtype, name="attn"
        )(x)
        if self.window_size > 0:
            window_size = self.window_size
            if self.q_stride is not None:
                # Shapes changed with q-pooling: padding is recomputed on the pooled map.
                window_size = self.window_size // self.q_stride[0]
                h, w = shortcut.shape[1:3]
                pad_hw = (padded_size(h, window_size), padded_size(w, window_size))
            x = window_unpartition(x, window_size, pad_hw, (h, w))

        x = shortcut + self._drop_path(x, deterministic)
        y = layer_norm(_NORM_EPS, "norm2")(x)
        y = MLP(
            int(self.dim_out * self.mlp_ratio),
            self.dim_out,
            num_layers=2,
            activation=gelu,
            dtype=self.dtype,
            name="mlp",
        )(y)
        return x + self._drop_path(y, deterministic)


class Hiera(nn.Module):
    """`hieradet.Hiera`: patch embedding, windowed + interpolated position embedding, blocks.

    Returns the stage outputs [B, h_i, w_i, C_i], high resolution first (all stages when
    `return_interm_layers`, else only the last). Drop path (stochastic depth, rates rising
    linearly to `drop_path_rate` over the blocks) is active only with deterministic=False and then
    draws from the 'dropout' rng.
    """

    embed_dim: int
    num_heads: int
    stages: tuple[int, ...]
    global_att_blocks: tuple[int, ...]
    window_pos_embed_bkg_spatial_size: tuple[int, int]
    window_spec: tuple[int, ...]
    drop_path_rate: float = 0.0
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    mlp_ratio: float = 4.0
    return_interm_layers: bool = True
    dtype: Dtype = jnp.float32

    def block_configs(self) -> list[BlockConfig]:
        """Static per-block configuration (see `block_configs`)."""
        return block_configs(
            self.embed_dim,
            self.num_heads,
            tuple(self.stages),
            tuple(self.global_att_blocks),
            tuple(self.window_spec),
            self.drop_path_rate,
            self.q_pool,
            tuple(self.q_stride),
            self.dim_mul,
            self.head_mul,
        )

    @property
    def channel_list(self) -> list[int]:
        """Output channels, low resolution first (official `Hiera.channel_list`)."""
        configs = self.block_configs()
        if not self.return_interm_layers:
            return [configs[-1].dim_out]
        return [configs[i].dim_out for i in stage_ends(self.stages)[::-1]]

    def check_input_size(self, height: int, width: int) -> None:
        """Raise ValueError unless an image of height x width is one the official trunk handles.

        The stride-4 patch map ceil(side / 4) must be a multiple of window_spec[0] (window
        position embedding tiling) and of q_stride ** q_pool (exact halving at each q-pooling).
        """
        for axis, side in (("height", height), ("width", width)):
            patches = math.ceil(side / _PATCH_STRIDE)
            pool = self.q_stride[0 if axis == "height" else 1] ** self.q_pool
            multiple = math.lcm(self.window_spec[0], pool)
            if patches % multiple:
                raise ValueError(
                    f"image {axis} {side} gives a {patches}-patch map, not a multiple of {multiple}"
                    f" (window_spec[0]={self.window_spec[0]}, q_stride**q_pool={pool}); use a"
                    f" {axis} that is a multiple of {_PATCH_STRIDE * multiple}"
                )

    def _pos_embed(self, hw: tuple[int, int]) -> jax.Array:
        """Bicubic-resized background embedding plus tiled window embedding: [1, h, w, C] fp32."""
        bkg = self.param(
            "pos_embed",
            nn.initializers.zeros,
            (1, *self.window_pos_embed_bkg_spatial_size, self.embed_dim),
            jnp.float32,
        )
        ws = self.window_spec[0]
        window = self.param(
            "pos_embed_window", nn.initializers.zeros, (1, ws, ws, self.embed_dim), jnp.float32
        )
        pos = bicubic_resize(bkg, hw)
        return pos + jnp.tile(window, (1, hw[0] // ws, hw[1] // ws, 1))

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> list[jax.Array]:
        """x: [B, H, W, 3] -> stage outputs [B, H/4/2^i, W/4/2^i, C_i], high resolution first."""
        self.check_input_size(x.shape[1], x.shape[2])
        x = PatchEmbed(self.embed_dim, dtype=self.dtype, name="patch_embed")(x)
        x = x + self._pos_embed(x.shape[1:3]).astype(x.dtype)
        ends = stage_ends(self.stages)
        outputs = []
        for i, cfg in enumerate(self.block_configs()):
            x = MultiScaleBlock(
                cfg.dim,
                cfg.dim_out,
                cfg.num_heads,
                mlp_ratio=self.mlp_ratio,
                drop_path=cfg.drop_path,
                q_stride=cfg.q_stride,
                window_size=cfg.window_size,
                dtype=self.dtype,
                name=f"blocks_{i}",
            )(x, deterministic)
            if i == ends[-1] or (i in ends and self.return_interm_layers):
                outputs.append(x)
        return outputs
