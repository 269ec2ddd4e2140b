"""Position encodings (<- sam2/modeling/position_encoding.py, sam2_utils.get_1d_sine_pe).

Parameter-free encodings are plain functions computed in fp32; `PositionEmbeddingRandom` keeps the
official registered buffer as the param `positional_encoding_gaussian_matrix` [2, F].
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


def sine_position_encoding(
    height: int, width: int, num_pos_feats: int, temperature: float = 10000.0
) -> jax.Array:
    """`PositionEmbeddingSine` (normalize=True, scale 2π) for an H×W map.

    Returns [H, W, num_pos_feats] fp32: channels are [pos_y, pos_x], each with sin at even and
    cos at odd positions (pairs share a frequency), as official.
    """
    npf = num_pos_feats // 2
    eps = 1e-6
    scale = 2 * math.pi
    y = jnp.arange(1, height + 1, dtype=jnp.float32) / (height + eps) * scale
    x = jnp.arange(1, width + 1, dtype=jnp.float32) / (width + eps) * scale
    dim_t = jnp.arange(npf, dtype=jnp.float32)
    dim_t = temperature ** (2 * (dim_t // 2) / npf)

    def interleave(p: jax.Array) -> jax.Array:  # [N, npf] -> [N, npf]
        return jnp.stack([jnp.sin(p[:, 0::2]), jnp.cos(p[:, 1::2])], axis=2).reshape(p.shape[0], -1)

    pos_y = interleave(y[:, None] / dim_t)  # [H, npf]
    pos_x = interleave(x[:, None] / dim_t)  # [W, npf]
    pos_y = jnp.broadcast_to(pos_y[:, None, :], (height, width, npf))
    pos_x = jnp.broadcast_to(pos_x[None, :, :], (height, width, npf))
    return jnp.concatenate([pos_y, pos_x], axis=-1)


def get_1d_sine_pe(pos: jax.Array, dim: int, temperature: float = 10000.0) -> jax.Array:
    """`sam2_utils.get_1d_sine_pe`: pos [...] -> [..., dim], concatenated [sin(all), cos(all)]."""
    pe_dim = dim // 2
    dim_t = jnp.arange(pe_dim, dtype=jnp.float32)
    dim_t = temperature ** (2 * (dim_t // 2) / pe_dim)
    p = pos.astype(jnp.float32)[..., None] / dim_t
    return jnp.concatenate([jnp.sin(p), jnp.cos(p)], axis=-1)


class PositionEmbeddingRandom(nn.Module):
    """Random-Fourier encoding of the prompt encoder (`PositionEmbeddingRandom`).

    The Gaussian matrix is a param (it is a buffer in the official checkpoint).
    """

    num_pos_feats: int = 64

    def setup(self) -> None:
        self.positional_encoding_gaussian_matrix = self.param(
            "positional_encoding_gaussian_matrix",
            nn.initializers.normal(stddev=1.0),
            (2, self.num_pos_feats),
            jnp.float32,
        )

    def _pe_encoding(self, coords: jax.Array) -> jax.Array:
        """coords [..., 2] in [0, 1] (x, y) -> [..., 2F]."""
        coords = 2 * coords.astype(jnp.float32) - 1
        coords = coords @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return jnp.concatenate([jnp.sin(coords), jnp.cos(coords)], axis=-1)

    def __call__(self, size: tuple[int, int]) -> jax.Array:
        """Dense grid encoding: returns [H, W, 2F] (official returns C×H×W)."""
        h, w = size
        y = (jnp.arange(h, dtype=jnp.float32) + 0.5) / h
        x = (jnp.arange(w, dtype=jnp.float32) + 0.5) / w
        grid = jnp.stack(jnp.broadcast_arrays(x[None, :], y[:, None]), axis=-1)
        return self._pe_encoding(grid)

    def forward_with_coords(self, coords: jax.Array, image_size: tuple[int, int]) -> jax.Array:
        """coords [B, N, 2] in pixels of an image of `image_size` (H, W) -> [B, N, 2F]."""
        norm = coords.astype(jnp.float32) / jnp.array([image_size[1], image_size[0]], jnp.float32)
        return self._pe_encoding(norm)
