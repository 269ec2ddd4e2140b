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


CPU_CHUNK_LOGITS = 1 << 20  # on CPU, [q, k] logits per chunk: they stay in cache
CPU_CACHED_KEYS = 1 << 22  # key elements per head beyond which keys are streamed in blocks


def _num_query_chunks(b: int, h: int, nq: int, nk: int) -> int:
    """Query chunks bound the logits live at once. On CPU, chunks of at most 2^20 [q, Nk]
    logits stay in cache (faster). On accelerators a chunk loop becomes thousands of tiny kernels
    (an H100 spent 22 of 31 ms per 1024 px frame in them), so there only the whole batch's
    logits are bounded, at 2^28 (1 GiB in fp32)."""
    if jax.default_backend() == "cpu":
        per_query, limit = nk, CPU_CHUNK_LOGITS
    else:
        per_query, limit = b * h * nk, 1 << 28
    n = 1
    while (nq // n) * per_query > limit and nq % (2 * n) == 0:
        n *= 2
    return n


def _key_block(nq: int, nk: int, d: int, dropout: bool) -> Optional[int]:
    """Keys per block where keys stream through an online softmax (`_attend_key_blocks`), or None.

    On CPU, keys past 2^22 elements per head (16 MB in fp32: the memory attention at 1024 px
    has 7.4M) no longer stay in cache, and query chunks would read them from memory once per
    chunk; key blocks of 2^20 / Nq keys read them once (1.6x faster there). Smaller keys (the
    image encoder's global attention, the memory attention at 512 px) are faster with query
    chunks alone (measured), and dropout keeps the single-pass path. Gradients through the
    blocks are slower (1.25x at 1024 px); training at 512 px does not reach them."""
    if jax.default_backend() != "cpu" or dropout or nk * d <= CPU_CACHED_KEYS:
        return None
    return max(CPU_CHUNK_LOGITS // nq, 128)


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


def _attend_key_blocks(
    q: jax.Array, k: jax.Array, v: jax.Array, key_valid: Optional[jax.Array], block: int
) -> tuple[jax.Array, jax.Array]:
    """`_attend` without dropout as flash attention's loop: an online softmax over blocks of
    `block` keys (padded with invalid keys), the output rescaled as the running peak grows."""
    b, h, nq, _ = q.shape
    pad = (-k.shape[2]) % block
    valid = jnp.ones((k.shape[0], k.shape[2]), bool) if key_valid is None else key_valid
    valid = rearrange(jnp.pad(valid, ((0, 0), (0, pad))), "b (n c) -> n b 1 1 c", c=block)
    blocks = lambda x: rearrange(  # noqa: E731
        jnp.pad(x, ((0, 0), (0, 0), (0, pad), (0, 0))), "b h (n c) d -> n b h c d", c=block
    )

    def step(carry, block_inputs):
        peak, total, out = carry
        kc, vc, valid_c = block_inputs
        logits = jnp.einsum("bhqd,bhkd->bhqk", q, kc, preferred_element_type=jnp.float32)
        logits = jnp.where(valid_c, logits, -jnp.inf)
        new_peak = jax.lax.stop_gradient(jnp.maximum(peak, jnp.max(logits, -1, keepdims=True)))
        finite_peak = jnp.where(jnp.isfinite(new_peak), new_peak, 0.0)
        rescale = jnp.exp(peak - finite_peak)  # 0 while no valid key was seen
        weights = jnp.where(valid_c, jnp.exp(logits - finite_peak), 0.0)
        total = total * rescale + jnp.sum(weights, axis=-1, keepdims=True)
        out = out * rescale + jnp.einsum(
            "bhqk,bhkd->bhqd", weights.astype(v.dtype), vc, preferred_element_type=jnp.float32
        )
        return (new_peak, total, out), None

    init = (
        jnp.full((b, h, nq, 1), -jnp.inf),
        jnp.zeros((b, h, nq, 1)),
        jnp.zeros((b, h, nq, v.shape[-1])),
    )
    (_, total, out), _ = jax.lax.scan(step, init, (blocks(k), blocks(v), valid))
    norm = jnp.maximum(total, jnp.finfo(jnp.float32).tiny)
    return (out / norm).astype(q.dtype), total / norm


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
    the kept share under dropout). Large problems are processed in query chunks, and on CPU large
    keys in blocks (`_key_block`): the same result, the [Nq, Nk] weights never exist at once.
    """
    b, h, nq, d = q.shape
    q = q * jnp.asarray(1.0 / np.sqrt(d), q.dtype)
    dropout = dropout_rate > 0.0 and dropout_rng is not None
    block = _key_block(nq, k.shape[2], d, dropout)
    n = _num_query_chunks(b, h, nq, block or k.shape[2])

    def one(args):
        qc, rng = args
        if block:
            return _attend_key_blocks(qc, k, v, key_valid, block)
        return _attend(qc, k, v, key_valid, dropout_rate, rng if dropout else None)

    if n == 1:
        return one((q, dropout_rng))
    chunks = rearrange(q, "b h (n c) d -> n b h c d", n=n)
    rngs = jax.random.split(dropout_rng, n) if dropout else jnp.zeros((n,), jnp.uint32)

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
