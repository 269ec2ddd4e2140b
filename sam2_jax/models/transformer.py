"""Two-way transformer of the SAM mask decoder
(<- sam2/modeling/sam/transformer.py::TwoWayTransformer, TwoWayAttentionBlock).

Batch-first: tokens [B, N, C]; image tokens [B, h*w, C] flattened row-major from [B, h, w, C].
All LayerNorms use the torch default eps 1e-5.
"""

from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from einops import rearrange

from sam2_jax.models.attention import Attention
from sam2_jax.models.layers import MLP, layer_norm

Dtype = Any
LN_EPS = 1e-5  # torch nn.LayerNorm default


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token->image cross-attention, MLP, image->token cross-attention.

    Submodules as official: `self_attn`, `norm1`, `cross_attn_token_to_image`, `norm2`,
    `mlp` (2-layer `MLP`: `layers_0`, `layers_1`), `norm3`, `norm4`, `cross_attn_image_to_token`.
    """

    embedding_dim: int
    num_heads: int
    mlp_dim: int = 2048
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    attention_downsample_rate: int = 2
    skip_first_layer_pe: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        queries: jax.Array,
        keys: jax.Array,
        query_pe: jax.Array,
        key_pe: jax.Array,
        token_valid: Optional[jax.Array] = None,
    ) -> tuple[jax.Array, jax.Array]:
        """queries/query_pe: [B, N, C]; keys [B, HW, C], key_pe [B or 1, HW, C];
        token_valid [B, N]: tokens never attended to where False (padding prompt slots).
        Returns (queries [B, N, C], keys [B, HW, C]).
        """
        c, heads, rate = self.embedding_dim, self.num_heads, self.attention_downsample_rate
        self_attn = Attention(c, heads, dtype=self.dtype, name="self_attn")
        if self.skip_first_layer_pe:
            queries = self_attn(queries, queries, queries, token_valid)
        else:
            q = queries + query_pe
            queries = queries + self_attn(q, q, queries, token_valid)
        queries = layer_norm(LN_EPS, "norm1")(queries)

        q = queries + query_pe
        k = keys + key_pe
        attn = Attention(c, heads, rate, dtype=self.dtype, name="cross_attn_token_to_image")
        queries = layer_norm(LN_EPS, "norm2")(queries + attn(q, k, keys))

        mlp = MLP(self.mlp_dim, c, 2, self.activation, dtype=self.dtype, name="mlp")
        queries = layer_norm(LN_EPS, "norm3")(queries + mlp(queries))

        q = queries + query_pe
        k = keys + key_pe
        attn = Attention(c, heads, rate, dtype=self.dtype, name="cross_attn_image_to_token")
        keys = layer_norm(LN_EPS, "norm4")(keys + attn(k, q, queries, token_valid))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """`depth` two-way blocks (`layers_{i}`, the first skips the query PE) then a final
    token->image attention (`final_attn_token_to_image`) and `norm_final_attn`.
    """

    depth: int
    embedding_dim: int
    num_heads: int
    mlp_dim: int
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    attention_downsample_rate: int = 2
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        image_embedding: jax.Array,
        image_pe: jax.Array,
        point_embedding: jax.Array,
        token_valid: Optional[jax.Array] = None,
    ) -> tuple[jax.Array, jax.Array]:
        """image_embedding [B, h, w, C], image_pe [B or 1, h, w, C], point_embedding [B, N, C],
        token_valid [B, N] (None: all valid). Returns (queries [B, N, C], keys [B, h*w, C]).
        """
        keys = rearrange(image_embedding, "b h w c -> b (h w) c")
        key_pe = rearrange(image_pe, "b h w c -> b (h w) c")
        queries = point_embedding
        for i in range(self.depth):
            queries, keys = TwoWayAttentionBlock(
                self.embedding_dim,
                self.num_heads,
                self.mlp_dim,
                self.activation,
                self.attention_downsample_rate,
                skip_first_layer_pe=(i == 0),
                dtype=self.dtype,
                name=f"layers_{i}",
            )(queries, keys, point_embedding, key_pe, token_valid)

        q = queries + point_embedding
        k = keys + key_pe
        attn = Attention(
            self.embedding_dim,
            self.num_heads,
            self.attention_downsample_rate,
            dtype=self.dtype,
            name="final_attn_token_to_image",
        )
        queries = layer_norm(LN_EPS, "norm_final_attn")(queries + attn(q, k, keys))
        return queries, keys
