"""Memory attention: condition the current frame's features on the memory bank.

<- sam2/modeling/memory_attention.py (`MemoryAttentionLayer`, `MemoryAttention`).

Batch-first throughout (the official module takes sequence-first inputs). Extension:
`memory_valid` masks memory tokens out of the cross-attention, so a fixed-size memory bank with
unused slots gives the official result on its valid tokens only.
"""

from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from sam2_jax.models.layers import gelu, layer_norm
from sam2_jax.models.rope import RoPEAttention

Dtype = Any
# torch LayerNorm default, used by every MemoryAttention norm.
LN_EPS = 1e-5


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
    """`sam2_utils.get_activation_fn`: "relu" | "gelu" (exact) | "glu" (last axis)."""
    fns = {"relu": nn.relu, "gelu": gelu, "glu": nn.glu}
    if name not in fns:
        raise ValueError(f"activation should be relu/gelu/glu, not {name}")
    return fns[name]


class MemoryAttentionLayer(nn.Module):
    """`MemoryAttentionLayer`: pre-norm RoPE self-attention, cross-attention to memory, FFN.

    Both attentions are `RoPEAttention(d_model, num_heads, downsample_rate, attn_dropout,
    rope_theta, feat_sizes)` as in every official config (`self_attention` / `cross_attention`
    of the YAML); the cross-attention adds `kv_in_dim` (memory channels) and `rope_k_repeat`.
    `dropout` is the rate of dropout1/2/3 and of the FFN dropout, `attn_dropout` the attention
    dropout; all are active only when not deterministic (rng 'dropout').
    """

    activation: str = "relu"
    d_model: int = 256
    dim_feedforward: int = 2048
    dropout: float = 0.1
    pos_enc_at_attn: bool = False
    pos_enc_at_cross_attn_keys: bool = True
    pos_enc_at_cross_attn_queries: bool = False
    num_heads: int = 1
    downsample_rate: int = 1
    attn_dropout: float = 0.1
    rope_theta: float = 10000.0
    feat_sizes: tuple[int, int] = (64, 64)
    kv_in_dim: int = 64
    dtype: Dtype = jnp.float32

    def _rope_attention(self, name: str, **kwargs) -> RoPEAttention:
        return RoPEAttention(
            embedding_dim=self.d_model,
            num_heads=self.num_heads,
            downsample_rate=self.downsample_rate,
            dropout=self.attn_dropout,
            rope_theta=self.rope_theta,
            feat_sizes=self.feat_sizes,
            dtype=self.dtype,
            name=name,
            **kwargs,
        )

    def setup(self) -> None:
        self.self_attn = self._rope_attention("self_attn")
        self.cross_attn_image = self._rope_attention(
            "cross_attn_image", kv_in_dim=self.kv_in_dim, rope_k_repeat=True
        )
        self.linear1 = nn.Dense(self.dim_feedforward, dtype=self.dtype)
        self.linear2 = nn.Dense(self.d_model, dtype=self.dtype)
        self.norm1 = layer_norm(LN_EPS, "norm1")
        self.norm2 = layer_norm(LN_EPS, "norm2")
        self.norm3 = layer_norm(LN_EPS, "norm3")
        # Official dropout1/2/3 after each sub-block and `dropout` inside the FFN.
        self.dropout1 = nn.Dropout(self.dropout)
        self.dropout2 = nn.Dropout(self.dropout)
        self.dropout3 = nn.Dropout(self.dropout)
        self.ffn_dropout = nn.Dropout(self.dropout)

    def __call__(
        self,
        tgt: jax.Array,
        memory: jax.Array,
        pos: jax.Array,
        query_pos: jax.Array,
        num_k_exclude_rope: int = 0,
        memory_valid: Optional[jax.Array] = None,
        deterministic: bool = True,
    ) -> jax.Array:
        """tgt/query_pos: [B, N, C], memory/pos: [B, M, C_mem], memory_valid: [B, M] -> [B, N, C].

        `num_k_exclude_rope` (static): trailing memory tokens (object pointers) without RoPE.
        """
        # Self-attention.
        x = self.norm1(tgt)
        qk = x + query_pos if self.pos_enc_at_attn else x
        x = self.self_attn(qk, qk, x, deterministic=deterministic)
        tgt = tgt + self.dropout1(x, deterministic=deterministic)
        # Cross-attention to the memory.
        x = self.norm2(tgt)
        x = self.cross_attn_image(
            x + query_pos if self.pos_enc_at_cross_attn_queries else x,
            memory + pos if self.pos_enc_at_cross_attn_keys else memory,
            memory,
            num_k_exclude_rope=num_k_exclude_rope,
            key_valid=memory_valid,
            deterministic=deterministic,
        )
        tgt = tgt + self.dropout2(x, deterministic=deterministic)
        # Feed-forward.
        x = activation_fn(self.activation)(self.linear1(self.norm3(tgt)))
        x = self.linear2(self.ffn_dropout(x, deterministic=deterministic))
        return tgt + self.dropout3(x, deterministic=deterministic)


class MemoryAttention(nn.Module):
    """`MemoryAttention`: `num_layers` `MemoryAttentionLayer`s (`layers_{i}`) and a final `norm`.

    The layer fields are those of `MemoryAttentionLayer` (its `d_model` is this `d_model`).
    """

    d_model: int = 256
    pos_enc_at_input: bool = True
    num_layers: int = 4
    activation: str = "relu"
    dim_feedforward: int = 2048
    dropout: float = 0.1
    pos_enc_at_attn: bool = False
    pos_enc_at_cross_attn_keys: bool = True
    pos_enc_at_cross_attn_queries: bool = False
    num_heads: int = 1
    downsample_rate: int = 1
    attn_dropout: float = 0.1
    rope_theta: float = 10000.0
    feat_sizes: tuple[int, int] = (64, 64)
    kv_in_dim: int = 64
    dtype: Dtype = jnp.float32

    def setup(self) -> None:
        self.layers = [
            MemoryAttentionLayer(
                activation=self.activation,
                d_model=self.d_model,
                dim_feedforward=self.dim_feedforward,
                dropout=self.dropout,
                pos_enc_at_attn=self.pos_enc_at_attn,
                pos_enc_at_cross_attn_keys=self.pos_enc_at_cross_attn_keys,
                pos_enc_at_cross_attn_queries=self.pos_enc_at_cross_attn_queries,
                num_heads=self.num_heads,
                downsample_rate=self.downsample_rate,
                attn_dropout=self.attn_dropout,
                rope_theta=self.rope_theta,
                feat_sizes=self.feat_sizes,
                kv_in_dim=self.kv_in_dim,
                dtype=self.dtype,
            )
            for _ in range(self.num_layers)
        ]
        self.norm = layer_norm(LN_EPS, "norm")

    def __call__(
        self,
        curr: jax.Array,
        curr_pos: jax.Array,
        memory: jax.Array,
        memory_pos: jax.Array,
        num_obj_ptr_tokens: int = 0,
        memory_valid: Optional[jax.Array] = None,
        deterministic: bool = True,
    ) -> jax.Array:
        """curr/curr_pos: [B, N, C], memory/memory_pos: [B, M, C_mem] -> [B, N, C].

        The N query tokens are a row-major square grid (or `feat_sizes`). Memory = frames of N
        tokens each, then `num_obj_ptr_tokens` (static) pointer tokens that get no RoPE.
        `memory_valid` [B, M] bool: False tokens are never attended (a fixed-size bank's unused
        slots). Output in fp32 (the final LayerNorm's dtype).
        """
        x = curr + 0.1 * curr_pos if self.pos_enc_at_input else curr
        for layer in self.layers:
            x = layer(
                x, memory, memory_pos, curr_pos, num_obj_ptr_tokens, memory_valid, deterministic
            )
        return self.norm(x)
