"""SAM prompt encoder (<- sam2/modeling/sam/prompt_encoder.py::PromptEncoder).

Points, boxes and mask prompts become sparse tokens [B, N', C] and a dense map [B, h, w, C]
(channels-last; official dense output is B×C×h×w). Extension: `mask_valid` [B] chooses per row
between the mask embedding and `no_mask_embed` with a select, so the presence of a mask prompt
can be data inside a scanned tracker.
"""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from sam2_jax.models.layers import LayerNorm2d, gelu
from sam2_jax.models.position_encoding import PositionEmbeddingRandom
from sam2_jax.ops.conv import Conv2d

Dtype = Any
NUM_POINT_EMBEDDINGS = 4  # negative / positive point, box top-left / bottom-right corner


def _batch_size(
    points: Optional[tuple[jax.Array, jax.Array]],
    boxes: Optional[jax.Array],
    masks: Optional[jax.Array],
) -> int:
    """Batch size of the first prompt given (points, boxes, masks), else 1 (as official)."""
    for x in (None if points is None else points[0], boxes, masks):
        if x is not None:
            return x.shape[0]
    return 1


class PromptEncoder(nn.Module):
    """Embeds point, box and mask prompts for the SAM mask decoder.

    Submodules as official: `pe_layer`, `point_embeddings_{0..3}`, `not_a_point_embed`,
    `mask_downscaling_{0,1,3,4,6}`, `no_mask_embed`. Sizes are (H, W).
    """

    embed_dim: int
    image_embedding_size: tuple[int, int]
    input_image_size: tuple[int, int]
    mask_in_chans: int
    dtype: Dtype = jnp.float32

    def setup(self) -> None:
        c, m = self.embed_dim, self.mask_in_chans
        self.pe_layer = PositionEmbeddingRandom(c // 2)
        self.point_embeddings = [nn.Embed(1, c) for _ in range(NUM_POINT_EMBEDDINGS)]
        self.not_a_point_embed = nn.Embed(1, c)
        self.no_mask_embed = nn.Embed(1, c)
        self.mask_downscaling_0 = Conv2d(m // 4, 2, 2, dtype=self.dtype)
        self.mask_downscaling_1 = LayerNorm2d()
        self.mask_downscaling_3 = Conv2d(m, 2, 2, dtype=self.dtype)
        self.mask_downscaling_4 = LayerNorm2d()
        self.mask_downscaling_6 = Conv2d(c, 1, dtype=self.dtype)

    @property
    def mask_input_size(self) -> tuple[int, int]:
        """Spatial size (H, W) of mask prompts: 4× the image embedding."""
        return 4 * self.image_embedding_size[0], 4 * self.image_embedding_size[1]

    def get_dense_pe(self) -> jax.Array:
        """Dense positional encoding of the image embedding grid: [1, h, w, C] fp32."""
        return self.pe_layer(self.image_embedding_size)[None]

    def _embed_points(self, coords: jax.Array, labels: jax.Array, pad: bool) -> jax.Array:
        """coords [B, N, 2] (x, y) pixels, labels [B, N] in {-1..3} -> [B, N (+1 if pad), C].

        Label -1 replaces the encoding by `not_a_point_embed`; labels 0..3 add
        `point_embeddings[l]`. `pad` appends the point (0, 0) with label -1.
        """
        coords = coords.astype(jnp.float32) + 0.5
        labels = labels.astype(jnp.int32)
        if pad:
            b = coords.shape[0]
            coords = jnp.concatenate([coords, jnp.zeros((b, 1, 2), jnp.float32)], axis=1)
            labels = jnp.concatenate([labels, -jnp.ones((b, 1), jnp.int32)], axis=1)
        emb = self.pe_layer.forward_with_coords(coords, self.input_image_size)
        labels = labels[..., None]
        not_a_point = jnp.broadcast_to(self.not_a_point_embed.embedding, emb.shape)
        emb = jnp.where(labels == -1, not_a_point, emb)
        for i, point_embed in enumerate(self.point_embeddings):
            emb = jnp.where(labels == i, emb + point_embed.embedding, emb)
        return emb

    def _embed_boxes(self, boxes: jax.Array) -> jax.Array:
        """boxes [B, 4] (x0, y0, x1, y1) pixels -> corner tokens [B, 2, C]."""
        corners = boxes.astype(jnp.float32).reshape(-1, 2, 2) + 0.5
        emb = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_embeds = jnp.concatenate(
            [self.point_embeddings[2].embedding, self.point_embeddings[3].embedding], axis=0
        )
        return emb + corner_embeds

    def _embed_masks(self, masks: jax.Array) -> jax.Array:
        """masks [B, 4h, 4w, 1] -> [B, h, w, C]."""
        x = masks.astype(self.dtype)
        x = gelu(self.mask_downscaling_1(self.mask_downscaling_0(x)))
        x = gelu(self.mask_downscaling_4(self.mask_downscaling_3(x)))
        return self.mask_downscaling_6(x)

    def _init_all_params(self) -> None:
        """Create every param at init, whatever prompts the init call carried."""
        h, w = self.mask_input_size
        self._embed_points(jnp.zeros((1, 1, 2)), jnp.zeros((1, 1), jnp.int32), pad=False)
        self._embed_masks(jnp.zeros((1, h, w, 1), self.dtype))

    def __call__(
        self,
        points: Optional[tuple[jax.Array, jax.Array]],
        boxes: Optional[jax.Array],
        masks: Optional[jax.Array],
        mask_valid: Optional[jax.Array] = None,
    ) -> tuple[jax.Array, jax.Array]:
        """Embed prompts as official `PromptEncoder.forward`.

        points: (coords [B, N, 2] float pixels (x, y), labels [B, N] int) or None; a padding
        point is appended iff `boxes` is None. boxes: [B, 4] or None. masks: [B, 4h, 4w, 1] or
        None. mask_valid: [B] bool or None (needs `masks`): rows where False use `no_mask_embed`.
        Returns (sparse [B, N', C], dense [B, h, w, C]).
        """
        if self.is_initializing():
            self._init_all_params()
        if mask_valid is not None and masks is None:
            raise ValueError("mask_valid needs masks")
        bs = _batch_size(points, boxes, masks)
        sparse = [jnp.zeros((bs, 0, self.embed_dim), jnp.float32)]
        if points is not None:
            sparse.append(self._embed_points(*points, pad=boxes is None))
        if boxes is not None:
            sparse.append(self._embed_boxes(boxes))
        sparse_embeddings = jnp.concatenate(sparse, axis=1).astype(self.dtype)

        h, w = self.image_embedding_size
        no_mask = jnp.broadcast_to(
            self.no_mask_embed.embedding.reshape(1, 1, 1, -1), (bs, h, w, self.embed_dim)
        ).astype(self.dtype)
        if masks is None:
            return sparse_embeddings, no_mask
        dense = self._embed_masks(masks)
        if mask_valid is not None:
            dense = jnp.where(mask_valid[:, None, None, None], dense, no_mask)
        return sparse_embeddings, dense
