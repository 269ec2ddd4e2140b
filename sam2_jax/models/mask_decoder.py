"""SAM mask decoder (<- sam2/modeling/sam/mask_decoder.py::MaskDecoder).

Channels-last inputs ([B, h, w, C]); mask logits are returned as [B, K, 4h, 4w] like official.
`dynamic_multimask_via_stability` / `stability_fallback_index` are pure functions so a tracker
can apply the single-mask stability fallback per row.
"""

from typing import Any, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from einops import rearrange

from sam2_jax.models.layers import MLP, LayerNorm2d, gelu
from sam2_jax.models.transformer import TwoWayTransformer
from sam2_jax.ops.conv import Conv2d

Dtype = Any


class MaskDecoderOutput(NamedTuple):
    """masks [B, K, 4h, 4w], iou_pred [B, K], sam_tokens_out [B, K', C], object_score_logits
    [B, 1]; K = 3 with multimask output else 1, K' = 3 iff multimask output and
    `use_multimask_token_for_obj_ptr` else 1."""

    masks: jax.Array
    iou_pred: jax.Array
    sam_tokens_out: jax.Array
    object_score_logits: jax.Array


def stability_scores(mask_logits: jax.Array, delta: float) -> jax.Array:
    """`MaskDecoder._get_stability_scores`: mask_logits [..., H, W] -> [...] fp32.

    area(logits > delta) / area(logits > -delta), or 1 where the second area is 0.
    """
    area_i = jnp.sum(mask_logits > delta, axis=(-2, -1)).astype(jnp.float32)
    area_u = jnp.sum(mask_logits > -delta, axis=(-2, -1)).astype(jnp.float32)
    return jnp.where(area_u > 0, area_i / jnp.maximum(area_u, 1.0), 1.0)


def stability_fallback_index(
    all_mask_logits: jax.Array, all_iou_scores: jax.Array, delta: float, thresh: float
) -> jax.Array:
    """Index (into all K+1 outputs) of the mask `_dynamic_multimask_via_stability` picks.

    all_mask_logits [B, K+1, H, W], all_iou_scores [B, K+1] -> [B] int32: 0 where the
    single-mask output (token 0) has stability >= thresh, else 1 + argmax of the multimask IoUs
    (first maximum on ties, as torch.argmax).
    """
    best_multi = 1 + jnp.argmax(all_iou_scores[:, 1:], axis=-1).astype(jnp.int32)
    is_stable = stability_scores(all_mask_logits[:, 0], delta) >= thresh
    return jnp.where(is_stable, 0, best_multi)


def dynamic_multimask_via_stability(
    all_mask_logits: jax.Array, all_iou_scores: jax.Array, delta: float, thresh: float
) -> tuple[jax.Array, jax.Array]:
    """`MaskDecoder._dynamic_multimask_via_stability`.

    all_mask_logits [B, K+1, H, W], all_iou_scores [B, K+1] -> (masks [B, 1, H, W],
    iou [B, 1]): the single mask where stable, else the multimask output with the best IoU.
    """
    idx = stability_fallback_index(all_mask_logits, all_iou_scores, delta, thresh)
    masks = jnp.take_along_axis(all_mask_logits, idx[:, None, None, None], axis=1)
    ious = jnp.take_along_axis(all_iou_scores, idx[:, None], axis=1)
    return masks, ious


class ConvTranspose2x2(nn.Module):
    """`nn.ConvTranspose2d(in, features, kernel_size=2, stride=2)`: x [B, h, w, in] ->
    [B, 2h, 2w, features]. Params `kernel` [2, 2, in, features], `bias` [features].

    The 2×2 stride-2 windows do not overlap, so each input pixel writes its own 2×2 output block:
    out[b, 2i+p, 2j+q, o] = sum_c x[b, i, j, c] kernel[p, q, c, o] + bias[o].
    """

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (2, 2, x.shape[-1], self.features)
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        y = jnp.einsum("bhwc,pqco->bhpwqo", x.astype(self.dtype), kernel.astype(self.dtype))
        y = rearrange(y, "b h p w q o -> b (h p) (w q) o")
        return y + bias.astype(self.dtype)


class MaskDecoder(nn.Module):
    """Predicts masks, IoUs and object scores from image and prompt embeddings.

    `transformer` is a `TwoWayTransformer` passed as a field, so its params live under
    `transformer` (build it unbound, e.g. in the parent's `setup`). Submodules as official:
    `iou_token`, `mask_tokens`, `obj_score_token`, `output_upscaling_{0,1,3}`, `conv_s0`,
    `conv_s1`, `output_hypernetworks_mlps_{i}`, `iou_prediction_head`, `pred_obj_score_head`.
    """

    transformer_dim: int
    transformer: TwoWayTransformer
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    use_high_res_features: bool = False
    iou_prediction_use_sigmoid: bool = False
    dynamic_multimask_via_stability: bool = False
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98
    pred_obj_scores: bool = False
    pred_obj_scores_mlp: bool = False
    use_multimask_token_for_obj_ptr: bool = False
    dtype: Dtype = jnp.float32

    @property
    def num_mask_tokens(self) -> int:
        return self.num_multimask_outputs + 1

    def setup(self) -> None:
        c, dt = self.transformer_dim, self.dtype
        self.iou_token = nn.Embed(1, c)
        self.mask_tokens = nn.Embed(self.num_mask_tokens, c)
        if self.pred_obj_scores:
            self.obj_score_token = nn.Embed(1, c)
        self.output_upscaling_0 = ConvTranspose2x2(c // 4, dtype=dt)
        self.output_upscaling_1 = LayerNorm2d()
        self.output_upscaling_3 = ConvTranspose2x2(c // 8, dtype=dt)
        if self.use_high_res_features:
            self.conv_s0 = Conv2d(c // 8, 1, dtype=dt)
            self.conv_s1 = Conv2d(c // 4, 1, dtype=dt)
        self.output_hypernetworks_mlps = [
            MLP(c, c // 8, 3, dtype=dt) for _ in range(self.num_mask_tokens)
        ]
        self.iou_prediction_head = MLP(
            self.iou_head_hidden_dim,
            self.num_mask_tokens,
            self.iou_head_depth,
            sigmoid_output=self.iou_prediction_use_sigmoid,
            dtype=dt,
        )
        if self.pred_obj_scores:
            self.pred_obj_score_head = (
                MLP(c, 1, 3, dtype=dt) if self.pred_obj_scores_mlp else nn.Dense(1, dtype=dt)
            )

    def project_high_res_features(
        self, feat_s0: jax.Array, feat_s1: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """`conv_s0` / `conv_s1` of `SAM2Base.forward_image` (needs `use_high_res_features`).

        feat_s0 [B, 4h, 4w, C], feat_s1 [B, 2h, 2w, C] -> ([B, 4h, 4w, C/8], [B, 2h, 2w, C/4]).
        """
        return self.conv_s0(feat_s0), self.conv_s1(feat_s1)

    def _output_tokens(self) -> jax.Array:
        """[T, C]: (obj_score_token,) iou_token, mask_tokens."""
        tokens = [self.iou_token.embedding, self.mask_tokens.embedding]
        if self.pred_obj_scores:
            tokens.insert(0, self.obj_score_token.embedding)
        return jnp.concatenate(tokens, axis=0)

    def _upscale(
        self, src: jax.Array, high_res_features: Optional[tuple[jax.Array, jax.Array]]
    ) -> jax.Array:
        """src [B, h, w, C] -> [B, 4h, 4w, C/8] (adding the projected high-res features)."""
        x = self.output_upscaling_0(src)
        if self.use_high_res_features:
            feat_s0, feat_s1 = high_res_features
            x = gelu(self.output_upscaling_1(x + feat_s1))
            return gelu(self.output_upscaling_3(x) + feat_s0)
        return gelu(self.output_upscaling_3(gelu(self.output_upscaling_1(x))))

    def predict_masks(
        self,
        image_embeddings: jax.Array,
        image_pe: jax.Array,
        sparse_prompt_embeddings: jax.Array,
        dense_prompt_embeddings: jax.Array,
        repeat_image: bool,
        high_res_features: Optional[tuple[jax.Array, jax.Array]] = None,
        sparse_valid: Optional[jax.Array] = None,
    ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """All K+1 = `num_mask_tokens` outputs, as official `predict_masks`.

        sparse_valid [B, N] marks padding prompt tokens (False) that no token or pixel attends
        to, so a fixed number of point slots gives the official result of fewer points.
        image_embeddings [B or 1 (repeat_image), h, w, C], image_pe [1, h, w, C], sparse
        [B, N, C], dense [B, h, w, C], high_res_features ([B, 4h, 4w, C/8], [B, 2h, 2w, C/4]).
        Returns (masks [B, K+1, 4h, 4w], iou_pred [B, K+1], mask_tokens_out [B, K+1, C],
        object_score_logits [B, 1]).
        """
        b = sparse_prompt_embeddings.shape[0]
        s = 1 if self.pred_obj_scores else 0
        output_tokens = self._output_tokens().astype(sparse_prompt_embeddings.dtype)
        output_tokens = jnp.broadcast_to(output_tokens[None], (b,) + output_tokens.shape)
        tokens = jnp.concatenate([output_tokens, sparse_prompt_embeddings], axis=1)

        src = jnp.repeat(image_embeddings, b, axis=0) if repeat_image else image_embeddings
        if src.shape[0] != b:
            raise ValueError(f"image batch {src.shape[0]} != prompt batch {b}")
        src = src + dense_prompt_embeddings
        if image_pe.shape[0] != 1:
            raise ValueError("image_pe should have size 1 in batch dim (from `get_dense_pe()`)")
        token_valid = None
        if sparse_valid is not None:
            token_valid = jnp.concatenate(
                [jnp.ones(output_tokens.shape[:2], bool), sparse_valid], axis=1
            )
        hs, keys = self.transformer(src, image_pe, tokens, token_valid)
        iou_token_out = hs[:, s]
        mask_tokens_out = hs[:, s + 1 : s + 1 + self.num_mask_tokens]

        h, w = src.shape[1:3]
        src = rearrange(keys, "b (h w) c -> b h w c", h=h, w=w)
        upscaled = self._upscale(src, high_res_features)
        # for sam2_jax.train.memory_probe and read_out_init
        self.sow("intermediates", "src", src)
        self.sow("intermediates", "upscaled", upscaled)
        hyper_in = jnp.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            axis=1,
        )
        masks = jnp.einsum("bkc,bhwc->bkhw", hyper_in, upscaled)

        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0])
        else:
            object_score_logits = jnp.full((b, 1), 10.0, iou_pred.dtype)
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def __call__(
        self,
        image_embeddings: jax.Array,
        image_pe: jax.Array,
        sparse_prompt_embeddings: jax.Array,
        dense_prompt_embeddings: jax.Array,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: Optional[tuple[jax.Array, jax.Array]] = None,
        deterministic: bool = True,
    ) -> MaskDecoderOutput:
        """Official `MaskDecoder.forward`; `multimask_output` and `repeat_image` are static.

        Multimask: outputs 1..K. Single mask: output 0, or with `dynamic_multimask_via_stability`
        and `deterministic` (official: not training) the stability fallback. Shapes as
        `predict_masks`; see `MaskDecoderOutput`.
        """
        if self.use_high_res_features and self.is_initializing():
            c = self.transformer_dim
            self.project_high_res_features(jnp.zeros((1, 1, 1, c)), jnp.zeros((1, 1, 1, c)))
        masks, iou_pred, mask_tokens_out, object_score_logits = self.predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            repeat_image,
            high_res_features,
        )
        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and deterministic:
            masks, iou_pred = dynamic_multimask_via_stability(
                masks,
                iou_pred,
                self.dynamic_multimask_stability_delta,
                self.dynamic_multimask_stability_thresh,
            )
        else:
            masks, iou_pred = masks[:, 0:1], iou_pred[:, 0:1]

        if multimask_output and self.use_multimask_token_for_obj_ptr:
            sam_tokens_out = mask_tokens_out[:, 1:]
        else:
            sam_tokens_out = mask_tokens_out[:, 0:1]
        return MaskDecoderOutput(masks, iou_pred, sam_tokens_out, object_score_logits)
