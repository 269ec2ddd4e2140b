"""2-D axial rotary position encoding and RoPE attention.

<- sam2/modeling/position_encoding.py (`compute_axial_cis`, `apply_rotary_enc`) and
sam2/modeling/sam/transformer.py (`RoPEAttention`).

The official code uses complex tensors; here the rotation is written with real cos/sin tables:
element pairs (2i, 2i+1) of a head vector are the (real, imag) parts of complex number i.
"""

import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from sam2_jax.models.attention import Attention


def axial_rope_cos_sin(
    dim: int, end_x: int, end_y: int, theta: float = 10000.0
) -> tuple[jax.Array, jax.Array]:
    """Rotation tables of `compute_axial_cis` for an end_x × end_y grid (row-major tokens).

    Token t = y * end_x + x. Frequencies f_k = theta^(-4k/dim), k < dim // 4; the first dim // 4
    complex pairs rotate by x * f_k, the next dim // 4 by y * f_k.
    Returns (cos, sin), each [end_x * end_y, dim // 2] fp32.
    """
    freqs = 1.0 / (theta ** (jnp.arange(0, dim, 4, dtype=jnp.float32)[: dim // 4] / dim))
    t = jnp.arange(end_x * end_y)
    t_x = (t % end_x).astype(jnp.float32)
    t_y = (t // end_x).astype(jnp.float32)
    angles = jnp.concatenate([t_x[:, None] * freqs, t_y[:, None] * freqs], axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


def apply_rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate adjacent pairs of x [..., N, D] by the angles of cos/sin [N, D // 2].

    Computed in fp32, returned in x's dtype.
    """
    xf = x.astype(jnp.float32).reshape(*x.shape[:-1], x.shape[-1] // 2, 2)
    re, im = xf[..., 0], xf[..., 1]
    out = jnp.stack([re * cos - im * sin, re * sin + im * cos], axis=-1)
    return out.reshape(x.shape).astype(x.dtype)


def _grid_side(n: int) -> int:
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"RoPE needs a square token grid, got {n} query tokens")
    return side


class RoPEAttention(Attention):
    """`RoPEAttention`: `Attention` with axial RoPE on queries and (non-excluded) keys.

    The query tokens are a row-major end_x × end_y grid: `feat_sizes` (w, h) when it has as many
    tokens as the query, else a sqrt(Nq) × sqrt(Nq) grid (as official). With `rope_k_repeat`
    the key rotations are the query's tiled (Nk - num_k_exclude_rope) // Nq times (memory of
    several frames of Nq tokens each); the last `num_k_exclude_rope` keys are not rotated.
    """

    rope_theta: float = 10000.0
    rope_k_repeat: bool = False
    feat_sizes: tuple[int, int] = (64, 64)

    def _cos_sin(self, num_tokens: int) -> tuple[jax.Array, jax.Array]:
        """Tables for a query of `num_tokens` tokens: ([Nq, D / 2], [Nq, D / 2])."""
        end_x, end_y = self.feat_sizes
        if end_x * end_y != num_tokens:
            end_x = end_y = _grid_side(num_tokens)
        head_dim = self.internal_dim // self.num_heads
        return axial_rope_cos_sin(head_dim, end_x, end_y, self.rope_theta)

    @nn.compact
    def __call__(
        self,
        q: jax.Array,
        k: jax.Array,
        v: jax.Array,
        num_k_exclude_rope: int = 0,
        key_valid: Optional[jax.Array] = None,
        deterministic: bool = True,
    ) -> jax.Array:
        """q: [B, Nq, C], k/v: [B, Nk, C_kv], key_valid: [B, Nk] bool -> [B, Nq, C].

        `num_k_exclude_rope` is static; Nk - num_k_exclude_rope must equal Nq, or be a multiple of
        it with `rope_k_repeat`.
        """
        q, k, v = self.project(q, k, v)
        nq, nk = q.shape[-2], k.shape[-2]
        if nq != nk and not self.rope_k_repeat:
            raise ValueError(f"{nk} keys for {nq} queries need rope_k_repeat")
        cos, sin = self._cos_sin(nq)
        q = apply_rotary(q, cos, sin)
        num_k_rope = nk - num_k_exclude_rope
        if num_k_rope > 0:
            reps = num_k_rope // nq if self.rope_k_repeat else 1
            if reps * nq != num_k_rope:
                raise ValueError(f"{num_k_rope} rotated keys do not tile {nq} query positions")
            cos_k, sin_k = jnp.tile(cos, (reps, 1)), jnp.tile(sin, (reps, 1))
            k_rope = apply_rotary(k[..., :num_k_rope, :], cos_k, sin_k)
            k = jnp.concatenate([k_rope, k[..., num_k_rope:, :]], axis=-2)
        return self.attend(q, k, v, key_valid, deterministic)
