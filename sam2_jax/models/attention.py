"""Multi-head attention with projection downscaling (<- sam2/modeling/sam/transformer.py).

`RoPEAttention` (memory attention) lives in `rope.py` and reuses `Attention`'s projections and
`dot_product_attention`.
"""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from einops import rearrange

Dtype = Any


def _num_query_chunks(b: int, h: int, nq: int, nk: int) -> int:
    """Query chunks bound the logits live at once. On CPU, chunks of at most 2^20 [q, Nk]
    logits stay in cache (faster). On accelerators a chunk loop becomes thousands of tiny kernels
    (an H100 spent 22 of 31 ms per 1024 px frame in them), so there only the whole batch's
    logits are bounded, at 2^28 (1 GiB in fp32)."""
    if jax.default_backend() == "cpu":
        per_query, limit = nk, 1 << 20
    else:
        per_query, limit = b * h * nk, 1 << 28
    n = 1
    while (nq // n) * per_query > limit and nq % (2 * n) == 0:
        n *= 2
    return n


def _attend(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    key_valid: Optional[jax.Array],
    dropout_rate: float,
    dropout_rng: Optional[jax.Array],
) -> tuple[jax.Array, jax.Array]:
    """Softmax attention of pre-scaled q, normalising after the value product (one pass less
    over the [Nq, Nk] weights). Returns the output and each row's weight mass [B, h, Nq, 1]."""
    acc = None if q.dtype == jnp.float32 else jnp.float32  # fp32 logits under bf16 compute
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, k, preferred_element_type=acc)
    if key_valid is not None:
        valid = key_valid[:, None, None, :]
        logits = jnp.where(valid, logits, -jnp.inf)
    peak = jnp.max(logits, axis=-1, keepdims=True)
    if key_valid is not None:  # rows without a valid key: keep exp() finite
        peak = jnp.where(jnp.isfinite(peak), peak, 0.0)
    peak = jax.lax.stop_gradient(peak)
    weights = jnp.exp(logits - peak)
    if key_valid is not None:
        weights = jnp.where(valid, weights, 0.0)
    total = jnp.sum(weights, axis=-1, keepdims=True)
    kept = total
    if dropout_rate > 0.0 and dropout_rng is not None:
        keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, weights.shape)
        weights = jnp.where(keep, weights / (1.0 - dropout_rate), 0.0)
        kept = jnp.sum(weights, axis=-1, keepdims=True)
    out = jnp.einsum("bhqk,bhkd->bhqd", weights.astype(v.dtype), v, preferred_element_type=acc)
    total = jnp.maximum(total, jnp.finfo(jnp.float32).tiny)
    return (out / total).astype(q.dtype), kept / total


def dot_product_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    key_valid: Optional[jax.Array] = None,
    dropout_rate: float = 0.0,
    dropout_rng: Optional[jax.Array] = None,
) -> tuple[jax.Array, jax.Array]:
    """Softmax attention with scale 1/sqrt(D), logits and softmax in fp32.

    q/k: [B, h, Nq or Nk, D], v: [B, h, Nk, Dv], key_valid: [B, Nk] bool (False keys are never
    attended; a row with no valid key gives zeros). Returns the output [B, h, Nq, Dv] in q's dtype
    and each row's sum of weights [B, h, Nq, 1] (fp32: 1, or 0 for a row without a valid key, or
    the kept share under dropout). Large problems are processed in query chunks (same result; the
    [Nq, Nk] weights never exist at once).
    """
    b, h, nq, d = q.shape
    q = q * jnp.asarray(1.0 / np.sqrt(d), q.dtype)
    n = _num_query_chunks(b, h, nq, k.shape[2])
    if n == 1:
        return _attend(q, k, v, key_valid, dropout_rate, dropout_rng)
    chunks = rearrange(q, "b h (n c) d -> n b h c d", n=n)
    rngs = (
        jax.random.split(dropout_rng, n) if dropout_rng is not None else jnp.zeros((n,), jnp.uint32)
    )

    def one(args):
        qc, rng = args
        return _attend(qc, k, v, key_valid, dropout_rate, rng if dropout_rng is not None else None)

    out, mass = jax.lax.map(one, (chunks, rngs))
    unchunk = lambda x: rearrange(x, "n b h c d -> b h (n c) d")  # noqa: E731
    return unchunk(out), unchunk(mass)


class Attention(nn.Module):
    """`transformer.Attention`: q/k/v projections to `embedding_dim // downsample_rate`, heads, out.

    Submodules `q_proj`, `k_proj`, `v_proj`, `out_proj` as official. With one head and keys
    narrower than the projections (the memory attention: 64-channel memory, 256 inside), the
    value projection is applied after the attention weights: A (M W + b) = (A M) W + (A 1) b,
    the same values with the [Nq, Nk] product over 64 channels instead of 256.
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

    def _project_values_last(self, kv_dim: int) -> bool:
        return self.num_heads == 1 and kv_dim < self.internal_dim

    def project(self, q: jax.Array, k: jax.Array, v: jax.Array) -> tuple[jax.Array, ...]:
        """q [B, Nq, C], k/v [B, Nk, C_kv] -> per-head [B, h, N, D] (v: [B, 1, Nk, C_kv],
        unprojected, where the value projection comes after the attention)."""
        dense = lambda name: nn.Dense(self.internal_dim, dtype=self.dtype, name=name)  # noqa: E731
        split = lambda x: rearrange(x, "b n (h d) -> b h n d", h=self.num_heads)  # noqa: E731
        if not self._project_values_last(v.shape[-1]):
            v = dense("v_proj")(v)
        return split(dense("q_proj")(q)), split(dense("k_proj")(k)), split(v)

    def attend(
        self,
        q: jax.Array,
        k: jax.Array,
        v: jax.Array,
        key_valid: Optional[jax.Array],
        deterministic: bool,
    ) -> jax.Array:
        """Per-head q/k/v [B, h, N, D] from `project` -> out projection [B, Nq, embedding_dim]."""
        rate = 0.0 if deterministic else self.dropout
        rng = self.make_rng("dropout") if rate > 0.0 else None
        out, mass = dot_product_attention(q, k, v, key_valid, rate, rng)
        if self._project_values_last(v.shape[-1]):
            v_proj = nn.Dense(self.internal_dim, dtype=self.dtype, name="v_proj")
            out = v_proj(out)  # + b; the bias belongs once per unit of weight mass:
            bias = v_proj.variables["params"]["bias"]
            out = out + ((mass - 1.0) * bias).astype(out.dtype)
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
