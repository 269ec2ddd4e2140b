"""Multi-head attention with projection downscaling (<- sam2/modeling/sam/transformer.py::Attention).

`RoPEAttention` (memory attention) lives in `rope.py` and reuses `Attention`'s projections and
`dot_product_attention`.
"""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from einops import rearrange

Dtype = Any


def dot_product_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    key_valid: Optional[jax.Array] = None,
    dropout_rate: float = 0.0,
    dropout_rng: Optional[jax.Array] = None,
) -> jax.Array:
    """Softmax attention with scale 1/sqrt(D), logits and softmax in fp32.

    q: [B, h, Nq, D], k/v: [B, h, Nk, D], key_valid: [B, Nk] bool (False keys are never attended;
    a row with no valid key gives zeros). Returns [B, h, Nq, D] in q's dtype.
    """
    scale = 1.0 / jnp.sqrt(jnp.float32(q.shape[-1]))
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, k, preferred_element_type=jnp.float32) * scale
    if key_valid is not None:
        logits = jnp.where(key_valid[:, None, None, :], logits, -jnp.inf)
        weights = jax.nn.softmax(logits, axis=-1, where=key_valid[:, None, None, :])
        weights = jnp.where(key_valid[:, None, None, :], weights, 0.0)
    else:
        weights = jax.nn.softmax(logits, axis=-1)
    if dropout_rate > 0.0 and dropout_rng is not None:
        keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, weights.shape)
        weights = jnp.where(keep, weights / (1.0 - dropout_rate), 0.0)
    return jnp.einsum("bhqk,bhkd->bhqd", weights.astype(v.dtype), v)


class Attention(nn.Module):
    """`transformer.Attention`: q/k/v projections to `embedding_dim // downsample_rate`, heads, out.

    Submodules `q_proj`, `k_proj`, `v_proj`, `out_proj` as official.
    """

    embedding_dim: int
    num_heads: int
    downsample_rate: int = 1
    dropout: float = 0.0
    kv_in_dim: Optional[int] = None
    dtype: Dtype = jnp.float32

    @property
    def internal_dim(self) -> int:
        return self.embedding_dim // self.downsample_rate

    def project(self, q: jax.Array, k: jax.Array, v: jax.Array) -> tuple[jax.Array, ...]:
        """q [B, Nq, C], k/v [B, Nk, C_kv] -> per-head [B, h, N, D]."""
        dense = lambda name: nn.Dense(self.internal_dim, dtype=self.dtype, name=name)  # noqa: E731
        split = lambda x: rearrange(x, "b n (h d) -> b h n d", h=self.num_heads)  # noqa: E731
        return split(dense("q_proj")(q)), split(dense("k_proj")(k)), split(dense("v_proj")(v))

    def attend(
        self,
        q: jax.Array,
        k: jax.Array,
        v: jax.Array,
        key_valid: Optional[jax.Array],
        deterministic: bool,
    ) -> jax.Array:
        """Per-head q/k/v [B, h, N, D] -> output projection [B, Nq, embedding_dim]."""
        rate = 0.0 if deterministic else self.dropout
        rng = self.make_rng("dropout") if rate > 0.0 else None
        out = dot_product_attention(q, k, v, key_valid, rate, rng)
        out = rearrange(out, "b h n d -> b n (h d)")
        return nn.Dense(self.embedding_dim, dtype=self.dtype, name="out_proj")(out)

    @nn.compact
    def __call__(
        self,
        q: jax.Array,
        k: jax.Array,
        v: jax.Array,
        key_valid: Optional[jax.Array] = None,
        deterministic: bool = True,
    ) -> jax.Array:
        """q: [B, Nq, C], k/v: [B, Nk, C_kv], key_valid: [B, Nk] -> [B, Nq, C]."""
        q, k, v = self.project(q, k, v)
        return self.attend(q, k, v, key_valid, deterministic)
