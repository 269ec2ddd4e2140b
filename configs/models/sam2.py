"""The official SAM 2 and SAM 2.1 models (<- sam2/configs/sam2/*.yaml, sam2/configs/sam2.1/*.yaml).

`get_config("sam2.1_hiera_b+")` returns the full model config with every field written out,
including those the official YAML leaves to constructor defaults. Key names and nesting copy
the official YAML (`image_encoder.trunk.embed_dim`, `memory_attention.layer.cross_attention...`).

Non-official variants:
- `test_tiny`: a reduced Hiera for fast tests and the default training run; same heads.
"""

import ml_collections

# Per-size trunk/neck fields (OFFICIAL_SAM2_NOTES §1.1; b+ takes the Hiera constructor defaults).
HIERA = {
    "t": dict(
        embed_dim=96,
        num_heads=1,
        stages=(1, 2, 7, 2),
        global_att_blocks=(5, 7, 9),
        window_pos_embed_bkg_spatial_size=(7, 7),
        window_spec=(8, 4, 14, 7),
        backbone_channel_list=(768, 384, 192, 96),
    ),
    "s": dict(
        embed_dim=96,
        num_heads=1,
        stages=(1, 2, 11, 2),
        global_att_blocks=(7, 10, 13),
        window_pos_embed_bkg_spatial_size=(7, 7),
        window_spec=(8, 4, 14, 7),
        backbone_channel_list=(768, 384, 192, 96),
    ),
    "b+": dict(
        embed_dim=112,
        num_heads=2,
        stages=(2, 3, 16, 3),
        global_att_blocks=(12, 16, 20),
        window_pos_embed_bkg_spatial_size=(14, 14),
        window_spec=(8, 4, 14, 7),
        backbone_channel_list=(896, 448, 224, 112),
    ),
    "l": dict(
        embed_dim=144,
        num_heads=2,
        stages=(2, 6, 36, 4),
        global_att_blocks=(23, 33, 43),
        window_pos_embed_bkg_spatial_size=(7, 7),
        window_spec=(8, 4, 16, 8),
        backbone_channel_list=(1152, 576, 288, 144),
    ),
    # Not official: 2 blocks per stage at the tiny widths, for tests and the default training run.
    "test": dict(
        embed_dim=96,
        num_heads=1,
        stages=(1, 1, 2, 1),
        global_att_blocks=(3,),
        window_pos_embed_bkg_spatial_size=(7, 7),
        window_spec=(8, 4, 14, 7),
        backbone_channel_list=(768, 384, 192, 96),
    ),
}

# The only differences between sam2 and sam2.1 (OFFICIAL_SAM2_NOTES §1.3).
RELEASE = {
    "sam2": dict(
        no_obj_embed_spatial=False,
        add_tpos_enc_to_obj_ptrs=False,
        proj_tpos_enc_in_obj_ptrs=False,
        use_signed_tpos_enc_to_obj_ptrs=False,
    ),
    "sam2.1": dict(
        no_obj_embed_spatial=True,
        add_tpos_enc_to_obj_ptrs=True,
        proj_tpos_enc_in_obj_ptrs=True,
        use_signed_tpos_enc_to_obj_ptrs=True,
    ),
}

MODEL_NAMES = tuple(f"{r}_hiera_{s}" for r in ("sam2.1", "sam2") for s in ("t", "s", "b+", "l"))


def _rope_attention(**extra) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(
            rope_theta=10000.0,
            feat_sizes=(64, 64),
            embedding_dim=256,
            num_heads=1,
            downsample_rate=1,
            dropout=0.1,
            **extra,
        )
    )


def build(size: str, release: str) -> ml_collections.ConfigDict:
    """Full model config for a Hiera size (t/s/b+/l/test) and release (sam2/sam2.1)."""
    h = HIERA[size]
    c = ml_collections.ConfigDict()
    c.name = f"{release}_hiera_{size}" if size != "test" else f"{release}_test_tiny"
    c.dtype = "float32"  # compute dtype; params are always float32
    c.image_size = 1024
    c.backbone_stride = 16
    c.image_encoder = dict(
        scalp=1,
        trunk=dict(
            embed_dim=h["embed_dim"],
            num_heads=h["num_heads"],
            stages=h["stages"],
            global_att_blocks=h["global_att_blocks"],
            window_pos_embed_bkg_spatial_size=h["window_pos_embed_bkg_spatial_size"],
            window_spec=h["window_spec"],
            drop_path_rate=0.0,
            q_pool=3,
            q_stride=(2, 2),
            dim_mul=2.0,
            head_mul=2.0,
            mlp_ratio=4.0,
        ),
        neck=dict(
            d_model=256,
            backbone_channel_list=h["backbone_channel_list"],
            fpn_top_down_levels=(2, 3),
            fpn_interp_model="nearest",
            fuse_type="sum",
            pos_num_feats=256,
            pos_temperature=10000.0,
        ),
    )
    c.memory_attention = dict(
        d_model=256,
        pos_enc_at_input=True,
        num_layers=4,
        layer=dict(
            activation="relu",
            dim_feedforward=2048,
            dropout=0.1,
            pos_enc_at_attn=False,
            d_model=256,
            pos_enc_at_cross_attn_keys=True,
            pos_enc_at_cross_attn_queries=False,
            self_attention=_rope_attention(),
            cross_attention=_rope_attention(rope_k_repeat=True, kv_in_dim=64),
        ),
    )
    c.memory_encoder = dict(
        out_dim=64,
        pos_num_feats=64,
        pos_temperature=10000.0,
        mask_downsampler=dict(kernel_size=3, stride=2, padding=1, total_stride=16),
        fuser=dict(
            num_layers=2,
            dim=256,
            kernel_size=7,
            padding=3,
            layer_scale_init_value=1e-6,
            use_dwconv=True,
            drop_path=0.0,
        ),
    )
    c.num_maskmem = 7
    c.sigmoid_scale_for_mem_enc = 20.0
    c.sigmoid_bias_for_mem_enc = -10.0
    c.binarize_mask_from_pts_for_mem_enc = False
    c.use_mask_input_as_output_without_sam = True
    c.max_cond_frames_in_attn = -1
    c.directly_add_no_mem_embed = True
    c.use_high_res_features_in_sam = True
    c.multimask_output_in_sam = True
    c.multimask_min_pt_num = 0
    c.multimask_max_pt_num = 1
    c.multimask_output_for_tracking = True
    c.use_multimask_token_for_obj_ptr = True
    c.iou_prediction_use_sigmoid = True
    c.memory_temporal_stride_for_eval = 1
    c.non_overlap_masks_for_mem_enc = False
    c.use_obj_ptrs_in_encoder = True
    c.max_obj_ptrs_in_encoder = 16
    c.only_obj_ptrs_in_the_past_for_eval = True
    c.pred_obj_scores = True
    c.pred_obj_scores_mlp = True
    c.fixed_no_obj_ptr = True
    c.soft_no_obj_ptr = False
    c.use_mlp_for_obj_ptr_proj = True
    c.update(RELEASE[release])
    # What the official builders add with apply_postprocessing=True (build_sam.py); the plain
    # model and the official VOS evaluation keep them off.
    c.sam_mask_decoder_extra_args = dict(
        dynamic_multimask_via_stability=False,
        dynamic_multimask_stability_delta=0.05,
        dynamic_multimask_stability_thresh=0.98,
    )
    c.fill_hole_area = 0
    # SAM2VideoPredictor constructor options (official defaults).
    c.non_overlap_masks = False
    c.add_all_frames_to_correct_as_cond = False
    c.clear_non_cond_mem_around_input = False
    # The fixed-shape memory bank and the scanned tracker (not in the official configs).
    c.tracking = dict(
        max_cond_frames=16,  # storage capacity C: prompted frames per object
        memory_dtype="bfloat16",  # storage of frame memories, as the official predictor
        chunk_size=8,  # frames per compiled scan
    )
    return c


def get_config(arg: str = "sam2.1_hiera_t") -> ml_collections.ConfigDict:
    """`arg` is an official model name (`sam2.1_hiera_b+`, `sam2_hiera_l`, ...) or
    `sam2.1_test_tiny` / `sam2_test_tiny`."""
    for release in ("sam2.1", "sam2"):
        if arg == f"{release}_test_tiny":
            return build("test", release)
        for size in ("t", "s", "b+", "l"):
            if arg == f"{release}_hiera_{size}":
                return build(size, release)
    raise ValueError(
        f"unknown model config {arg!r}; known: {', '.join(MODEL_NAMES)}, "
        "sam2.1_test_tiny, sam2_test_tiny"
    )
