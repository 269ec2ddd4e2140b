"""The SAM 2 model: submodules and per-frame primitives (<- sam2/modeling/sam2_base.py).

`SAM2` holds every parameter of an official checkpoint under the official names (`image_encoder`,
`memory_attention`, `memory_encoder`, `sam_prompt_encoder`, `sam_mask_decoder`, `obj_ptr_proj`,
`obj_ptr_tpos_proj`, `mask_downsample`, `maskmem_tpos_enc`, `no_mem_embed`, `no_mem_pos_enc`,
`no_obj_ptr`, `no_obj_embed_spatial`). It exposes per-frame primitives only; loops over frames live
in the tracker, state in the memory bank. Everything is channels-last: images [B, H, W, 3],
features [B, h, w, C]; mask logits are [B, K, H, W].
"""

from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from sam2_jax.models.fpn_neck import FpnNeck
from sam2_jax.models.hiera import Hiera
from sam2_jax.models.image_encoder import ImageEncoder
from sam2_jax.models.layers import MLP
from sam2_jax.models.mask_decoder import MaskDecoder, stability_fallback_index
from sam2_jax.models.memory_attention import MemoryAttention
from sam2_jax.models.memory_encoder import MemoryEncoder
from sam2_jax.models.position_encoding import get_1d_sine_pe, sine_position_encoding
from sam2_jax.models.prompt_encoder import PromptEncoder
from sam2_jax.models.transformer import TwoWayTransformer
from sam2_jax.ops.conv import Conv2d
from sam2_jax.ops.interpolate import resize

NO_OBJ_SCORE = -1024.0


class BackboneOutput(NamedTuple):
    """`forward_image` output; levels high-res first, after `scalp` and the conv_s0/s1 projections.

    vision_features: [B, h, w, 256] (stride 16); backbone_fpn: ([B, 4h, 4w, 32], [B, 2h, 2w, 64],
    [B, h, w, 256]); vision_pos_enc: one [B, h_l, w_l, 256] per level.
    """

    vision_features: jax.Array
    vision_pos_enc: tuple[jax.Array, ...]
    backbone_fpn: tuple[jax.Array, ...]


class SamHeadsOutput(NamedTuple):
    """`_forward_sam_heads` outputs. K = 3 with multimask output, else 1.

    low_res_multimasks [B, K, 4h, 4w]; high_res_multimasks [B, K, H, W]; ious [B, K];
    low_res_masks [B, 1, 4h, 4w]; high_res_masks [B, 1, H, W]; obj_ptr [B, C];
    object_score_logits [B, 1].
    """

    low_res_multimasks: jax.Array
    high_res_multimasks: jax.Array
    ious: jax.Array
    low_res_masks: jax.Array
    high_res_masks: jax.Array
    obj_ptr: jax.Array
    object_score_logits: jax.Array


class TrackHeadsOutput(NamedTuple):
    """`track_sam_heads` outputs: all 4 decoder masks, gated by the object score.

    all_masks [O, 4, 4h, 4w]; all_ious [O, 4]; index [O] of the chosen mask;
    low_res_masks [O, 4h, 4w] (the chosen one); obj_ptr [O, C]; object_score_logits [O, 1].
    """

    all_masks: jax.Array
    all_ious: jax.Array
    index: jax.Array
    low_res_masks: jax.Array
    obj_ptr: jax.Array
    object_score_logits: jax.Array


def _trunc_normal(stddev: float = 0.02):
    return nn.initializers.truncated_normal(stddev=stddev)


class SAM2(nn.Module):
    """All SAM 2 parameters plus the per-frame primitives of `SAM2Base`.

    `cfg` is a frozen model config (`configs/models/sam2.py`).
    """

    cfg: ml_collections.FrozenConfigDict

    @property
    def hidden_dim(self) -> int:
        return self.cfg.image_encoder.neck.d_model

    @property
    def mem_dim(self) -> int:
        return self.cfg.memory_encoder.out_dim

    @property
    def embedding_size(self) -> int:
        """Side of the stride-16 feature map (64 at 1024 px)."""
        return self.cfg.image_size // self.cfg.backbone_stride

    def setup(self) -> None:
        c = self.cfg
        dtype = jnp.dtype(c.dtype)
        trunk = dict(c.image_encoder.trunk)
        self.image_encoder = ImageEncoder(
            trunk=Hiera(**trunk, dtype=dtype),
            neck=FpnNeck(**dict(c.image_encoder.neck), dtype=dtype),
            scalp=c.image_encoder.scalp,
        )
        s = self.embedding_size
        self.sam_prompt_encoder = PromptEncoder(
            embed_dim=self.hidden_dim,
            image_embedding_size=(s, s),
            input_image_size=(c.image_size, c.image_size),
            mask_in_chans=16,
            dtype=dtype,
        )
        extra = c.sam_mask_decoder_extra_args
        self.sam_mask_decoder = MaskDecoder(
            transformer_dim=self.hidden_dim,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=self.hidden_dim, mlp_dim=2048, num_heads=8, dtype=dtype
            ),
            num_multimask_outputs=3,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
            use_high_res_features=c.use_high_res_features_in_sam,
            iou_prediction_use_sigmoid=c.iou_prediction_use_sigmoid,
            dynamic_multimask_via_stability=extra.dynamic_multimask_via_stability,
            dynamic_multimask_stability_delta=extra.dynamic_multimask_stability_delta,
            dynamic_multimask_stability_thresh=extra.dynamic_multimask_stability_thresh,
            pred_obj_scores=c.pred_obj_scores,
            pred_obj_scores_mlp=c.pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr=c.use_multimask_token_for_obj_ptr,
            dtype=dtype,
        )
        self.memory_attention = _memory_attention(c.memory_attention, dtype)
        self.memory_encoder = _memory_encoder(c.memory_encoder, self.hidden_dim, dtype)
        if c.use_obj_ptrs_in_encoder:
            self.mask_downsample = Conv2d(1, 4, 4, dtype=dtype)
            if c.use_mlp_for_obj_ptr_proj:
                self.obj_ptr_proj = MLP(self.hidden_dim, self.hidden_dim, 3, dtype=dtype)
            else:
                self.obj_ptr_proj = nn.Dense(self.hidden_dim, dtype=dtype)
        if c.proj_tpos_enc_in_obj_ptrs:
            self.obj_ptr_tpos_proj = nn.Dense(self.mem_dim, dtype=dtype)
        self.maskmem_tpos_enc = self.param(
            "maskmem_tpos_enc", _trunc_normal(), (c.num_maskmem, 1, 1, self.mem_dim)
        )
        self.no_mem_embed = self.param("no_mem_embed", _trunc_normal(), (1, 1, self.hidden_dim))
        self.no_mem_pos_enc = self.param("no_mem_pos_enc", _trunc_normal(), (1, 1, self.hidden_dim))
        if c.pred_obj_scores and c.use_obj_ptrs_in_encoder:
            self.no_obj_ptr = self.param("no_obj_ptr", _trunc_normal(), (1, self.hidden_dim))
        if c.no_obj_embed_spatial:
            self.no_obj_embed_spatial = self.param(
                "no_obj_embed_spatial", _trunc_normal(), (1, self.mem_dim)
            )

    # ----------------------------------------------------------------------------- image
    def forward_image(self, images: jax.Array, deterministic: bool = True) -> BackboneOutput:
        """`SAM2Base.forward_image`: images [B, S, S, 3] (normalised) -> BackboneOutput."""
        out = self.image_encoder(images, deterministic=deterministic)
        fpn = list(out.backbone_fpn)
        if self.cfg.use_high_res_features_in_sam:
            fpn[0] = self.sam_mask_decoder.conv_s0(fpn[0])
            fpn[1] = self.sam_mask_decoder.conv_s1(fpn[1])
        return BackboneOutput(out.vision_features, tuple(out.vision_pos_enc), tuple(fpn))

    def add_no_mem_embed(self, vision_features: jax.Array) -> jax.Array:
        """Features of a frame without memory: [B, h, w, C] + `no_mem_embed` (the image path)."""
        return vision_features + self.no_mem_embed.astype(vision_features.dtype)

    # ----------------------------------------------------------------------------- SAM heads
    def forward_sam_heads(
        self,
        backbone_features: jax.Array,
        point_coords: jax.Array,
        point_labels: jax.Array,
        mask_inputs: Optional[jax.Array] = None,
        high_res_features: Optional[tuple[jax.Array, jax.Array]] = None,
        multimask_output: bool = False,
        deterministic: bool = True,
    ) -> SamHeadsOutput:
        """`SAM2Base._forward_sam_heads`.

        backbone_features [B, h, w, C]; point_coords [B, P, 2] (model-input pixels) and
        point_labels [B, P] int (-1 = padding; pass one (0, 0) point with label -1 for "no
        points", as official); mask_inputs [B, Hm, Wm] float or None (resized to the prompt
        encoder's mask size with antialiased bilinear when it differs).
        """
        b = backbone_features.shape[0]
        mask_prompt = None
        if mask_inputs is not None:
            size = (4 * self.embedding_size, 4 * self.embedding_size)
            mask_prompt = mask_inputs.astype(jnp.float32)
            if mask_prompt.shape[-2:] != size:
                mask_prompt = resize(mask_prompt, size, "bilinear", antialias=True)
            mask_prompt = mask_prompt[..., None]
        sparse, dense = self.sam_prompt_encoder((point_coords, point_labels), None, mask_prompt)
        dec = self.sam_mask_decoder(
            backbone_features,
            self.sam_prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            multimask_output=multimask_output,
            repeat_image=False,
            high_res_features=high_res_features,
            deterministic=deterministic,
        )
        low_res_multimasks, ious = dec.masks, dec.iou_pred
        object_score_logits = dec.object_score_logits
        is_obj = object_score_logits > 0  # [B, 1]
        if self.cfg.pred_obj_scores:
            low_res_multimasks = jnp.where(
                is_obj[:, :, None, None], low_res_multimasks, NO_OBJ_SCORE
            )
        low_res_multimasks = low_res_multimasks.astype(jnp.float32)
        size = (self.cfg.image_size, self.cfg.image_size)
        high_res_multimasks = resize(low_res_multimasks, size, "bilinear")

        tokens = dec.sam_tokens_out
        token = tokens[:, 0]
        if multimask_output:
            best = jnp.argmax(ious, axis=-1)
            rows = jnp.arange(b)
            low_res_masks = low_res_multimasks[rows, best][:, None]
            high_res_masks = high_res_multimasks[rows, best][:, None]
            if tokens.shape[1] > 1:
                token = tokens[rows, best]
        else:
            low_res_masks, high_res_masks = low_res_multimasks, high_res_multimasks
        obj_ptr = self.project_obj_ptr(token, object_score_logits)
        return SamHeadsOutput(
            low_res_multimasks,
            high_res_multimasks,
            ious,
            low_res_masks,
            high_res_masks,
            obj_ptr,
            object_score_logits,
        )

    def project_obj_ptr(self, token: jax.Array, object_score_logits: jax.Array) -> jax.Array:
        """obj_ptr_proj(token) gated by the object score: token [B, C] -> [B, C] fp32."""
        obj_ptr = self.obj_ptr_proj(token).astype(jnp.float32)
        if self.cfg.pred_obj_scores:
            if self.cfg.soft_no_obj_ptr:
                lam = jax.nn.sigmoid(object_score_logits.astype(jnp.float32))
            else:
                lam = (object_score_logits > 0).astype(jnp.float32)
            obj_ptr = self.gate_obj_ptr(obj_ptr, lam)
        return obj_ptr

    def gate_obj_ptr(self, obj_ptr: jax.Array, lam: jax.Array) -> jax.Array:
        """λ·ptr + (1−λ)·no_obj_ptr (with `fixed_no_obj_ptr`); lam [B, 1] in [0, 1]."""
        if self.cfg.fixed_no_obj_ptr:
            obj_ptr = lam * obj_ptr
        return obj_ptr + (1 - lam) * self.no_obj_ptr

    def use_mask_as_output(
        self,
        backbone_features: jax.Array,
        high_res_features: Optional[tuple[jax.Array, jax.Array]],
        mask_inputs: jax.Array,
    ) -> SamHeadsOutput:
        """`SAM2Base._use_mask_as_output`: mask_inputs [B, S, S] ({0, 1}) -> SamHeadsOutput."""
        out_scale, out_bias = 20.0, -10.0
        mask = mask_inputs.astype(jnp.float32)
        high_res_masks = (mask * out_scale + out_bias)[:, None]
        s = self.cfg.image_size // 4
        low_res_masks = resize(high_res_masks, (s, s), "bilinear", antialias=True)
        ious = jnp.ones((mask.shape[0], 1), jnp.float32)
        if self.cfg.use_obj_ptrs_in_encoder:
            downsampled = self.mask_downsample(mask[..., None])[..., 0]
            b = mask.shape[0]
            obj_ptr = self.forward_sam_heads(
                backbone_features,
                jnp.zeros((b, 1, 2), jnp.float32),
                -jnp.ones((b, 1), jnp.int32),
                mask_inputs=downsampled,
                high_res_features=high_res_features,
            ).obj_ptr
        else:
            obj_ptr = jnp.zeros((mask.shape[0], self.hidden_dim), jnp.float32)
        lam = jnp.any(mask.reshape(mask.shape[0], -1) > 0, axis=1)[:, None].astype(jnp.float32)
        object_score_logits = out_scale * lam + out_bias
        if self.cfg.pred_obj_scores:
            obj_ptr = self.gate_obj_ptr(obj_ptr, lam)
        return SamHeadsOutput(
            low_res_masks,
            high_res_masks,
            ious,
            low_res_masks,
            high_res_masks,
            obj_ptr,
            object_score_logits,
        )

    # ----------------------------------------------------------------------------- video
    def track_sam_heads(
        self,
        backbone_features: jax.Array,
        point_coords: jax.Array,
        point_labels: jax.Array,
        mask_inputs: jax.Array,
        mask_valid: jax.Array,
        high_res_features: tuple[jax.Array, jax.Array],
        multimask: jax.Array,
        deterministic: bool = True,
    ) -> "TrackHeadsOutput":
        """`_forward_sam_heads` with the per-object choices as data (one decoder run).

        backbone_features [O, h, w, C]; point_coords [O, P, 2], point_labels [O, P] (user
        points first, then -1 padding slots, which are masked out of the decoder);
        mask_inputs [O, 4h, 4w] logits used as the dense prompt where mask_valid [O] is True;
        multimask [O] bool: best-IoU of the 3 multimask outputs, else the single-mask output
        (or the stability fallback when `dynamic_multimask_via_stability` is on).
        """
        sparse, dense = self.sam_prompt_encoder(
            (point_coords, point_labels), None, mask_inputs[..., None], mask_valid
        )
        # Official token count: the user points (or one padding point when there are none)
        # plus the encoder's own padding point; the other slots are masked out.
        num_points = jnp.sum(point_labels >= 0, axis=1, keepdims=True)
        slots = jnp.arange(point_labels.shape[1])[None, :]
        sparse_valid = jnp.concatenate(
            [slots < jnp.maximum(num_points, 1), jnp.ones_like(num_points, bool)], axis=1
        )
        masks, ious, tokens, object_score_logits = self.sam_mask_decoder.predict_masks(
            backbone_features,
            self.sam_prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            repeat_image=False,
            high_res_features=high_res_features,
            sparse_valid=sparse_valid,
        )
        masks = masks.astype(jnp.float32)
        if self.cfg.pred_obj_scores:
            is_obj = object_score_logits > 0
            masks = jnp.where(is_obj[:, :, None, None], masks, NO_OBJ_SCORE)
        best_multi = 1 + jnp.argmax(ious[:, 1:], axis=-1).astype(jnp.int32)
        extra = self.cfg.sam_mask_decoder_extra_args
        if extra.dynamic_multimask_via_stability and deterministic:
            single = stability_fallback_index(
                masks,
                ious,
                extra.dynamic_multimask_stability_delta,
                extra.dynamic_multimask_stability_thresh,
            )
        else:
            single = jnp.zeros_like(best_multi)
        index = jnp.where(multimask, best_multi, single)
        rows = jnp.arange(masks.shape[0])
        use_multi_token = multimask & self.cfg.use_multimask_token_for_obj_ptr
        token = tokens[rows, jnp.where(use_multi_token, best_multi, 0)]
        obj_ptr = self.project_obj_ptr(token, object_score_logits)
        return TrackHeadsOutput(
            masks,
            ious.astype(jnp.float32),
            index,
            masks[rows, index],
            obj_ptr,
            object_score_logits.astype(jnp.float32),
        )

    def condition_on_memory(
        self,
        vision_features: jax.Array,
        vision_pos: jax.Array,
        memory: jax.Array,
        memory_pos: jax.Array,
        memory_valid: jax.Array,
        num_obj_ptr_tokens: int,
        deterministic: bool = True,
    ) -> jax.Array:
        """Memory attention of the current frame (`_prepare_memory_conditioned_features`).

        vision_features [O, h, w, C], vision_pos [h, w, C]; memory/memory_pos [O, M, mem_dim],
        memory_valid [O, M]; the trailing `num_obj_ptr_tokens` keys are object pointers.
        Returns [O, h, w, C].
        """
        o, h, w, c = vision_features.shape
        curr = vision_features.reshape(o, h * w, c)
        pos = jnp.broadcast_to(vision_pos.reshape(1, h * w, c), curr.shape)
        out = self.memory_attention(
            curr, pos, memory, memory_pos, num_obj_ptr_tokens, memory_valid, deterministic
        )
        return out.reshape(o, h, w, c).astype(vision_features.dtype)

    def maskmem_pos_enc(self) -> jax.Array:
        """Spatial position encoding of every memory frame: [h*w, mem_dim] (a constant)."""
        s = self.embedding_size
        enc = self.cfg.memory_encoder
        pe = sine_position_encoding(s, s, enc.pos_num_feats, enc.pos_temperature)
        return pe.reshape(s * s, -1)

    def memory_tpos(self, index: jax.Array) -> jax.Array:
        """`maskmem_tpos_enc[index]`: index [...] int -> [..., mem_dim]."""
        return self.maskmem_tpos_enc[index, 0, 0]

    def obj_ptr_pos(self, rel_pos: jax.Array, max_ptrs: jax.Array) -> jax.Array:
        """Temporal encoding of object pointers: rel_pos [...] (frames) -> [..., mem_dim].

        2.1: sine(rel_pos / (max_ptrs - 1), hidden_dim) -> obj_ptr_tpos_proj; 2.0: zeros.
        """
        c = self.cfg
        if not c.add_tpos_enc_to_obj_ptrs:
            return jnp.zeros((*rel_pos.shape, self.mem_dim), jnp.float32)
        denom = jnp.maximum(max_ptrs - 1, 1).astype(jnp.float32)  # official divides by 0 at T=1
        dim = self.hidden_dim if c.proj_tpos_enc_in_obj_ptrs else self.mem_dim
        pe = get_1d_sine_pe(rel_pos.astype(jnp.float32) / denom, dim)
        if c.proj_tpos_enc_in_obj_ptrs:
            pe = self.obj_ptr_tpos_proj(pe)
        return pe.astype(jnp.float32)

    def encode_memory(
        self,
        vision_features: jax.Array,
        high_res_masks: jax.Array,
        object_score_logits: jax.Array,
        binarize: jax.Array,
        deterministic: bool = True,
    ) -> jax.Array:
        """`_encode_new_memory`: raw features [O, h, w, C], mask logits [O, S, S],
        object_score_logits [O, 1], binarize [O] bool -> memory features [O, h, w, mem_dim]."""
        c = self.cfg
        logits = high_res_masks.astype(jnp.float32)
        mask = jnp.where(
            binarize[:, None, None], (logits > 0).astype(jnp.float32), jax.nn.sigmoid(logits)
        )
        mask = mask * c.sigmoid_scale_for_mem_enc + c.sigmoid_bias_for_mem_enc
        feats, _ = self.memory_encoder(
            vision_features, mask[..., None], skip_mask_sigmoid=True, deterministic=deterministic
        )
        if c.no_obj_embed_spatial:
            absent = (object_score_logits <= 0).astype(feats.dtype)[:, :, None, None]
            feats = feats + absent * self.no_obj_embed_spatial.astype(feats.dtype)
        return feats

    # ----------------------------------------------------------------------------- init
    def __call__(self, images: jax.Array) -> SamHeadsOutput:
        """Touch every submodule once (used by `init`): images [B, S, S, 3]."""
        bb = self.forward_image(images)
        b = images.shape[0]
        feats = self.add_no_mem_embed(bb.vision_features) + self.no_mem_pos_enc[None]
        hw = feats.shape[1] * feats.shape[2]
        mem_feats, mem_pos = self.memory_encoder(feats, jnp.zeros((b, *images.shape[1:3], 1)))
        if self.cfg.no_obj_embed_spatial:
            mem_feats = mem_feats + self.no_obj_embed_spatial
        mem = mem_feats.reshape(b, hw, -1)
        mem_pos = mem_pos.reshape(b, hw, -1) + self.maskmem_tpos_enc[0, 0]
        tokens = feats.reshape(b, hw, -1)
        if self.cfg.proj_tpos_enc_in_obj_ptrs:
            mem_pos = mem_pos + self.obj_ptr_tpos_proj(tokens)[:, :1]
        conditioned = self.memory_attention(tokens, tokens, mem, mem_pos)
        conditioned = conditioned.reshape(feats.shape)
        return self.use_mask_as_output(
            conditioned, bb.backbone_fpn[:2], jnp.zeros((b, *images.shape[1:3]))
        )


def _memory_attention(cfg: ml_collections.FrozenConfigDict, dtype: jnp.dtype) -> MemoryAttention:
    """MemoryAttention from `cfg.memory_attention` (the official YAML layout)."""
    layer, sa, ca = cfg.layer, cfg.layer.self_attention, cfg.layer.cross_attention
    shared = (
        "embedding_dim",
        "num_heads",
        "downsample_rate",
        "dropout",
        "rope_theta",
        "feat_sizes",
    )
    differing = [k for k in shared if sa[k] != ca[k]]
    if differing or not ca.rope_k_repeat:
        raise ValueError(
            "memory_attention: self- and cross-attention must share "
            f"{', '.join(shared)} and cross-attention needs rope_k_repeat=True, as in every "
            f"official config; they differ in {differing or ['rope_k_repeat']}"
        )
    return MemoryAttention(
        d_model=cfg.d_model,
        pos_enc_at_input=cfg.pos_enc_at_input,
        num_layers=cfg.num_layers,
        activation=layer.activation,
        dim_feedforward=layer.dim_feedforward,
        dropout=layer.dropout,
        pos_enc_at_attn=layer.pos_enc_at_attn,
        pos_enc_at_cross_attn_keys=layer.pos_enc_at_cross_attn_keys,
        pos_enc_at_cross_attn_queries=layer.pos_enc_at_cross_attn_queries,
        num_heads=sa.num_heads,
        downsample_rate=sa.downsample_rate,
        attn_dropout=sa.dropout,
        rope_theta=sa.rope_theta,
        feat_sizes=tuple(sa.feat_sizes),
        kv_in_dim=ca.kv_in_dim,
        dtype=dtype,
    )


def _memory_encoder(
    cfg: ml_collections.FrozenConfigDict, in_dim: int, dtype: jnp.dtype
) -> MemoryEncoder:
    """MemoryEncoder from `cfg.memory_encoder`; the fuser works at the image feature width."""
    if cfg.fuser.dim != in_dim:
        raise ValueError(
            f"memory_encoder.fuser.dim={cfg.fuser.dim} must equal the image feature width {in_dim}"
        )
    return MemoryEncoder(
        out_dim=cfg.out_dim,
        in_dim=in_dim,
        pos_num_feats=cfg.pos_num_feats,
        pos_temperature=cfg.pos_temperature,
        dtype=dtype,
        **{f"mask_{k}": v for k, v in cfg.mask_downsampler.items()},
        **{f"fuser_{k}": v for k, v in cfg.fuser.items() if k != "dim"},
    )
